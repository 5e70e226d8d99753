"""List the functions with the most parameters: where options still travel loose instead of as one value.

`self` and `cls` do not count; `*args` and `**kwargs` count once each. A Typer command's signature is
its command line, so `vidattack/cli/*.py` commands are wide by nature; what they call should not be.

    python scripts/widest.py                                   # vidattack/: the 10 widest
    python scripts/widest.py vidattack/cli/perturb.py vidattack/pipeline --top 5
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from sizes import python_files  # scripts/ is the script's own folder, first on sys.path


def parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """How many parameters `node` takes, `self`/`cls` aside."""
    a = node.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    names += [p.arg for p in (a.vararg, a.kwarg) if p is not None]
    return len([n for n in names if n not in ("self", "cls")])


def widths(path: Path) -> list[tuple[int, str]]:
    """(parameters, `path:line name`) of every function and method in the module at `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append((parameters(node), f"{path}:{node.lineno} {node.name}"))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="*", type=Path, default=[Path("vidattack")])
    parser.add_argument("--top", type=int, default=10, help="how many to list (default 10)")
    args = parser.parse_args(argv)
    found = sorted((w for p in python_files(args.roots) for w in widths(p)), reverse=True)
    print("most parameters (self and cls aside):")
    for n, where in found[: args.top]:
        print(f"  {n:5d}  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
