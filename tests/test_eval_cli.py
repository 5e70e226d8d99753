"""`vidattack eval` on the command line: exit codes, one-line errors, summaries, resume, shards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vidattack.cli import app
from vidattack.cli.eval import parse_eps
from vidattack.errors import UsageError
from vidattack.eval import read_records
from vidattack.eval.records import comparable

runner = CliRunner()

# Two configurations of one step each on synthetic:1 (10 clips) against the bundled tiny-c3d.
GRID = ["--attack", "pgd-linf,multav-linf", "--eps", "2/255", "--steps", "1", "--threads", "1"]
RECORDS = 10 * 2


def run(*args: Any) -> Any:
    result = runner.invoke(app, ["eval", *[str(a) for a in args]])
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def rows_of(result: Any) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in r.items() if k != "seconds_per_video"} for r in json.loads(result.stdout)["rows"]
    ]


def records_of(folder: Path) -> list[dict[str, Any]]:
    recs = read_records(folder / "results.jsonl")
    return sorted((comparable(r) for r in recs), key=lambda r: (r["key"], r["video"]))


@pytest.fixture(scope="module")
def one_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("eval") / "run"
    return out, run("synthetic:1", *GRID, "--out", out, "--format", "json")


def test_eval_writes_one_record_per_video_and_configuration_and_the_summaries(one_run) -> None:
    out, result = one_run
    assert result.exit_code == 0, result.stderr
    rows = rows_of(result)
    assert [(r["attack"], r["budget"], r["videos"]) for r in rows] == [
        ("multav-linf", "2/255", 10),
        ("pgd-linf", "2/255", 10),
    ]
    for r in rows:
        assert r["robust_accuracy"] <= r["clean_accuracy"]
    assert len(read_records(out / "results.jsonl")) == RECORDS
    for name in ("summary.csv", "summary.json", "summary.md", "robust_accuracy.png", "configs.json"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "summary.json").read_text())["rows"][0]["key"] == rows[0]["key"]
    # MultAV got the ratio bound 1 + 2/255 from the additive budget
    configs = json.loads((out / "configs.json").read_text())["configs"]
    multav = next(c for c in configs if c["attack"] == "multav-linf")
    assert multav["params"]["eps_m"] == pytest.approx(1 + 2 / 255)
    assert not (out / "videos").exists()  # adversarial videos only with --outputs


def test_rerunning_the_same_command_adds_nothing(one_run) -> None:
    out, first = one_run
    before = (out / "results.jsonl").read_bytes()
    again = run("synthetic:1", *GRID, "--out", out, "--format", "json")
    assert again.exit_code == 0, again.stderr
    assert (out / "results.jsonl").read_bytes() == before
    assert rows_of(again) == rows_of(first)


# slow: test_eval.py's test_two_shards_merged_equal_one_run checks the same merge fast
@pytest.mark.slow
def test_two_shards_merged_equal_one_run(one_run, tmp_path: Path) -> None:
    out, first = one_run
    shards = [tmp_path / "s1", tmp_path / "s2"]
    for k, folder in enumerate(shards, 1):
        result = run("synthetic:1", *GRID, "--out", folder, "--shard", f"{k}/2", "-f", "jsonl")
        assert result.exit_code == 0, result.stderr
    sizes = [len(read_records(f / "results.jsonl")) for f in shards]
    assert sum(sizes) == RECORDS and min(sizes) > 0
    merged = run("--merge", *shards, "--out", tmp_path / "merged", "-f", "json")
    assert merged.exit_code == 0, merged.stderr
    assert rows_of(merged) == rows_of(first)
    assert records_of(tmp_path / "merged") == records_of(out)
    # without --out the merged summary is printed and nothing is written
    assert rows_of(run("--merge", *shards, "-f", "json")) == rows_of(first)


def test_outputs_keeps_the_adversarial_videos(tmp_path: Path) -> None:
    result = run("synthetic:1", "--attack", "pgd-linf", "--steps", "1", "--out", tmp_path, "--outputs", "-q")
    assert result.exit_code == 0, result.stderr
    (folder,) = (tmp_path / "videos").iterdir()
    attacked = [r for r in read_records(tmp_path / "results.jsonl") if r["attacked"]]
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{r['video']}.adv.mp4" for r in attacked)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["/no/such/data[red]set", "--out", "o"],
            2,
            "Error: no such data set: /no/such/data[red]set (expected",
        ),
        (["synthetic:x", "--out", "o"], 2, "Error: expected synthetic:N or synthetic:N:SEED"),
        (["synthetic:1"], 2, "Error: expected --out FOLDER"),
        (["synthetic:1", "synthetic:2", "--out", "o"], 2, "Error: expected one DATASET, got 2"),
        (
            ["synthetic:1", "--out", "o", "--attack", "pgd-lnf"],
            2,
            "Error: unknown attack 'pgd-lnf'; did you mean",
        ),
        (["synthetic:1", "--out", "o", "--eps", "2"], 2, "Error: --eps 2 for pgd-linf: eps: expected <= 1"),
        (["synthetic:1", "--out", "o", "--eps", "fgsm=1/255"], 2, "Error: --eps fgsm=...: fgsm is not among"),
        (["synthetic:1", "--out", "o", "--shard", "3/2"], 2, "Error: expected a shard K/N with 1 <= K <= N"),
        (["synthetic:1", "--out", "o", "--target", "jump"], 2, "Error: --target: expected a label"),
        (["synthetic:1", "--out", "o", "--ray-address", "auto"], 2, "Error: --ray-address goes with"),
        (
            ["a", "--merge", "--attack", "pgd-linf"],
            2,
            "Error: --merge combines finished runs; it takes no --attack",
        ),
        (["no-such-folder", "--merge"], 2, "Error: no-such-folder holds no results.jsonl"),
        (
            ["synthetic:1", "--out", "o", "--delivery", "h265"],
            2,
            "Error: expected --delivery codec h264 or vp9, got 'h265' (did you mean h264?)",
        ),
        (
            ["synthetic:1", "--out", "o", "--delivery", "h264:crf=18-28"],
            2,
            "Error: expected one crf for --delivery, got the range '18-28'",
        ),
        (
            ["a", "--merge", "--delivery", "h264"],
            2,
            "Error: --merge combines finished runs; it takes no --delivery",
        ),
        (
            ["synthetic:1", "--out", "o", "--robust-to", "h264:crf=28-18"],
            2,
            "Error: expected a crf range LOW-HIGH with LOW <= HIGH, got '28-18'",
        ),
        (
            ["synthetic:1", "--out", "o", "--robust-to", "h264:crf=18-28,eot=0"],
            2,
            "Error: expected eot in 1..64 (encodes per forward pass), got 0",
        ),
        (
            ["a", "--merge", "--robust-to", "h264"],
            2,
            "Error: --merge combines finished runs; it takes no --robust-to",
        ),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    args: list[str], code: int, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == code
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""
    assert not (tmp_path / "o").exists()  # nothing started


@pytest.mark.slow  # ~4 s on a quiet core; test_eval.py judges the delivered file without the CLI
def test_delivery_adds_the_after_delivery_column(tmp_path: Path) -> None:
    fgsm = ["synthetic:1", "--attack", "fgsm", "--threads", "1", "-f", "table"]
    plain = run(*fgsm, "--out", tmp_path / "plain")
    assert plain.exit_code == 0, plain.stderr
    assert "delivery" not in plain.stdout
    result = run(*fgsm, "--delivery", "h264:crf=23", "--out", tmp_path / "d")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("delivery") == 2  # the headers "delivery" and "after / delivery"
    assert "h264:crf=23" in result.stdout
    records = read_records(tmp_path / "d" / "results.jsonl")
    assert all(r["success_after_delivery"] is not None for r in records if r["attacked"])


def test_robust_to_adds_its_column_and_counts_encodes(tmp_path: Path) -> None:
    # one shard of five (a few clips of synthetic:1) keeps the real encodes of every attack step cheap
    fgsm = ["synthetic:1", "--shard", "1/5", "--attack", "fgsm", "--threads", "1", "-f", "table"]
    result = run(*fgsm, "--robust-to", "h264:crf=18-28,eot=2", "--out", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "robust" in result.stdout and "h264:crf=18-28,eot=2" in result.stdout
    records = read_records(tmp_path / "results.jsonl")
    assert records and all(r["encodes"] > 0 for r in records if r["attacked"])


def test_stop_when_fooled_is_an_error_when_no_attack_can_stop_early(tmp_path: Path) -> None:
    result = run("synthetic:1", "--attack", "flicker", "--out", tmp_path / "o", "--stop-when-fooled", "0")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: --stop-when-fooled: none of the attacks flicker can stop early")
    assert not (tmp_path / "o").exists()


def test_eps_takes_a_common_list_and_per_attack_lists() -> None:
    assert parse_eps(["1/255,2/255", "4/255"]) == ["1/255", "2/255", "4/255"]
    assert parse_eps(["1/255", "pgd-l2=1,2", "pgd-l2=4"]) == {"pgd-l2": ["1", "2", "4"], "*": ["1/255"]}
    assert parse_eps(None) == []
    with pytest.raises(UsageError, match="expected --eps LIST or ATTACK=LIST"):
        parse_eps(["=1"])


def test_a_failed_video_makes_exit_code_1(tmp_path: Path) -> None:
    (tmp_path / "data" / "still").mkdir(parents=True)
    (tmp_path / "data" / "still" / "broken.mp4").write_bytes(b"not a video")
    result = run(tmp_path / "data", "--steps", "1", "--out", tmp_path / "out", "-f", "json")
    assert result.exit_code == 1
    (row,) = json.loads(result.stdout)["rows"]
    assert (row["videos"], row["failed"]) == (0, 1)


def test_the_plot_names_the_model_and_the_dataset(one_run, tmp_path: Path, monkeypatch) -> None:
    from matplotlib.axes import Axes
    from PIL import Image

    from vidattack.eval import summarize_dir
    from vidattack.eval.summary import plot_robust_accuracy

    out, _ = one_run
    assert (
        Image.open(out / "robust_accuracy.png").text["Title"] == "Robust accuracy of tiny-c3d on synthetic:1"
    )
    titles: list[tuple[str, Any]] = []
    drawn = Axes.set_title
    monkeypatch.setattr(
        Axes,
        "set_title",
        lambda ax, text, **kw: titles.append((text, kw.get("parse_math"))) or drawn(ax, text, **kw),
    )
    # a dataset path is text: no mathtext for its `$`
    plot_robust_accuracy(summarize_dir(out, write=False), tmp_path / "p.png", title="tiny-c3d on /d/$x$")
    assert titles == [("tiny-c3d on /d/$x$", False)]


def test_robust_to_gives_the_iterative_attacks_40_steps_unless_steps_is_set(tmp_path, monkeypatch):
    # What `eval --robust-to` hands run_eval, caught before any (slow, encoded) step runs.
    seen: list[list[Any]] = []

    def caught(data: Any, configs: Any, model: Any, options: Any, **kwargs: Any) -> Any:
        seen.append(list(configs))
        raise UsageError("caught")

    monkeypatch.setattr("vidattack.eval.run_eval", caught)
    robust = ["synthetic:1", "--robust-to", "h264:crf=23", "--out", tmp_path]
    assert run(*robust, "--attack", "pgd-linf,fgsm").exit_code == 2
    assert run(*robust, "--attack", "pgd-linf", "--steps", "3").exit_code == 2
    assert run("synthetic:1", "--attack", "pgd-linf", "--out", tmp_path).exit_code == 2
    [defaults, given, plain] = [[(c.attack, c.params.get("steps")) for c in configs] for configs in seen]
    assert defaults == [("pgd-linf", 40), ("fgsm", None)]  # FGSM is one step by definition
    assert given == [("pgd-linf", 3)]
    assert plain[0][1] < 40  # without --robust-to, PGD keeps its own default
