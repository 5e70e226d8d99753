"""Sending one candidate video to a target and reading the raw answer: HTTP POST or a command.

Both raise `Retryable` for what may succeed on a second try (HTTP 429 and 5xx, connection errors,
timeouts, a command's non-zero exit) and `RemoteError` for what will not (another HTTP status, a command
that cannot be started, an https:// certificate that is not trusted or a TLS handshake that fails: the
client never falls back to an unverified connection). An https:// target is verified with Python's
default context, which trusts the system's certificates, or those of the PEM file `SSL_CERT_FILE` names. Neither interprets the answer (`answers.py` does) nor retries (`client.py`
does). Header values are never put into a message.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import ssl
import subprocess
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from vidattack.errors import BadParameterError, VidattackError
from vidattack.remote.answers import MAX_ANSWER_BYTES


class RemoteError(VidattackError):
    """The target cannot be used (exit 1): it keeps failing, refused a request, or is misconfigured."""


class Retryable(Exception):
    """A failed request that may succeed when sent again; `wait` is the service's Retry-After, if any."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.wait = wait


def is_remote_spec(spec: str | None) -> bool:
    """True when a `--model` value names a deployed model (http://, https://, cmd:)."""
    text = (spec or "").strip().lower()
    return text.startswith(("http://", "https://", "cmd:"))


def read_headers(env_name: str | None) -> dict[str, str]:
    """Headers from the environment variable `env_name`: `Name: value` lines or a JSON object."""
    if env_name is None:
        return {}
    raw = os.environ.get(env_name)
    if raw is None:
        raise BadParameterError(f"--header-env: the environment variable {env_name} is not set")
    text = raw.strip()
    pairs: list[tuple[str, str]] = []
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise BadParameterError(f"--header-env: {env_name} is not a JSON object of headers") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise BadParameterError(f"--header-env: {env_name} must map header names to strings")
        pairs = [(str(k), v) for k, v in data.items()]
    else:
        for line in text.splitlines():
            name, sep, value = line.partition(":")
            if line.strip() and not sep:
                raise BadParameterError(f"--header-env: expected 'Name: value' lines in {env_name}")
            if sep:
                pairs.append((name.strip(), value.strip()))
    for name, value in pairs:
        # a header name is a token; CR/LF in either would let one header smuggle another
        if not name or not all(c.isalnum() or c in "-_" for c in name) or any(c in value for c in "\r\n"):
            raise BadParameterError(f"--header-env: {env_name} holds a malformed header")
    return dict(pairs)


@dataclass
class HttpTarget:
    """POST the candidate as the request body (`Content-Type: video/mp4`) to `url`; the body is the answer."""

    url: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    timeout: float = 60.0

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadParameterError(f"expected an http:// or https:// URL with a host, got {self.url!r}")
        self._parts = parts

    @property
    def name(self) -> str:
        """The URL without user info or query (what messages and reports show)."""
        p = self._parts
        port = f":{p.port}" if p.port else ""
        return f"{p.scheme}://{p.hostname}{port}{p.path or '/'}"

    def send(self, video: bytes, path: Path) -> bytes:
        """The answer to one POST of `video` (`path` is unused: HTTP sends the bytes)."""
        p = self._parts
        cls = http.client.HTTPSConnection if p.scheme == "https" else http.client.HTTPConnection
        conn = cls(p.hostname or "", p.port, timeout=self.timeout)
        target = (p.path or "/") + (f"?{p.query}" if p.query else "")
        headers = {**self.headers, "Content-Type": "video/mp4", "Content-Length": str(len(video))}
        try:
            conn.request("POST", target, body=video, headers=headers)
            resp = conn.getresponse()
            body = resp.read(MAX_ANSWER_BYTES + 1)
        except ssl.SSLCertVerificationError as e:
            raise RemoteError(
                f"{self.name}: its TLS certificate is not trusted ({e.verify_message or e.reason}); for a "
                "private CA or a self-signed certificate, set SSL_CERT_FILE to its PEM file"
            ) from None
        except ssl.SSLError as e:
            if isinstance(e, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)):
                raise Retryable(type(e).__name__) from None  # the connection dropped: try again
            raise RemoteError(
                f"{self.name}: the TLS handshake failed ({e.reason or type(e).__name__})"
            ) from None
        except (OSError, http.client.HTTPException) as e:
            raise Retryable(f"{type(e).__name__}") from None
        finally:
            conn.close()
        if resp.status == 429 or resp.status >= 500:
            raise Retryable(f"HTTP {resp.status}", _retry_after(resp.getheader("Retry-After")))
        if resp.status != 200:
            raise RemoteError(f"{self.name}: expected HTTP 200, got {resp.status} {resp.reason[:60]!r}")
        return body


@dataclass
class CommandTarget:
    """Run `argv` with every `{}` replaced by the candidate's path, no shell; stdout is the answer."""

    spec: str
    timeout: float = 60.0

    def __post_init__(self) -> None:
        text = self.spec.strip()[len("cmd:") :].strip()
        try:
            argv = shlex.split(text)
        except ValueError as e:
            raise BadParameterError(f"cmd: expected a command line, got {text!r} ({e})") from None
        if not argv or not any("{}" in a for a in argv):
            raise BadParameterError(f"cmd: expected a command with {{}} for the video's path, got {text!r}")
        self._argv = argv

    @property
    def name(self) -> str:
        return f"cmd:{self._argv[0]}"

    def send(self, video: bytes, path: Path) -> bytes:
        """The command's stdout for the candidate already written at `path`."""
        argv = [a.replace("{}", str(path)) for a in self._argv]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=self.timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise Retryable("timeout") from None
        except OSError as e:
            raise RemoteError(
                f"{self.name}: cannot run the command ({e.strerror or type(e).__name__})"
            ) from None
        if done.returncode != 0:
            raise Retryable(f"exit status {done.returncode}")
        return done.stdout


def make_target(spec: str, headers: dict[str, str], timeout: float) -> HttpTarget | CommandTarget:
    """The target a `--model` value names (see `is_remote_spec`)."""
    if spec.strip().lower().startswith("cmd:"):
        if headers:
            raise BadParameterError("--header-env applies to HTTP targets, not to cmd:")
        return CommandTarget(spec, timeout=timeout)
    return HttpTarget(spec.strip(), headers=headers, timeout=timeout)


def _retry_after(value: str | None) -> float | None:
    try:
        return min(max(float(value), 0.0), 60.0) if value is not None else None
    except ValueError:
        return None
