"""Hostile DATASETs (issue #27): every manifest problem is a `DatasetError` (a usage error, exit 2)
that names the file and line in one short line; the same video under two spellings is found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidattack.data.datasets import DatasetError, load_dataset
from vidattack.data.names import kept_name
from vidattack.data.synthetic import CLASSES
from vidattack.files import is_hidden
from vidattack.train import dataset_labels

LABELS = list(CLASSES)


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    """A folder with sub/x.mp4 and sub/y.mp4 (manifests check that files exist, not what they hold)."""
    (tmp_path / "sub").mkdir()
    for name in ("x.mp4", "y.mp4", "a b.mp4", "a_b.mp4"):
        (tmp_path / "sub" / name).write_bytes(b"\0")
    return tmp_path


def refused(spec: str | Path) -> str:
    """The one-line message a data set is refused with (checked short and free of stack frames)."""
    with pytest.raises(DatasetError) as e:
        load_dataset(spec, LABELS)
    message = str(e.value)
    assert "\n" not in message and len(message) < 300 and "frame #" not in message
    return message


def test_a_one_megabyte_label_is_a_usage_error_naming_the_line(videos: Path) -> None:
    manifest = videos / "big.csv"
    manifest.write_text(f"path,label\nsub/x.mp4,still\nsub/y.mp4,{'x' * 1_000_000}\n")
    assert refused(manifest).startswith(f"{manifest}:3: not a CSV line a manifest can hold (field larger")
    with pytest.raises(DatasetError, match=r"big.csv:3: "):  # train reads the labels the same way
        dataset_labels(str(manifest))


def test_a_long_label_in_jsonl_is_cut_with_an_ellipsis(videos: Path) -> None:
    manifest = videos / "big.jsonl"
    manifest.write_text(json.dumps({"path": "sub/x.mp4", "label": "y" * 1_000_000}) + "\n")
    message = refused(manifest)
    assert message.startswith(f"{manifest}:1: the model has no label 'yyy") and "…" in message


def test_a_latin1_manifest_names_the_encoding_problem_and_line(videos: Path) -> None:
    manifest = videos / "latin1.csv"
    manifest.write_bytes("path,label\nsub/x.mp4,still\nsub/caf\u00e9.mp4,still\n".encode("latin-1"))
    assert refused(manifest) == f"{manifest}:3: not UTF-8 (byte 0xe9); save the manifest as UTF-8"


def test_a_utf8_bom_is_accepted(videos: Path) -> None:
    manifest = videos / "excel.csv"
    manifest.write_bytes(b"\xef\xbb\xbfpath,label\r\nsub/x.mp4,still\r\n")
    assert [(it.id, it.label) for it in load_dataset(manifest, LABELS)] == [
        ("sub/x.mp4", LABELS.index("still"))
    ]
    jsonl = videos / "bom.jsonl"
    jsonl.write_bytes(b'\xef\xbb\xbf{"path": "sub/x.mp4", "label": "still"}\n')
    assert len(load_dataset(jsonl, LABELS)) == 1


def test_jsonl_nested_100000_deep_is_a_usage_error(videos: Path) -> None:
    manifest = videos / "deep.jsonl"
    manifest.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    assert refused(manifest) == (
        f"{manifest}:1: expected a JSON object, got one nested too deep or a number too long"
    )


def test_a_100kb_path_is_cut_in_the_message(videos: Path) -> None:
    manifest = videos / "long.csv"
    manifest.write_text(f"path,label\n{'d/' * 50_000}x.mp4,still\n")
    message = refused(manifest)
    assert message.startswith(f"{manifest}:2: ") and "…" in message
    assert refused("z" * 100_000).startswith("zzz")  # the data set argument itself


@pytest.mark.parametrize("spec", ["synthetic:99999999999999999999", "synthetic:1:99999999999999999999"])
def test_a_huge_synthetic_count_or_seed_is_refused(spec: str) -> None:
    assert refused(spec).startswith("expected synthetic:N")


@pytest.mark.parametrize("spelling", ["./sub/x.mp4", "sub//x.mp4", "sub/../sub/x.mp4"])
def test_one_video_under_two_spellings_is_listed_twice(videos: Path, spelling: str) -> None:
    manifest = videos / "twice.csv"
    manifest.write_text(f"sub/x.mp4,still\n{spelling},still\n")
    assert refused(manifest) == f"{manifest}:2: {spelling} is listed twice (first on line 1)"


def test_conflicting_labels_for_one_video_are_named(videos: Path) -> None:
    manifest = videos / "conflict.csv"
    manifest.write_text("sub/x.mp4,still\n./sub/x.mp4,move_left\n")
    assert refused(manifest).endswith("with another label (still there, move_left here)")


def test_kept_names_never_collide() -> None:
    ids = ["sub/a b.mp4", "sub/a_b.mp4", "sub__a_b.mp4", "sub/a?b.mp4", ".hidden", "x" * 300, "x" * 301]
    names = [kept_name(i) for i in ids]
    assert len(set(names)) == len(ids)
    assert all(len(n.encode()) < 200 and "/" not in n and not n.startswith(".") for n in names)
    assert kept_name("synthetic-13-00004") == "synthetic-13-00004"  # a safe id is its own name


def test_files_inside_hidden_folders_are_not_items(tmp_path: Path) -> None:
    for rel in ("still/a.mp4", "still/.cache/b.mp4", "still/.c.mp4"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"\0")
    assert [it.id for it in load_dataset(tmp_path, LABELS)] == ["still/a.mp4"]
    assert is_hidden("a/.b/c.mp4") and not is_hidden("a/b/c.mp4")
