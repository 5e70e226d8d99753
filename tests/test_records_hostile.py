"""Damaged and hostile `results.jsonl` / `configs.json` files (issue #27): resume and `--merge` skip
what a crash or a bad disk leaves with one warning naming file and line, and refuse what is not a
record with a usage error naming the file."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from vidattack.errors import OutputLockedError, UsageError
from vidattack.eval import merge, read_records
from vidattack.eval.records import ResultsWriter, read_configs, schema_problem


def record(video: str, **fields: Any) -> dict[str, Any]:
    """A well-formed ok record of configuration `k` for `video`."""
    base = {"key": "k", "video": video, "label": 0, "clean": 0, "adversarial": 1, "success": True}
    return base | {"queries": 1, "linf": 1.0, "l2": 2.0, "map": 0.5, "status": "ok"} | fields


def eval_folder(folder: Path, lines: list[bytes], configs: Any = None) -> Path:
    """An eval output folder holding exactly `lines` as its results file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.jsonl").write_bytes(b"".join(lines))
    if configs is not None:
        (folder / "configs.json").write_text(json.dumps(configs))
    return folder


def line(rec: dict[str, Any]) -> bytes:
    return json.dumps(rec).encode() + b"\n"


def test_a_line_of_latin1_bytes_is_skipped_with_its_file_and_line(tmp_path: Path, caplog) -> None:
    path = eval_folder(tmp_path, [line(record("a")), b'{"video": "caf\xe9"}\n', line(record("b"))])
    with caplog.at_level(logging.WARNING, logger="vidattack"):
        assert [r["video"] for r in read_records(path / "results.jsonl")] == ["a", "b"]
    assert [m for m in caplog.messages if "damaged" in m] == [
        f"{path / 'results.jsonl'}:2: skipping a damaged line (not UTF-8 JSON)"
    ]
    rows = merge([path])  # merge reads it the same way
    assert rows[0].videos == 2


def test_merge_warns_about_a_truncated_last_line(tmp_path: Path, caplog) -> None:
    path = eval_folder(tmp_path, [line(record("a")), line(record("b"))[:20]])
    with caplog.at_level(logging.WARNING, logger="vidattack"):
        assert merge([path])[0].videos == 1
    assert f"{path / 'results.jsonl'}:2: skipping a half-written last line" in caplog.messages


def test_json_nested_past_the_parser_is_a_damaged_line(tmp_path: Path) -> None:
    path = eval_folder(tmp_path, [b"[" * 100_000 + b"]" * 100_000 + b"\n", line(record("a"))])
    assert [r["video"] for r in read_records(path / "results.jsonl")] == ["a"]


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ({"key": "k", "video": "a", "label": 0}, "expected a field 'clean', found none"),
        (record("a", key=["k"]), "expected 'key' to be a string, got [\"k\"]"),
        (record("a", clean="zero"), "expected 'clean' to be an integer, got \"zero\""),
        (record("a", success=1), "expected 'success' to be true/false or null, got 1"),
        (record("a", status="maybe"), "expected status ok or error"),
        (["k", "a"], "expected a JSON object, got list"),
    ],
)
def test_merge_names_the_file_and_line_of_a_record_that_is_not_one(
    tmp_path: Path, bad: Any, problem: str
) -> None:
    path = eval_folder(tmp_path / "shard", [line(record("a")), line(bad)])  # type: ignore[arg-type]
    with pytest.raises(UsageError) as e:
        merge([path])
    assert str(e.value).startswith(f"{path / 'results.jsonl'}:2: not a results record: ")
    assert problem in str(e.value)


@pytest.mark.parametrize(
    ("configs", "problem"),
    [
        (["not", "an", "object"], 'expected an object with a list "configs"'),
        ({"configs": {"key": "k"}}, 'expected an object with a list "configs"'),
        ({"configs": [["k"]]}, "configuration 1: expected an object"),
        ({"configs": [{"key": ["k"]}]}, 'configuration 1: expected a string "key"'),
        ({"configs": [{"key": "k", "settings": [1]}]}, '"settings" is not an object'),
    ],
)
def test_a_list_shaped_or_wrong_configs_file_is_named(tmp_path: Path, configs: Any, problem: str) -> None:
    path = eval_folder(tmp_path, [line(record("a"))], configs)
    with pytest.raises(UsageError, match=f"^{path / 'configs.json'}: .*") as e:
        merge([path])
    assert problem in str(e.value)


def test_a_corrupt_configs_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "configs.json").write_bytes(b'{"configs": [\xff')
    with pytest.raises(UsageError, match=r"configs.json: damaged \(not UTF-8 JSON\)"):
        read_configs(tmp_path)


def test_a_retried_failure_replaces_its_record(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    failed = {"key": "k", "video": "a", "label": 0, "status": "error", "error": "boom"}
    path.write_bytes(line(record("b")) + line(failed))
    for redo in (failed, failed, record("a")):  # reruns that fail again, then one that works
        with ResultsWriter(path) as w:
            w.write(redo)
        assert len(read_records(path)) == 2  # replaced, never appended again
    assert [(r["video"], r["status"]) for r in read_records(path)] == [("b", "ok"), ("a", "ok")]


def test_a_second_writer_on_the_same_results_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    with ResultsWriter(path), pytest.raises(OutputLockedError, match=f"^{path}: another vidattack run"):
        ResultsWriter(path)
    with ResultsWriter(path):  # released on close
        pass
    assert not (tmp_path / ".results.jsonl.lock").exists()


def test_the_schema_accepts_what_the_worker_writes() -> None:
    assert schema_problem(record("a", ratio_max=None, linf="Infinity", success=None)) is None
    assert schema_problem({"key": "k", "video": "a", "label": 2, "status": "error"}) is None
