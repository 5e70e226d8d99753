"""A local classification service over any loadable model, speaking the protocol remote targets expect.

`vidattack serve MODEL --port N` runs it; tests and benchmarks start it in a thread (`make_server`). A
client POSTs a video file (`Content-Type: video/mp4`); the service decodes it, classifies it the usual
way (the model's own frame sampling) and answers JSON in one of three modes:

- `full`: every class, `[{"label": ..., "score": ...}, ...]` best first;
- `top-k`: the `top_k` best only (HuggingFace's pipeline default is 5);
- `label`: `{"label": ...}` only.

Rehearsal modes make its failures real: `fail_every=3` answers HTTP 503 to every third request, and
`garbage` answers bytes that are not JSON. `GET /stats` answers `{"requests": n}`, the POSTs received so
far (counted before anything else is done: an independent count of what reached the service).
`make_server(..., tls=(CERT, KEY))` serves HTTPS (the tests' self-signed certificate for 127.0.0.1).
"""

from __future__ import annotations

import json
import ssl
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

import torch

from vidattack.errors import BadParameterError, VidattackError
from vidattack.models.view import ModelView, predict_video

Mode = Literal["full", "top-k", "label"]
MODES: tuple[str, ...] = ("full", "top-k", "label")
MAX_BODY = 512 << 20


@dataclass(frozen=True)
class ServeOptions:
    """What the service answers (`mode`, `top_k`) and how it misbehaves on purpose (`fail_every`,
    `garbage`)."""

    mode: Mode = "full"
    top_k: int = 5
    fail_every: int = 0
    garbage: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise BadParameterError(f"--mode: expected one of {', '.join(MODES)}, got {self.mode!r}")
        if self.top_k < 1:
            raise BadParameterError(f"--top-k: expected at least 1, got {self.top_k}")
        if self.fail_every < 0 or self.fail_every == 1:
            raise BadParameterError(f"--fail-every: expected 0 (never) or at least 2, got {self.fail_every}")


def answer_file(view: ModelView, path: str | Path, options: ServeOptions) -> bytes:
    """The JSON answer (bytes) for the video at `path` (`BadVideoError` if it is not one)."""
    from vidattack.video import load_video

    frames = load_video(path).frames
    with torch.no_grad():
        probs = predict_video(view, frames).double()
    order = probs.argsort(descending=True).tolist()
    if options.mode == "label":
        return json.dumps({"label": view.label_of(order[0])}).encode()
    if options.mode == "top-k":
        order = order[: options.top_k]
    # scores rounded to 1e-9: JSON stays short, and a full answer still sums to 1 within rounding
    return json.dumps(
        [{"label": view.label_of(i), "score": round(float(probs[i]), 9)} for i in order]
    ).encode()


class ModelServer(ThreadingHTTPServer):
    """The HTTP service; `requests` is the number of POSTs received."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], view: ModelView, options: ServeOptions) -> None:
        super().__init__(address, _Handler)
        self.view = view
        self.options = options
        self.requests = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://{host!s}:{port}/classify"

    def count(self) -> int:
        """Count one received POST; its number (1-based)."""
        with self.lock:
            self.requests += 1
            return self.requests


class _Handler(BaseHTTPRequestHandler):
    server: ModelServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass  # a request log line per query would flood the terminal; GET /stats has the count

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/stats":
            self._send(200, json.dumps({"requests": self.server.requests}).encode())
        else:
            self._send(404, b'{"error": "POST a video to /classify; GET /stats"}')

    def do_POST(self) -> None:
        number = self.server.count()
        opts = self.server.options
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._send(411, b'{"error": "expected a Content-Length"}')
            return
        if not 0 < length <= MAX_BODY:
            self._send(413, b'{"error": "expected a video of at most 512 MiB"}')
            return
        body = self.rfile.read(length)
        if opts.fail_every and number % opts.fail_every == 0:
            self._send(503, b'{"error": "failing on purpose (--fail-every)"}')
            return
        if opts.garbage:
            self._send(200, b"<html>\x00not json {{{")
            return
        with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
            f.write(body)
            f.flush()
            try:
                answer = answer_file(self.server.view, f.name, opts)
            except VidattackError as e:
                self._send(400, json.dumps({"error": str(e).replace(f.name, "the posted video")}).encode())
                return
        self._send(200, answer)

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def make_server(
    view: ModelView,
    options: ServeOptions,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: tuple[Path, Path] | None = None,
) -> ModelServer:
    """A bound (not yet serving) service; port 0 takes a free one (see `server.url`). With `tls`, a
    (certificate, private key) pair of PEM files, it serves HTTPS."""
    try:
        server = ModelServer((host, port), view, options)
    except OSError as e:
        raise BadParameterError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(*tls)
        except (OSError, ssl.SSLError) as e:
            server.server_close()
            raise BadParameterError(f"cannot load the TLS certificate {tls[0]}: {e}") from None
        # a client that refuses the certificate fails the handshake in `accept`, an OSError that
        # socketserver drops: no request is counted, and the service goes on
        server.socket = context.wrap_socket(server.socket, server_side=True)
    return server
