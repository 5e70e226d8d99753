"""`vidattack serve`: serve a model over HTTP the way deployed classifiers answer (rehearse an attack)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from vidattack.cli import options as o
from vidattack.cli.emit import print_note


def serve(
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="Any --model value of perturb (a local model).")
    ],
    port: Annotated[
        int, typer.Option(metavar="N", help="TCP port; 0 picks a free one.", min=0, max=65535)
    ] = 8000,
    host: Annotated[str, typer.Option(metavar="HOST", help="Address to listen on.")] = "127.0.0.1",
    mode: Annotated[
        str,
        typer.Option(metavar="MODE", help="Answer every class (full), the best --top-k, or the label only."),
    ] = "full",
    top_k: Annotated[int, typer.Option("--top-k", metavar="K", help="Classes answered in top-k mode.")] = 5,
    fail_every: Annotated[
        int, typer.Option(metavar="N", help="Rehearse failures: answer HTTP 503 to every Nth request.")
    ] = 0,
    garbage: Annotated[
        bool, typer.Option("--garbage", help="Rehearse a broken service: answer non-JSON.")
    ] = False,
    answer: Annotated[
        Path | None,
        typer.Option(
            "--answer", metavar="VIDEO", help="Print the answer for one video and exit (a cmd: target)."
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", metavar="PEM", help="Serve HTTPS with this certificate (and --tls-key)."),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", metavar="PEM", help="The certificate's private key.")
    ] = None,
    labels: o.Labels = None,
    threads: o.Threads = 0,
) -> None:
    """Serve MODEL over HTTP: POST a video file to /classify, get JSON label/score answers.

    The protocol of `perturb --model http://HOST:PORT/classify`: the body is the video file
    (Content-Type video/mp4); the answer is [{"label": ..., "score": ...}, ...] best first (full, top-k)
    or {"label": ...} (label). GET /stats answers {"requests": N}, the POSTs received. With --answer,
    the answer for one file goes to stdout instead: `--model 'cmd:vidattack serve MODEL --answer {}'`.
    With --tls-cert and --tls-key it serves HTTPS (a client trusts a self-signed certificate through
    SSL_CERT_FILE). Stop the service with Ctrl-C or SIGTERM.
    """
    from vidattack.errors import BadParameterError
    from vidattack.models import load_model
    from vidattack.remote.serve import ServeOptions, answer_file, make_server
    from vidattack.remote.transport import is_remote_spec
    from vidattack.runtime import set_cpu_threads

    if is_remote_spec(model):
        raise BadParameterError(f"expected a local model to serve, got {model!r}")
    if (tls_cert is None) != (tls_key is None):
        raise BadParameterError("expected --tls-cert and --tls-key together (a certificate and its key)")
    options = ServeOptions(mode=mode, top_k=top_k, fail_every=fail_every, garbage=garbage)  # type: ignore[arg-type]
    set_cpu_threads(threads)
    view = load_model(model, labels=labels)
    if answer is not None:
        sys.stdout.buffer.write(answer_file(view, answer, options) + b"\n")
        return
    tls = (tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None
    server = make_server(view, options, host, port, tls)
    # SIGTERM stops it like Ctrl-C (a service started in the background ignores SIGINT)
    signal.signal(signal.SIGTERM, _stop)
    print_note(f"serving {view.name} at {server.url} ({mode}); Ctrl-C stops")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        print_note(f"{server.requests} requests served")


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
