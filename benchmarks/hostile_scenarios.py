"""The hostile corpus, round two (issue #27): whole commands rather than single inputs.

Each scenario builds its files in a fresh folder, runs one `vidattack` command (or two, or sends it a
signal), and judges the result the way the issue states it: exit code, the one error line (naming the
file, short, no traceback, no torch advice), the files left behind. `benchmarks/hostile_corpus.py
--scenarios` runs them all and prints one row each; `--tree DIR` runs another checkout (the before).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hostile_tools import (
    Outcome,
    Runner,
    clip,
    line,
    one_clean_line,
    record,
    results_dir,
    synthetic_clip,
    torch_files,
)

# -- the scenarios: each returns (as the issue asks?, what happened in a few words) --------------------

Check = Callable[[Runner, Path], tuple[bool, str]]
SCENARIOS: list[tuple[str, str, Check]] = []


def scenario(case: str, test: str) -> Callable[[Check], Check]:
    """Register a scenario: the table's case, and the test that covers it."""

    def add(fn: Check) -> Check:
        SCENARIOS.append((case, test, fn))
        return fn

    return add


def said(o: Outcome) -> str:
    first = (o.errors or [ln for ln in o.stderr.splitlines() if ln.strip()] or [""])[0]
    return f"exit {o.exit}, {o.seconds:.1f}s: {first[:110]}"


FAST = ("--steps", "1", "--threads", "1")
PERTURB = ("-f", "jsonl", *FAST)


@scenario("results: non-UTF-8 line, eval resume", "test_records_hostile::test_a_line_of_latin1_bytes...")
def _latin1_resume(run: Runner, d: Path) -> tuple[bool, str]:
    results_dir(d / "out", [b'{"key": "k", "video": "caf\xe9"}\n'])
    o = run("eval", "synthetic:1", "--out", d / "out", *FAST, "-f", "json")
    return o.exit == 0 and "results.jsonl:1: skipping a damaged line" in o.stderr, said(o)


@scenario("results: non-UTF-8 line, --merge", "test_records_hostile::test_a_line_of_latin1_bytes...")
def _latin1_merge(run: Runner, d: Path) -> tuple[bool, str]:
    results_dir(d / "s", [line(record("a")), b'{"video": "caf\xe9"}\n'])
    o = run("eval", "--merge", d / "s", "-f", "json")
    return o.exit == 0 and "results.jsonl:2: skipping a damaged line" in o.stderr, said(o)


@scenario(
    "results: truncated last line, --merge", "test_records_hostile::test_merge_warns_about_a_truncated..."
)
def _torn_merge(run: Runner, d: Path) -> tuple[bool, str]:
    results_dir(d / "s", [line(record("a")), line(record("b"))[:25]])
    o = run("eval", "--merge", d / "s", "-f", "json")
    return o.exit == 0 and "results.jsonl:2: skipping a half-written last line" in o.stderr, said(o)


def _bad_merge(
    run: Runner, d: Path, bad: bytes, configs: bytes | None = None, name: str = "results.jsonl"
) -> tuple[bool, str]:
    results_dir(d / "s", [line(record("a")), bad], configs)
    o = run("eval", "--merge", d / "s", "-f", "json")
    return one_clean_line(o, 2, str(d / "s" / name)), said(o)


@scenario("results: record missing fields, --merge", "test_records_hostile::test_merge_names_the_file...")
def _missing(run: Runner, d: Path) -> tuple[bool, str]:
    return _bad_merge(run, d, line({"key": "k", "video": "b", "label": 0}))


@scenario("results: list as key, --merge", "test_records_hostile::test_merge_names_the_file...")
def _list_key(run: Runner, d: Path) -> tuple[bool, str]:
    return _bad_merge(run, d, line(record("b", key=["k"])))


@scenario("results: wrong field types, --merge", "test_records_hostile::test_merge_names_the_file...")
def _types(run: Runner, d: Path) -> tuple[bool, str]:
    return _bad_merge(run, d, line(record("b", clean="zero")))


@scenario("results: corrupt configs.json, --merge", "test_records_hostile::test_a_corrupt_configs_file...")
def _corrupt_configs(run: Runner, d: Path) -> tuple[bool, str]:
    return _bad_merge(run, d, line(record("b")), b'{"configs": [\xff', "configs.json")


