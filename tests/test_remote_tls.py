"""An https:// target: the test service over TLS with the self-signed certificate in tests/data/tls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from remote_support import run, serving, small_clip
from typer.testing import CliRunner

runner = CliRunner()
TLS = Path(__file__).parent / "data" / "tls"
CERT, KEY = TLS / "localhost.crt", TLS / "localhost.key"
SECRET = "Bearer tls-test-5ecret"


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return small_clip(tmp_path / "clip.mp4")


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """A header the service is sent (`--header-env API_HEADERS`); it must never be written anywhere."""
    monkeypatch.setenv("API_HEADERS", f"Authorization: {SECRET}")
    return "API_HEADERS"


def written(out: Path) -> str:
    return "".join(
        p.read_text(errors="replace") for p in sorted(out.rglob("*")) if p.is_file() and p.suffix != ".mp4"
    )


def test_an_attack_fools_an_https_service_whose_certificate_is_trusted(
    c3d, clip, api_key, tmp_path, monkeypatch
):
    monkeypatch.setenv("SSL_CERT_FILE", str(CERT))  # Python's default SSL context trusts this file
    out = tmp_path / "out"
    with serving(c3d, tls=(CERT, KEY), mode="label") as server:
        assert server.url.startswith("https://127.0.0.1:")
        result = run(
            "perturb", clip, "-a", "hsja", "--label-only", "--model", server.url, "--header-env", api_key,
            "-o", out, "-f", "jsonl", "-q", "--set", "max_queries=40", "--set", "init_evals=4", "--outputs", "report",
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        record = json.loads(result.stdout.splitlines()[-1])
        report = json.loads((out / "clip.report.json").read_text())
        assert report["model"]["sent"]["requests"] == server.requests > 0
    assert record["success"] and record["queries"] <= 40
    assert SECRET not in result.stdout + result.stderr + written(out)


def test_an_untrusted_certificate_stops_with_one_line_naming_the_target(
    c3d, clip, api_key, tmp_path, monkeypatch
):
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)  # the system's certificates only: ours is not among them
    out = tmp_path / "out"
    with serving(c3d, tls=(CERT, KEY)) as server:
        result = run(
            "perturb", clip, "-a", "vbad", "--model", server.url, "--header-env", api_key, "-o", out,
            "-f", "jsonl", "--set", "max_queries=20",
        )  # fmt: skip
        assert server.requests == 0  # refused in the handshake: nothing was posted, never unverified
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and server.url in errors[0] and "certificate is not trusted" in errors[0]
    assert "SSL_CERT_FILE" in errors[0]
    sent = [json.loads(line) for line in (out / "queries.jsonl").read_text().splitlines()]
    assert [e["event"] for e in sent] == [
        "target",
        "sent",
        "failed",
    ]  # not retried: a certificate will not change
    assert SECRET not in result.stdout + result.stderr + written(out)


def test_vidattack_serve_serves_https_with_a_certificate_and_its_key(tmp_path):
    import os
    import ssl
    import subprocess
    import sys
    import urllib.request

    half = run("serve", "tiny-c3d", "--port", "0", "--tls-cert", CERT)
    assert half.exit_code == 2
    assert "expected --tls-cert and --tls-key together" in half.stderr

    argv = [sys.executable, "-m", "vidattack", "serve", "tiny-c3d", "--port", "0", "--threads", "1"]
    proc = subprocess.Popen(
        [*argv, "--tls-cert", str(CERT), "--tls-key", str(KEY)],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    try:
        line = proc.stderr.readline() if proc.stderr else ""
        url = next(w for w in line.split() if w.startswith("https://"))
        stats = url.rsplit("/", 1)[0] + "/stats"
        trusted = ssl.create_default_context(cafile=str(CERT))
        with urllib.request.urlopen(stats, timeout=10, context=trusted) as answer:
            assert json.loads(answer.read()) == {"requests": 0}
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(stats, timeout=10, context=ssl.create_default_context(cafile=None))
    finally:
        proc.terminate()
        proc.wait(timeout=15)
