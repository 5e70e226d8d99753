"""A real local classification service for the remote-model tests: `vidattack serve`'s server in a thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from conftest import write_clip
from typer.testing import CliRunner, Result

from vidattack.cli import app
from vidattack.models.view import ModelView
from vidattack.remote.serve import ModelServer, ServeOptions, make_server


@contextmanager
def serving(
    view: ModelView, tls: tuple[Path, Path] | None = None, **options: object
) -> Iterator[ModelServer]:
    """`view` served on 127.0.0.1 (an ephemeral port) until the block ends; `server.requests` counts POSTs.
    `tls`: a (certificate, key) pair to serve HTTPS with (tests/data/tls)."""
    server = make_server(view, ServeOptions(**options), tls=tls)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def small_clip(path: Path, seed: int = 0, frames: int = 8, size: int = 32) -> Path:
    """A short random clip (cheap to encode, send and decode on every query)."""
    g = torch.Generator().manual_seed(seed)
    return write_clip(path, torch.randint(0, 256, (frames, size, size, 3), generator=g, dtype=torch.uint8))


def run(*args: object) -> Result:
    """The CLI on `args` (each made text), in-process; a traceback anywhere in its output fails the test."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in (result.stdout + result.stderr), result.stderr
    return result