@scenario("results: list-shaped configs.json, --merge", "test_records_hostile::test_a_list_shaped...")
def _list_configs(run: Runner, d: Path) -> tuple[bool, str]:
    return _bad_merge(run, d, line(record("b")), b'["k"]', "configs.json")


@scenario(
    "results: a retried failure is not appended again", "test_records_hostile::test_a_retried_failure..."
)
def _retried(run: Runner, d: Path) -> tuple[bool, str]:
    first = run("eval", "synthetic:1", "--out", d / "out", *FAST, "-f", "json")
    path = d / "out" / "results.jsonl"
    recs = [json.loads(x) for x in path.read_text().splitlines()]
    failed = {k: recs[0][k] for k in ("key", "video", "label")} | {"status": "error", "error": "boom"}
    path.write_text("".join(json.dumps(r) + "\n" for r in [failed, *recs[1:]]))
    for _ in range(2):
        again = run("eval", "synthetic:1", "--out", d / "out", *FAST, "-f", "json")
    n = len(path.read_text().splitlines())
    return first.exit == 0 and again.exit == 0 and n == len(
        recs
    ), f"{n} lines after 2 reruns, {len(recs)} pairs"


@scenario("results: a second eval on the same --out", "test_records_hostile::test_a_second_writer...")
def _second_eval(run: Runner, d: Path) -> tuple[bool, str]:
    out = d / "out"
    first = run.popen("eval", "synthetic:2", "--out", out, "--steps", "40", "--threads", "1", "-q")
    deadline = time.monotonic() + 120
    while not (out / "results.jsonl").exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    o = run("eval", "synthetic:2", "--out", out, "--steps", "40", "--threads", "1", "-q")
    first.terminate()  # SIGTERM: it cleans up after itself (SIGKILL would leave its temp folder)
    first.communicate()
    return one_clean_line(o, 1, "another vidattack run") and o.seconds < 30, said(o)


def _manifest(d: Path, text: bytes, suffix: str = ".csv") -> Path:
    clip(d / "sub" / "x.mp4")
    path = d / f"m{suffix}"
    path.write_bytes(text)
    return path


def _dataset_refused(run: Runner, d: Path, spec: str | Path, *needles: str) -> tuple[bool, str]:
    o = run("eval", spec, "--out", d / "out", *FAST)
    return one_clean_line(o, 2, *needles), said(o)


@scenario("data: 1 MB label (eval)", "test_datasets_hostile::test_a_one_megabyte_label...")
def _mb_label(run: Runner, d: Path) -> tuple[bool, str]:
    m = _manifest(d, b"sub/x.mp4," + b"y" * 1_000_000 + b"\n")
    return _dataset_refused(run, d, m, f"{m}:1")


@scenario("data: 1 MB label (train)", "test_datasets_hostile::test_a_one_megabyte_label...")
def _mb_label_train(run: Runner, d: Path) -> tuple[bool, str]:
    m = _manifest(d, b"sub/x.mp4," + b"y" * 1_000_000 + b"\n")
    o = run("train", "--data", m, "--arch", "tiny-c3d", "--out", d / "m.safetensors", "--epochs", "1")
    return one_clean_line(o, 2, f"{m}:1"), said(o)


@scenario("data: Latin-1 CSV", "test_datasets_hostile::test_a_latin1_manifest...")
def _latin1_csv(run: Runner, d: Path) -> tuple[bool, str]:
    m = _manifest(d, "sub/x.mp4,still\nsub/caf\u00e9.mp4,still\n".encode("latin-1"))
    return _dataset_refused(run, d, m, f"{m}:2", "UTF-8")


@scenario("data: JSONL nested 100,000 deep", "test_datasets_hostile::test_jsonl_nested_100000_deep...")
def _deep(run: Runner, d: Path) -> tuple[bool, str]:
    m = _manifest(d, b"[" * 100_000 + b"]" * 100_000 + b"\n", ".jsonl")
    return _dataset_refused(run, d, m, f"{m}:1")


@scenario("data: 100 KB path", "test_datasets_hostile::test_a_100kb_path...")
def _long_path(run: Runner, d: Path) -> tuple[bool, str]:
    m = _manifest(d, b"d/" * 50_000 + b"x.mp4,still\n")
    return _dataset_refused(run, d, m, f"{m}:1")


@scenario("data: synthetic:99999999999999999999", "test_datasets_hostile::test_a_huge_synthetic...")
def _huge_synthetic(run: Runner, d: Path) -> tuple[bool, str]:
    return _dataset_refused(run, d, "synthetic:99999999999999999999", "synthetic:N")


