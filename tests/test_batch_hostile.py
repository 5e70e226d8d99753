"""Inputs that cannot even be named (issue #27): each becomes one error record and the rest of the
batch runs; CRLF lines on stdin; hidden folders of a folder input."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from batch_support import clip, records, run, save_toy_model

from vidattack.pipeline.batch import expand_inputs, read_paths

FAST = ("--steps", "1", "--threads", "1", "-f", "jsonl", "--outputs", "adv,report")
LONG = "a" * 300 + ".mp4"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_toy_model(tmp_path_factory.mktemp("model"))


class Stdin:
    """A stand-in for `sys.stdin` whose bytes are `data`."""

    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


def test_a_300_character_name_is_an_error_record_and_the_good_file_runs(model, tmp_path):
    good = clip(tmp_path / "good.mp4")

    result = run("perturb", good, tmp_path / LONG, "--model", model, "-o", tmp_path / "out", *FAST)

    assert result.exit_code == 1
    ok, bad = records(result.stdout)
    assert (ok["input"], ok["status"]) == (str(good), "ok")
    assert bad["status"] == "error" and "too long for the file system (304 bytes" in bad["error"]
    assert result.stderr.count("Error:") == 1


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"ba\0d.mp4", "the path holds a NUL byte, which no file name can"),
        (LONG.encode(), "the file name is too long for the file system (304 bytes; at most 255 are allowed)"),
    ],
)
def test_a_stdin_line_that_cannot_be_a_name_is_one_failed_item(
    tmp_path: Path, line: bytes, error: str
) -> None:
    good = tmp_path / "good.mp4"
    items = expand_inputs(["-"], stdin=Stdin(os.fsencode(good) + b"\n" + line + b"\n"))
    assert [(it.path, it.error) for it in items] == [(good, None), (Path(os.fsdecode(line)), error)]


def test_undecodable_and_crlf_stdin_lines() -> None:
    paths = read_paths(Stdin(b"a.mp4\r\nb\xff.mp4\r\nc .mp4\n"))  # type: ignore[arg-type]
    assert paths == [Path("a.mp4"), Path(os.fsdecode(b"b\xff.mp4")), Path("c .mp4")]
    assert read_paths(Stdin(b"a\r\0"), null=True) == [Path("a\r")]  # type: ignore[arg-type]  # NUL-separated names are exact


def test_files_inside_hidden_folders_of_a_folder_input_are_left_out(tmp_path: Path) -> None:
    for rel in ("in/a.mp4", "in/.git/b.mp4", "in/sub/.cache/c.mp4", "in/sub/d.mp4"):
        clip(tmp_path / rel)
    found = [it.path.relative_to(tmp_path / "in").as_posix() for it in expand_inputs([str(tmp_path / "in")])]
    assert found == ["a.mp4", "sub/d.mp4"]
