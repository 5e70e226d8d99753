"""vidattack.files: atomic writes (no temp file left, mode from the umask), file hashes, and downloads
(with a fake network: nothing leaves the machine)."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from vidattack import files


@pytest.fixture
def umask() -> Iterator[None]:
    """Restore the process umask after a test that changes it."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_atomic_writes_the_bytes_and_makes_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "new" / "report.json"
    assert files.write_atomic(path, b'{"ok": true}\n') == path
    assert path.read_bytes() == b'{"ok": true}\n'
    files.write_atomic(path, b"second")
    assert path.read_bytes() == b"second"
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.json"]


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_mode_the_umask_gives(
    tmp_path: Path, umask: None, mask: int, expected: int
) -> None:
    # mkstemp would give 0o600 whatever the umask: reports unreadable beside readable videos
    os.umask(mask)
    path = files.write_atomic(tmp_path / "report.json", b"{}")
    assert mode(path) == expected
    with files.atomic_path(tmp_path / "video.mp4") as tmp:
        tmp.write_bytes(b"frames")  # as an encoder would, with open()
    assert mode(tmp_path / "video.mp4") == expected


def test_a_failed_write_leaves_no_temp_file_and_the_old_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "report.json"
    path.write_bytes(b"old")

    def refuse(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        files.write_atomic(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_atomic_path_replaces_on_success_and_cleans_up_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError, match="encoder crashed"), files.atomic_path(out) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".clip.mp4.") and tmp.suffix == ".mp4"
        tmp.write_bytes(b"half a video")
        raise RuntimeError("encoder crashed")
    assert not list(tmp_path.iterdir()), "the temp file was left behind"

    with files.atomic_path(out) as tmp:
        tmp.write_bytes(b"a whole video")
        assert not out.exists(), "the destination must not appear before the block ends"
    assert out.read_bytes() == b"a whole video"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_sha256_file_hashes_across_read_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytes(range(256)) * 5
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert files.sha256_file(path) == expected
    monkeypatch.setattr(files, "CHUNK", 7)  # many short blocks, the last one partial
    assert files.sha256_file(path) == expected
    (tmp_path / "empty").touch()
    assert files.sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


class FakeResponse(io.BytesIO):
    """What `urlopen` returns, for a body held in memory."""


def fake_network(monkeypatch: pytest.MonkeyPatch, body: bytes, seen: list[float]) -> None:
    def urlopen(url: str, timeout: float | None = None) -> FakeResponse:
        seen.append(timeout if timeout is not None else float("inf"))
        return FakeResponse(body)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


def test_download_checks_the_hash_prefix_and_keeps_only_a_good_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = b"weights" * 1000
    digest = hashlib.sha256(body).hexdigest()
    seen: list[float] = []
    fake_network(monkeypatch, body, seen)
    dst = tmp_path / "hub" / "checkpoints" / f"r3d_18-{digest[:8]}.pth"

    assert files.download("https://example.invalid/w.pth", dst, sha256_prefix=digest[:8]) == dst
    assert dst.read_bytes() == body
    assert seen == [files.DOWNLOAD_TIMEOUT_S]

    other = tmp_path / "other.pth"
    with pytest.raises(ValueError, match=r"expected the SHA-256 of .* to start with 00000000"):
        files.download("https://example.invalid/w.pth", other, sha256_prefix="00000000")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub"], "a bad download was kept"