@scenario("data: CSV with a UTF-8 BOM", "test_datasets_hostile::test_a_utf8_bom_is_accepted")
def _bom(run: Runner, d: Path) -> tuple[bool, str]:
    m = _manifest(d, b"\xef\xbb\xbfpath,label\r\nsub/x.mp4,still\r\n")
    o = run("eval", m, "--out", d / "out", *FAST, "-f", "json")
    return o.exit == 0, said(o)


@scenario(
    "data: kept videos of sub/a b.mp4 and sub/a_b.mp4", "test_datasets_hostile::test_kept_names_never_collide"
)
def _collide(run: Runner, d: Path) -> tuple[bool, str]:
    from vidattack.data.synthetic import CLASSES

    synthetic_clip(d / "sub" / "a b.mp4", seed=1)
    synthetic_clip(d / "sub" / "a_b.mp4", seed=2)
    (d / "m.csv").write_text(f"sub/a b.mp4,{CLASSES[0]}\nsub/a_b.mp4,{CLASSES[0]}\n")
    o = run("eval", d / "m.csv", "--out", d / "out", *FAST, "--outputs", "-f", "jsonl")
    videos = d / "out" / "videos"
    kept = sorted(p.name for p in videos.rglob("*.adv.mp4")) if videos.exists() else []
    return o.exit == 0 and len(kept) == 2, f"exit {o.exit}, kept {kept}"


@scenario(
    "data: ./sub/x, sub//x, sub/../sub/x listed",
    "test_datasets_hostile::test_one_video_under_two_spellings...",
)
def _spellings(run: Runner, d: Path) -> tuple[bool, str]:
    m = _manifest(d, b"./sub/x.mp4,still\nsub//x.mp4,still\nsub/../sub/x.mp4,still\n")
    return _dataset_refused(run, d, m, f"{m}:2", "listed twice")


@scenario("data: one video with conflicting labels", "test_datasets_hostile::test_conflicting_labels...")
def _conflict(run: Runner, d: Path) -> tuple[bool, str]:
    m = _manifest(d, b"sub/x.mp4,still\n./sub/x.mp4,move_left\n")
    return _dataset_refused(run, d, m, f"{m}:2", "another label")


@scenario(
    "batch: 300-character file name beside a good one", "test_batch_hostile::test_a_300_character_name..."
)
def _long_name(run: Runner, d: Path) -> tuple[bool, str]:
    good = clip(d / "good.mp4")
    o = run("perturb", good, d / ("a" * 300 + ".mp4"), "-o", d / "out", *PERTURB)
    ok = [r for r in o.records if r["status"] == "ok"]
    return o.exit == 1 and len(ok) == 1 and len(o.records) == 2, said(o)


@scenario("batch: NUL byte in a stdin line", "test_batch_hostile::test_a_stdin_line_that_cannot_be_a_name...")
def _nul(run: Runner, d: Path) -> tuple[bool, str]:
    good = clip(d / "good.mp4")
    o = run("perturb", "-", "-o", d / "out", *PERTURB, stdin=os.fsencode(good) + b"\nba\0d.mp4\n")
    ok = [r for r in o.records if r["status"] == "ok"]
    return o.exit == 1 and len(ok) == 1 and len(o.records) == 2, said(o)


@scenario("batch: CRLF stdin lines", "test_batch_hostile::test_undecodable_and_crlf_stdin_lines")
def _crlf(run: Runner, d: Path) -> tuple[bool, str]:
    good = clip(d / "good.mp4")
    o = run("perturb", "-", "-o", d / "out", *PERTURB, stdin=os.fsencode(good) + b"\r\n")
    return o.exit == 0 and len(o.records) == 1, said(o)


@scenario(
    "batch: file inside a hidden folder of a folder input", "test_batch_hostile::test_files_inside_hidden..."
)
def _hidden(run: Runner, d: Path) -> tuple[bool, str]:
    clip(d / "in" / "a.mp4")
    clip(d / "in" / ".cache" / "b.mp4")
    o = run("perturb", d / "in", "-o", d / "out", *PERTURB)
    return o.exit == 0 and [Path(r["input"]).name for r in o.records] == ["a.mp4"], said(o)


