"""The hostile corpus (tests/hostile.py) through `vidattack perturb`, in this process.

For every input: processed when it is a video, else exactly one clear `Error:` line naming it once; no
traceback; no partial outputs; the input unchanged. A folder of odd names (brackets, quotes, unicode,
bytes that are not UTF-8, subfolders) has every good file processed. The 8192x8192 input runs in a
process of its own, whose peak memory is measured: it must be refused from its header, in the memory
of a tool that decoded nothing. `benchmarks/hostile_corpus.py` runs every input that way.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from batch_support import records, run, save_toy_model
from hostile import PEAK_LAUNCHER, Case, digest, make_corpus

from vidattack.cli.emit import literal
from vidattack.pipeline.outputs import Outputs

FAST = ("--steps", "1", "--threads", "1", "-f", "jsonl", "--outputs", "adv,report")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[Case]]:
    folder = tmp_path_factory.mktemp("hostile") / "corpus"
    cases = make_corpus(folder, huge=False)
    yield folder, cases
    for p in folder.rglob("*"):  # let pytest remove it
        if p.is_file() and not p.is_symlink():
            p.chmod(0o644)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_toy_model(tmp_path_factory.mktemp("model"))


def check(cases: list[Case], out: Path, result, by_input: dict[str, Case]) -> None:
    done = {r["input"]: r for r in records(result.stdout)}
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert all(line.startswith("Error: ") for line in errors), errors
    assert len(errors) == sum(r["status"] == "error" for r in done.values()), errors
    for text, case in by_input.items():
        record = done[text]
        outputs = Outputs.for_stem(out / Path(text).relative_to(out.parent / "corpus").parent, case.path.stem)
        if case.expect == "ok":
            assert record["status"] == "ok", (case.kind, record)
        elif case.expect == "refused":
            assert record["status"] == "error", (case.kind, record)
        if record["status"] == "error":
            (line,) = [e for e in errors if literal(text) in e]  # one line, naming the input once
            assert line.count(literal(text)) == 1, line
            assert record["error"].strip(), case.kind
            assert not [p for p in outputs.all() if p.exists()], (case.kind, "partial outputs")
        else:
            assert outputs.report.exists() and outputs.adversarial.exists(), case.kind


# slow: test_video_hostile.py checks every input of the corpus is decoded or refused in one line, fast
@pytest.mark.slow
def test_every_hostile_input_is_processed_or_refused_in_one_line(corpus, model, tmp_path):
    folder, cases = corpus
    before = {c.path: digest(c.path) for c in cases}
    inputs = [c.path for c in cases if c.path.parent == folder or c.path.is_relative_to(folder)]
    outside = [c.path for c in cases if c.path not in inputs]  # /dev/zero
    out = folder.parent / "out-args"

    result = run("perturb", *inputs, *outside, "--model", model, "-o", out, *FAST)

    assert result.exit_code == 1  # some inputs are refused, none stops the batch
    done = {r["input"]: r for r in records(result.stdout)}
    missing = [str(c.path) for c in cases if str(c.path) not in done]
    assert not missing and len(done) == len(cases), missing
    for case in cases:
        record = done[str(case.path)]
        expected = {"ok": {"ok"}, "refused": {"error"}, "ok_or_refused": {"ok", "error"}}[case.expect]
        assert record["status"] in expected, (case.kind, record)
        stem = Outputs.for_stem(out, case.path.stem)
        if record["status"] == "error":
            assert sum(literal(case.path) in line for line in result.stderr.splitlines()) == 1, case.kind
            assert not [p for p in stem.all() if p.exists()], (case.kind, "partial outputs")
    assert {c.path: digest(c.path) for c in cases} == before  # no input changed
    assert not [p for p in out.rglob(".*")], "temp or lock files left"


# slow: test_batch.py's test_odd_names_get_every_output checks it fast
@pytest.mark.slow
def test_a_folder_of_odd_names_has_every_good_file_processed(corpus, model):
    folder, cases = corpus
    out = folder.parent / "out-folder"

    result = run("perturb", folder, "--model", model, "-o", out, *FAST)

    assert result.exit_code == 1
    regular = {str(c.path): c for c in cases if c.path.is_relative_to(folder) and c.path.is_file()}
    check(cases, out, result, regular)
    # not regular files (FIFO, loops, dangling links, a folder named x.mp4) are not searched into
    assert {r["input"] for r in records(result.stdout)} == set(regular)
    assert (out / "sub" / "dir" / "nested.report.json").exists()
    assert (out / "clip.2020.report.json").exists() and (out / "clip.2021.report.json").exists()


# slow: test_video_hostile.py's test_the_huge_input_is_refused_from_its_header covers the refusal fast
@pytest.mark.slow
def test_a_huge_declared_size_is_refused_from_its_header_in_bounded_memory(tmp_path):
    import subprocess
    import sys

    from hostile import write_video

    huge = write_video(tmp_path / "huge_8192.mp4", 4, 8192, 8192, flat=True)  # 0.2 MB on disk
    before = digest(huge)
    cmd = [sys.executable, "-c", PEAK_LAUNCHER, sys.executable, "-m", "vidattack", "perturb", str(huge)]
    cmd += ["-o", str(tmp_path / "out"), *FAST]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    errors, _, peak = proc.stderr.rpartition("@maxrss ")
    lines = [line for line in errors.splitlines() if line.strip()]
    assert proc.returncode == 1
    assert len(lines) == 1 and "needs about" in lines[0] and "--max-memory" in lines[0], lines
    assert int(peak) < 1_500_000, f"peak RSS {int(peak) // 1024} MB"  # KiB; decoding it would need GBs
    assert digest(huge) == before and not list((tmp_path / "out").rglob("*.mp4"))
