"""CLI commands contributed by feature modules, registered in `vidattack.cli`, and the options they
share with its own commands."""

from typing import Annotated

import typer

Threads = Annotated[
    int, typer.Option(help="CPU threads for torch; 0 = one per core. Fewer help on a busy machine.")
]
