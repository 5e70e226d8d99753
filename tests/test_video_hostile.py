"""Every input of the hostile corpus through the video layer: a decode or one clear `BadVideoError`.

Each input is probed and decoded the way the pipeline's decode stage does it (`decode_planned` with a
16-frame plan and the default memory budget). A correct video layer returns the sampled frames or
raises `BadVideoError` whose message is one line naming the file once; never another exception type,
and the huge declared size is refused from the header, before decoding.
"""

from __future__ import annotations

import os
import pathlib

import pytest
import torch
from hostile import Case, make_corpus

from vidattack.errors import BadVideoError
from vidattack.video import decode_planned, display_path, probe


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    torch.set_num_threads(1)
    return make_corpus(tmp_path_factory.mktemp("hostile") / "corpus", huge=True, long=False)


def plan16(n: int) -> list[int]:
    """The default model's plan: one clip of 16 frames in the middle, the last frame repeated."""
    start = max(n - 16, 0) // 2
    return sorted({min(start + j, n - 1) for j in range(16)})


def test_every_input_decodes_or_is_refused_in_one_clear_line(corpus: list[Case]) -> None:
    assert len(corpus) >= 40
    outcomes = {}
    for case in corpus:
        try:
            sampled = decode_planned(case.path, plan16)
        except BadVideoError as e:
            text = str(e)
            assert "\n" not in text and text.count(display_path(case.path.name)) == 1, (case.kind, text)
            outcomes[case.kind] = "refused"
        else:
            assert sampled.frames.shape[0] == len(plan16(sampled.num_frames)), case.kind
            outcomes[case.kind] = "ok"
        if case.expect != "ok_or_refused":
            assert outcomes[case.kind] == case.expect, (case.kind, outcomes[case.kind])


def test_the_huge_input_is_refused_from_its_header(corpus: list[Case]) -> None:
    huge = next(c.path for c in corpus if c.path.name == "huge_8192.mp4")
    info = probe(huge)
    assert (info.width, info.height, info.frames) == (8192, 8192, 4)
    with pytest.raises(BadVideoError, match=r"needs about [\d.]+ GB to attack 4 frames of 8192x8192"):
        decode_planned(huge, plan16)


@pytest.mark.skipif(os.name != "posix", reason="FIFOs and devices as on Linux")
def test_special_files_get_their_own_words(corpus: list[Case]) -> None:
    words = {
        "FIFO": "is not a regular file (a FIFO)",
        "/dev/zero": "is not a regular file (a character device)",
        "symlink loop": "is a symlink loop",
        "a directory named x.mp4": "is a folder, not a video",
        "empty file": "is empty (0 bytes)",
        "audio only": "has no video stream (audio only)",
    }
    for case in corpus:
        if case.kind in words:
            with pytest.raises(BadVideoError) as info:
                probe(case.path)
            assert str(info.value).endswith(words[case.kind]), (case.kind, str(info.value))


def test_odd_names_are_printed_on_one_line() -> None:
    assert display_path(pathlib.Path("new\nline.mp4")) == "new\\nline.mp4"
    assert display_path(os.fsdecode(b"bad_\xff.mp4")) == "bad_\\xff.mp4"
    assert display_path("ünïcödé 视频.mp4") == "ünïcödé 视频.mp4"
