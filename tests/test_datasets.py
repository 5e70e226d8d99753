"""DATASET forms for eval and train: class folders, CSV/JSONL manifests, `synthetic:N`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import write_clip

from vidattack.data.datasets import DatasetError, load_dataset, manifest_labels, parse_shard, shard_of
from vidattack.data.synthetic import CLASSES, make_dataset
from vidattack.errors import UsageError

LABELS = list(CLASSES)


def _frames(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (4, 16, 16, 3), generator=g, dtype=torch.uint8)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A class folder: move_left/{a,b}.mp4, still/c.mp4, and a file that is not a video."""
    root = tmp_path_factory.mktemp("folder")
    for i, rel in enumerate(["move_left/a.mp4", "move_left/b.mp4", "still/c.mp4"]):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write_clip(root / rel, _frames(i))
    (root / "still" / "notes.txt").write_text("not a video")
    return root


def test_class_folder_gives_one_item_per_video_labelled_by_its_folder(clips: Path) -> None:
    data = load_dataset(clips, LABELS)
    assert [(it.id, it.label) for it in data] == [
        ("move_left/a.mp4", 0),
        ("move_left/b.mp4", 0),
        ("still/c.mp4", CLASSES.index("still")),
    ]
    assert torch.equal(data[2].load_frames(), _frames(2))


def test_class_folder_with_an_unknown_label_names_the_folder(tmp_path: Path) -> None:
    (tmp_path / "move_lef").mkdir()
    write_clip(tmp_path / "move_lef" / "a.mp4", _frames(0))
    with pytest.raises(DatasetError, match=r"move_lef.*no label 'move_lef'.*did you mean move_left"):
        load_dataset(tmp_path, LABELS)


def test_csv_manifest_takes_names_or_indices_and_resolves_paths_against_its_folder(
    clips: Path, tmp_path: Path
) -> None:
    manifest = clips / "list.csv"
    manifest.write_text("path,label\nmove_left/a.mp4,move_left\nstill/c.mp4,9\n")
    data = load_dataset(manifest, LABELS)
    assert [(it.id, it.label) for it in data] == [("move_left/a.mp4", 0), ("still/c.mp4", 9)]
    assert data[0].path == clips / "move_left" / "a.mp4"


def test_jsonl_manifest(clips: Path) -> None:
    manifest = clips / "list.jsonl"
    rows = [{"path": "still/c.mp4", "label": "still"}, {"path": "move_left/b.mp4", "label": 0}]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_dataset(manifest, LABELS)
    assert [(it.id, it.label) for it in data] == [("still/c.mp4", 9), ("move_left/b.mp4", 0)]


def test_manifest_labels_are_the_distinct_labels_as_written(tmp_path: Path) -> None:
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("path,label\nb.mp4,still\na.mp4,move_left\nc.mp4,still\n")
    jsonl_file = tmp_path / "list.jsonl"
    jsonl_file.write_text('{"path": "a.mp4", "label": 3}\n{"path": "b.mp4", "label": "still"}\n')
    # files need not exist: only the labels are read, for naming a fresh network's classes
    assert manifest_labels(csv_file) == ["move_left", "still"]
    assert manifest_labels(jsonl_file) == ["3", "still"]
    jsonl_file.write_text("not json\n")
    with pytest.raises(DatasetError, match=r"list.jsonl:1: expected a JSON object"):
        manifest_labels(jsonl_file)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,label\nmove_left/a.mp4,jump\n", r"list\.csv:2: the model has no label 'jump'"),
        ("move_left/a.mp4,12\n", r"list\.csv:1: expected a class index in \[0, 9\], got 12"),
        ("path,label\nnope.mp4,still\n", r"list\.csv:2: no such video file nope\.mp4"),
        ("path,label\nmove_left/a.mp4\n", r"list\.csv:2: expected two columns"),
        ("path,label\nstill/c.mp4,9\nstill/c.mp4,9\n", r"list\.csv:3: still/c\.mp4 is listed twice"),
        ("path,label\n", r"lists no videos"),
    ],
)
def test_manifest_errors_name_the_file_and_line(clips: Path, text: str, message: str) -> None:
    (clips / "list.csv").write_text(text)
    with pytest.raises(DatasetError, match=message):
        load_dataset(clips / "list.csv", LABELS)


def test_jsonl_errors_name_the_line(clips: Path) -> None:
    (clips / "bad.jsonl").write_text('{"path": "still/c.mp4", "label": 9}\n{"path": 3\n')
    with pytest.raises(DatasetError, match=r"bad\.jsonl:2: expected a JSON object"):
        load_dataset(clips / "bad.jsonl", LABELS)


def test_synthetic_is_the_package_generator_clip_for_clip() -> None:
    data = load_dataset("synthetic:1:5", LABELS, synthetic_frames=4, synthetic_size=32)
    clips, labels = make_dataset(1, seed=5, frames=4, size=32)
    assert len(data) == 10
    assert [it.label for it in data] == labels.tolist()
    assert data[3].id == "synthetic-5-00003"
    assert torch.equal(data[3].load_frames(), clips[3])
    # ids and clips are the same in every load: resume and shards rely on it
    again = load_dataset("synthetic:1:5", LABELS, synthetic_frames=4, synthetic_size=32)
    assert [it.id for it in again] == [it.id for it in data]


def test_synthetic_labels_map_to_the_models_order() -> None:
    reordered = list(reversed(CLASSES))
    data = load_dataset("synthetic:1", reordered, synthetic_frames=4, synthetic_size=32)
    assert [reordered[it.label] for it in data] == list(CLASSES)


def test_synthetic_needs_a_model_that_knows_its_classes() -> None:
    with pytest.raises(DatasetError, match="synthetic generator"):
        load_dataset("synthetic:1", ["cat", "dog"])


@pytest.mark.parametrize("spec", ["synthetic:0", "synthetic:x", "nowhere/", "file.txt"])
def test_unknown_forms_are_refused(spec: str, tmp_path: Path) -> None:
    if spec == "file.txt":
        spec = str(tmp_path / "file.txt")
        Path(spec).write_text("x")
    with pytest.raises(DatasetError):
        load_dataset(spec, LABELS)


def test_shards_partition_the_data_set_by_id() -> None:
    data = load_dataset("synthetic:3", LABELS, synthetic_frames=4, synthetic_size=32)
    parts = [data.shard(k, 3) for k in (1, 2, 3)]
    ids = [it.id for part in parts for it in part]
    assert sorted(ids) == sorted(it.id for it in data)
    assert all(shard_of(it.id, 3) == k for k, part in enumerate(parts, 1) for it in part)
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "1-3"):
        with pytest.raises(UsageError):
            parse_shard(bad)