def _signal_stage(run: Runner, d: Path, stage: str, sig: int) -> tuple[bool, str]:
    video = clip(d / "long.mp4", frames=600, size=(120, 160), flat=True)
    out = d / "out"

    def under_way() -> bool:
        return any(p.name.startswith(f".long.{stage}.mp4.tmp-") for p in out.glob(".*"))

    o = run.signalled(
        "perturb", video, "-o", out, *FAST, "--outputs", "adv,report,heatmaps", ready=under_way, sig=sig
    )
    left = sorted(p.name for p in out.rglob("*"))
    good = o.exit == 128 + sig and o.seconds < 5 and not left and "--resume" in o.stderr
    return good, f"exit {o.exit} {o.seconds:.1f}s after the signal, left {left}"


@scenario("signal: SIGTERM while encoding adv.mp4", "test_cancel::test_perturb_stops_within_5_s...[adv]")
def _sig_adv(run: Runner, d: Path) -> tuple[bool, str]:
    return _signal_stage(run, d, "adv", signal.SIGTERM)


@scenario(
    "signal: SIGINT while rendering the heatmap video",
    "test_cancel::test_perturb_stops_within_5_s...[heatmap]",
)
def _sig_heatmap(run: Runner, d: Path) -> tuple[bool, str]:
    return _signal_stage(run, d, "heatmap", signal.SIGINT)


@scenario(
    "signal: SIGTERM during eval (temp folder, lock)", "test_cancel::test_eval_removes_its_temp_folder..."
)
def _sig_eval(run: Runner, d: Path) -> tuple[bool, str]:
    out, temp = d / "out", d / "tmp"
    temp.mkdir()
    own = Runner(run.tree, temp)  # a temp folder of its own: a kill -9 elsewhere leaves folders behind
    o = own.signalled(
        "eval", "synthetic:2", "--out", out, "--steps", "30", "--threads", "1", "-q",
        ready=lambda: any(temp.glob("vidattack-eval-*")),
    )  # fmt: skip
    left = sorted(p.name for p in temp.glob("vidattack-eval-*"))
    lock = (out / ".results.jsonl.lock").exists()
    return (
        o.exit == 143 and o.seconds < 5 and not left and not lock,
        f"exit {o.exit} {o.seconds:.1f}s, temp left {left}, lock {lock}",
    )


@scenario(
    "temp: kill -9 during eval, then the same eval again",
    "test_tempdirs::test_a_rerun_after_kill_9_during_eval_leaves_no_temp_folder",
)
def _kill9_eval(run: Runner, d: Path) -> tuple[bool, str]:
    out, temp = d / "out", d / "tmp"
    temp.mkdir()
    own = Runner(run.tree, temp)  # a temp folder of its own, so only this run's leftovers count
    args = ("eval", "synthetic:1", "-a", "pgd-linf", "--out", out, "--steps", "30", "--threads", "1", "-q")
    killed = own.signalled(*args, ready=lambda: any(temp.glob("vidattack-eval-*")), sig=signal.SIGKILL)
    before = len(list(temp.glob("vidattack-eval-*")))
    o = own(*args)
    left = sorted(p.name for p in temp.iterdir())
    return (
        killed.exit == -signal.SIGKILL and o.exit == 0 and not left,
        f"killed: exit {killed.exit}, {before} folder(s) left; rerun: exit {o.exit}, temp left {left}",
    )


@scenario("signal: SIGINT 0.2 s after start (imports)", "test_tempdirs::test_a_signal_while_starting...")
def _sig_startup(run: Runner, d: Path) -> tuple[bool, str]:
    # timed, so it may land before Python runs any of our code (then Python's own traceback shows)
    start = time.monotonic()
    o = run.signalled(
        "eval", "synthetic:1", "--out", d / "out", *FAST, ready=lambda: time.monotonic() > start + 0.2,
        sig=signal.SIGINT,
    )  # fmt: skip
    return one_clean_line(o, 130, "interrupted by SIGINT"), said(o)


def _train_resume(run: Runner, d: Path, name: str, *needles: str) -> tuple[bool, str]:
    files = torch_files(d / "ckpt")
    o = run(
        "train",
        "--data",
        "synthetic:2",
        "--arch",
        "tiny-c3d",
        "--out",
        d / "m.safetensors",
        "--resume",
        files[name],
    )
    return one_clean_line(
        o, 2, str(files[name]), *needles
    ) and "a pickle ran code" not in o.stdout + o.stderr, said(o)


