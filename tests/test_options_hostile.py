"""Small hostile cases of issue #27: options that ask for nothing, outputs that are dangling symlinks,
a huge file that is not a video."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from batch_support import clip, records, run, save_toy_model

FAST = ("--threads", "1", "-f", "jsonl")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_toy_model(tmp_path_factory.mktemp("model"))


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("--steps", "0", "--threads", "1"), "Error: expected --steps of at least 1, got 0"),
        (("--threads", "0"), "expected at least 1 (leave --threads out for one per core), got 0"),
    ],
)
def test_options_that_ask_for_nothing_are_usage_errors(model, tmp_path, option, message):
    result = run("perturb", clip(tmp_path / "a.mp4"), "--model", model, "-o", tmp_path / "out", *option)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


def test_steps_0_is_refused_by_eval_too(model, tmp_path):
    result = run("eval", "synthetic:1", "--model", model, "--out", tmp_path / "out", "--steps", "0")
    assert (result.exit_code, result.stderr.strip()) == (
        2,
        "Error: pgd-linf: expected --steps of at least 1, got 0",
    )


def test_a_dangling_symlink_at_an_output_path_is_an_existing_output(model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.adv.mp4").symlink_to(tmp_path / "nowhere.mp4")

    result = run("perturb", clip(tmp_path / "a.mp4"), "--model", model, "-o", out, "--steps", "1", *FAST)

    assert result.exit_code == 1
    (record,) = records(result.stdout)
    assert (
        record["error"]
        == f"{out / 'a.adv.mp4'} exists (use --overwrite to replace it, or --resume to continue an interrupted batch)"
    )
    assert os.readlink(out / "a.adv.mp4") == str(tmp_path / "nowhere.mp4")  # left as it was
    assert not (tmp_path / "nowhere.mp4").exists()


def test_a_huge_file_that_is_not_a_video_is_refused_before_it_is_hashed(model, tmp_path, monkeypatch):
    import vidattack.files as files

    huge, real = tmp_path / "huge.mp4", files.sha256_file

    def no_hashing(path):
        if Path(path) == huge:
            raise AssertionError(f"hashed {path} before probing it")
        return real(path)  # the model's weights are hashed as ever

    monkeypatch.setattr(files, "sha256_file", no_hashing)
    with huge.open("wb") as f:
        f.truncate(50 * 2**30)  # sparse: 50 GB of zeros that take no disk

    result = run("perturb", huge, "--model", model, "-o", tmp_path / "out", "--steps", "1", *FAST)

    assert result.exit_code == 1
    (record,) = records(result.stdout)
    assert record["error"].startswith(f"{huge} is not a readable video")


class _OsOnAFullDisk:
    """`os` as `vidattack.files` sees it, on a disk with no room left: every `fdopen` write fails."""

    def __getattr__(self, name: str):
        return getattr(os, name)

    def fdopen(self, fd: int, *args, **kwargs):
        os.close(fd)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_names_the_file_and_leaves_no_partial_output(model, tmp_path, monkeypatch):
    import vidattack.files as files

    video, out = clip(tmp_path / "a.mp4"), tmp_path / "out"
    monkeypatch.setattr(files, "os", _OsOnAFullDisk())  # the report cannot be written

    result = run(
        "perturb", video, "--model", model, "-o", out, "--steps", "1", *FAST, "--outputs", "adv,report"
    )

    assert result.exit_code == 1
    (record,) = records(result.stdout)
    assert record["error"] == f"cannot write {out / 'a.report.json'}: No space left on device"
    assert list(out.iterdir()) == []  # the adversarial video written before it is removed too


def test_a_full_disk_while_writing_results_names_the_file(tmp_path, monkeypatch):
    from vidattack.eval.records import ResultsWriter

    with ResultsWriter(tmp_path / "results.jsonl") as writer:
        monkeypatch.setattr(writer, "_file", _FullDisk())
        with pytest.raises(
            OSError, match=rf"^cannot write {tmp_path / 'results.jsonl'}: No space left on device$"
        ):
            writer.write({"key": "k", "video": "v"})
        monkeypatch.undo()


class _FullDisk:
    """A file object whose every write fails as on a full disk."""

    closed = False

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self) -> None:
        pass