@scenario(
    "checkpoint: truncated train --resume state", "test_checkpoints_hostile::test_a_bad_training_state..."
)
def _trunc_state(run: Runner, d: Path) -> tuple[bool, str]:
    return _train_resume(run, d, "truncated.pt")


@scenario("checkpoint: empty train --resume state", "test_checkpoints_hostile::test_a_bad_training_state...")
def _empty_state(run: Runner, d: Path) -> tuple[bool, str]:
    return _train_resume(run, d, "empty.pt")


@scenario(
    "checkpoint: pickle as train --resume state", "test_checkpoints_hostile::test_a_bad_training_state..."
)
def _pickle_state(run: Runner, d: Path) -> tuple[bool, str]:
    return _train_resume(run, d, "evil.pth")


@scenario(
    "checkpoint: train --init evil.pth --trust-checkpoint",
    "test_checkpoints_hostile::test_train_takes_trust...",
)
def _train_trust(run: Runner, d: Path) -> tuple[bool, str]:
    files = torch_files(d / "ckpt")
    o = run(
        "train",
        "--data",
        "synthetic:1",
        "--init",
        files["evil.pth"],
        "--out",
        d / "m.safetensors",
        "--trust-checkpoint",
    )
    return "No such option" not in o.stderr and o.exit == 2 and "no weights found" in o.stderr, said(o)


@scenario(
    "checkpoint: a pickle named .safetensors", "test_checkpoints_hostile::test_a_pickle_named_safetensors..."
)
def _fake_safetensors(run: Runner, d: Path) -> tuple[bool, str]:
    files = torch_files(d / "ckpt")
    o = run("predict", clip(d / "a.mp4"), "--model", files["evil.safetensors"])
    return one_clean_line(o, 2, str(files["evil.safetensors"])), said(o)


@scenario("small: --steps 0", "test_options_hostile::test_options_that_ask_for_nothing...")
def _steps0(run: Runner, d: Path) -> tuple[bool, str]:
    o = run("perturb", clip(d / "a.mp4"), "-o", d / "out", "--steps", "0", "--threads", "1")
    return o.exit == 2 and not (d / "out").exists(), said(o)


@scenario("small: --threads 0", "test_options_hostile::test_options_that_ask_for_nothing...")
def _threads0(run: Runner, d: Path) -> tuple[bool, str]:
    o = run("perturb", clip(d / "a.mp4"), "-o", d / "out", "--steps", "1", "--threads", "0")
    return o.exit == 2 and not (d / "out").exists(), said(o)


@scenario("small: dangling symlink at an output path", "test_options_hostile::test_a_dangling_symlink...")
def _dangling(run: Runner, d: Path) -> tuple[bool, str]:
    (d / "out").mkdir()
    (d / "out" / "a.adv.mp4").symlink_to(d / "nowhere.mp4")
    o = run("perturb", clip(d / "a.mp4"), "-o", d / "out", *PERTURB)
    kept = (d / "out" / "a.adv.mp4").is_symlink() and not (d / "nowhere.mp4").exists()
    return o.exit == 1 and kept, said(o)


@scenario("small: 50 GB sparse file", "test_options_hostile::test_a_huge_file_that_is_not_a_video...")
def _sparse(run: Runner, d: Path) -> tuple[bool, str]:
    huge = d / "huge.mp4"
    with huge.open("wb") as f:
        f.truncate(50 * 2**30)
    o = run("perturb", huge, "-o", d / "out", *PERTURB)
    return o.exit == 1 and o.seconds < 20, said(o)


def run_scenarios(tree: Path, work: Path, only: str | None = None) -> list[dict[str, Any]]:
    """Every scenario (or those whose case holds `only`) against the checkout `tree`, one row each."""
    temp = work / "tmp"
    temp.mkdir(parents=True, exist_ok=True)
    run = Runner(tree, temp)
    rows = []
    for i, (case, test, check) in enumerate(SCENARIOS):
        if only and only not in case:
            continue
        folder = work / f"s{i:02d}"
        folder.mkdir(parents=True)
        start = time.monotonic()
        try:
            good, what = check(run, folder)
        except Exception as e:  # a scenario that cannot even be judged counts as failed
            good, what = False, f"{type(e).__name__}: {e}"
        rows.append(
            {"case": case, "good": good, "what": what, "test": test, "seconds": time.monotonic() - start}
        )
        print(f"{'good' if good else 'BAD ':4} {case[:52]:52} {what[:150]}", flush=True)
    return rows
