"""`vidattack.eval`: grids, records, resume, summaries, and local = Ray = shards at the same seed."""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from vidattack.data.datasets import Dataset, load_dataset
from vidattack.delivery import parse_delivery, parse_robust_to
from vidattack.errors import BadParameterError, UsageError
from vidattack.eval import RunOptions, build_grid, merge, read_records, run_eval, summarize_dir
from vidattack.eval.grid import Config
from vidattack.eval.records import ResultsWriter, comparable
from vidattack.eval.summary import SummaryRow, line_name, summarize, to_markdown
from vidattack.models.view import ModelView
from vidattack.pipeline.spec import resolve_target

# A tiny grid: two attacks, 2 steps each, on 6 synthetic clips (the first 6 of synthetic:1).
VIDEOS = 6


@pytest.fixture(scope="module")
def data(c3d: ModelView) -> Dataset:
    full = load_dataset("synthetic:1", c3d.labels)
    return replace(full, items=full.items[:VIDEOS])


@pytest.fixture(scope="module")
def configs(c3d: ModelView) -> list[Config]:
    return build_grid(
        ["pgd-linf", "multav-linf"],
        c3d,
        eps={"pgd-linf": ["2/255"], "multav-linf": ["1.02"]},
        settings={"steps": "2"},
        seed=3,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, data: Dataset, configs: list[Config], c3d: ModelView):
    """One local run: the records and summary every other way of running must reproduce."""
    out = tmp_path_factory.mktemp("local")
    return run_eval(data, configs, c3d, RunOptions(out_dir=out))


def _sorted(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((comparable(r) for r in records), key=lambda r: (r["key"], r["video"]))


def _untimed(rows: list[SummaryRow]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.to_dict().items() if k != "seconds_per_video"} for r in rows]


# -- the grid --------------------------------------------------------------------------------------


def test_config_key_hashes_resolved_params_model_seed_and_target(c3d: ModelView) -> None:
    (a,) = build_grid(["pgd-linf"], c3d, eps=["4/255"], seed=1)
    (b,) = build_grid(["pgd-linf"], c3d, eps=["0.01568627450980392"], seed=1)
    assert a.key == b.key  # two spellings of one budget
    (c,) = build_grid(["pgd-linf"], c3d, eps=["4/255"], seed=2)
    (d,) = build_grid(["pgd-linf"], c3d, eps=["4/255"], seed=1, targets=["random"])
    assert len({a.key, c.key, d.key}) == 3
    assert Config.from_dict(json.loads(json.dumps(a.to_dict()))) == a


def test_grid_is_attacks_times_budgets_times_targets(c3d: ModelView) -> None:
    grid = build_grid(
        ["pgd-linf", "pgd-l2"], c3d, eps=["1/255", "2/255"], targets=["untargeted", "least-likely"]
    )
    assert len(grid) == 8
    assert grid[0].params["eps"] == pytest.approx(1 / 255)


def test_grid_refuses_what_no_attack_takes(c3d: ModelView) -> None:
    with pytest.raises(BadParameterError, match="none of the attacks pgd-linf takes 'eps_m'"):
        build_grid(["pgd-linf"], c3d, settings={"eps_m": "1.1"})
    with pytest.raises(BadParameterError, match="--eps -1 for multav-linf: eps_m: expected >= 1"):
        build_grid(["multav-linf"], c3d, eps=["-1"])
    with pytest.raises(BadParameterError, match=r"--target.*random, least-likely"):
        build_grid(["pgd-linf"], c3d, targets=["jump"])


def test_an_additive_budget_below_1_is_the_ratio_bound_1_plus_eps_for_multav(c3d: ModelView) -> None:
    eps = {"pgd-linf": ["4/255"], "multav-linf": ["4/255", "1.02"], "multav-l2": ["4/255"]}
    grid = build_grid(["pgd-linf", "multav-linf", "multav-l2"], c3d, eps=eps, alpha="1/255")
    params = {(c.attack, c.budget): c.params for c in grid}
    assert params["multav-linf", "4/255"]["eps_m"] == pytest.approx(1 + 4 / 255)
    assert params["multav-linf", "4/255"]["alpha_m"] == pytest.approx(1 + 1 / 255)
    assert params["multav-linf", "1.02"]["eps_m"] == pytest.approx(1.02)  # a ratio bound as given
    assert params["pgd-linf", "4/255"]["eps"] == pytest.approx(4 / 255)
    assert params["multav-l2", "4/255"]["eps_m"] == pytest.approx(4 / 255)  # a norm of the log-ratio
    # the same ratio spelled both ways is one configuration
    assert len(build_grid(["multav-linf"], c3d, eps=["4/255", repr(1 + 4 / 255)])) == 1


def test_stop_when_fooled_goes_to_the_attacks_that_can_stop_early(c3d: ModelView) -> None:
    grid = build_grid(["pgd-linf", "flicker"], c3d, stop_when_fooled=0.5)
    assert {c.attack: c.stop_when_fooled for c in grid} == {"pgd-linf": 0.5, "flicker": None}
    (plain,) = build_grid(["pgd-linf"], c3d)
    assert grid[0].key != plain.key and "stop-when-fooled=0.5" in grid[0].label
    assert Config.from_dict(json.loads(json.dumps(grid[0].to_dict()))) == grid[0]
    with pytest.raises(UsageError, match="--stop-when-fooled: none of the attacks flicker can stop early"):
        build_grid(["flicker"], c3d, stop_when_fooled=0.0)
    with pytest.raises(BadParameterError, match="expected a stop-when-fooled margin >= 0"):
        build_grid(["pgd-linf"], c3d, stop_when_fooled=-1.0)


def test_an_early_stop_is_recorded(tmp_path: Path, data: Dataset, c3d: ModelView) -> None:
    configs = build_grid(["pgd-linf"], c3d, eps=["8/255"], stop_when_fooled=0.0)
    run = run_eval(
        replace(data, items=data.items[:2]), configs, c3d, RunOptions(out_dir=tmp_path, verify=False)
    )
    records = read_records(tmp_path / "results.jsonl")
    fooled = [r for r in records if r["success"]]
    assert fooled and all(r["stopped_at"] is not None and r["stopped_at"] < 5 for r in fooled)  # of 5 steps
    assert run.rows[0].attack_success_rate == 1.0


def test_targets_random_is_seeded_per_video_and_never_the_label(c3d: ModelView) -> None:
    lp = torch.log_softmax(torch.arange(10.0), dim=0)
    picks = [resolve_target("random", c3d, label=4, clean_log_probs=lp, seed=seed) for seed in range(50)]
    assert 4 not in picks and len(set(picks)) == 9
    assert picks == [
        resolve_target("random", c3d, label=4, clean_log_probs=lp, seed=seed) for seed in range(50)
    ]
    assert resolve_target("least-likely", c3d, label=4, clean_log_probs=lp) == 0
    assert resolve_target("still", c3d, label=4, clean_log_probs=lp) == 9
    assert resolve_target("untargeted", c3d, label=4, clean_log_probs=lp) is None


# -- delivery (issue #17): is the attack still there after a real lossy encode? ---------------------

H264 = parse_delivery("h264:crf=23")


def test_delivery_is_in_the_key_only_when_set() -> None:
    plain = Config(attack="fgsm", params={"eps": 0.01}, target="untargeted", seed=0, model="name:tiny")
    assert plain.key == "fa3ba26f83054f64"  # computed before Config had a delivery: old keys unchanged
    delivered = replace(plain, delivery=H264)
    assert delivered.key != plain.key and delivered.label == "fgsm delivery=h264:crf=23"
    # hashed in its resolved form: FFmpeg's defaults spelled out are the same encode
    assert replace(plain, delivery=parse_delivery("h264:preset=medium")).key == delivered.key
    assert replace(plain, delivery=parse_delivery("h264:crf=28")).key != delivered.key
    assert Config.from_dict(json.loads(json.dumps(delivered.to_dict()))) == delivered
    assert pickle.loads(pickle.dumps(delivered)) == delivered  # travels to Ray workers inside Config


def test_build_grid_gives_every_configuration_the_delivery(c3d: ModelView) -> None:
    grid = build_grid(["fgsm", "pgd-linf"], c3d, delivery=H264)
    assert [c.delivery for c in grid] == [H264, H264]
    plain = build_grid(["fgsm", "pgd-linf"], c3d)
    assert [replace(c, delivery=None).key for c in grid] == [c.key for c in plain]
    with pytest.raises(UsageError, match="expected delivery as a DeliverySpec"):
        build_grid(["fgsm"], c3d, delivery="h264")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def delivered_run(tmp_path_factory: pytest.TempPathFactory, data: Dataset, c3d: ModelView):
    """FGSM on 3 clips judged after an H.264 crf 23 encode, the videos kept."""
    out = tmp_path_factory.mktemp("delivery")
    configs = build_grid(["fgsm"], c3d, delivery=H264)
    three = replace(data, items=data.items[:3])
    return three, configs, run_eval(three, configs, c3d, RunOptions(out_dir=out, save_outputs=True))


def test_records_judge_the_delivered_file(delivered_run, c3d: ModelView) -> None:
    from vidattack.pipeline import predict_file

    _, (cfg,), run = delivered_run
    records = read_records(run.files["results"])
    attacked = [r for r in records if r["attacked"]]
    assert attacked
    for r in attacked:
        path = run.out_dir / "videos" / cfg.key / f"{r['video']}.delivery.mp4"
        assert r["delivered"] == predict_file(path, model=c3d, device="cpu")["index"]  # a fresh decode
        assert r["success_after_delivery"] == (r["delivered"] != r["label"])
        assert r["delivery_bytes"] == path.stat().st_size > 0
    for r in records:
        if not r["attacked"]:
            assert (r["delivered"], r["success_after_delivery"], r["delivery_bytes"]) == (None, None, None)
    (row,) = run.rows
    correct = [r for r in records if r["clean"] == r["label"]]
    assert row.delivery == "h264:crf=23"
    assert row.success_after_delivery == sum(r["success_after_delivery"] for r in correct) / len(correct)


def test_records_without_a_delivery_say_none(reference) -> None:
    records = read_records(reference.files["results"])
    assert {(r["delivered"], r["success_after_delivery"], r["delivery_bytes"]) for r in records} == {
        (None, None, None)
    }
    assert all(r.delivery is None and r.success_after_delivery is None for r in reference.rows)


def test_delivery_shards_merge_to_the_same_records(delivered_run, tmp_path: Path, c3d: ModelView) -> None:
    three, configs, run = delivered_run
    dirs = [tmp_path / "s1", tmp_path / "s2"]
    for k, d in enumerate(dirs, 1):
        run_eval(three, configs, c3d, RunOptions(out_dir=d, shard=(k, 2)))
    rows = merge(dirs, tmp_path / "merged")
    assert _untimed(rows) == _untimed(run.rows)
    assert _sorted(read_records(tmp_path / "merged" / "results.jsonl")) == _sorted(
        read_records(run.files["results"])
    )


def test_a_rerun_without_delivery_adds_rows_beside(delivered_run, tmp_path: Path, c3d: ModelView) -> None:
    three, configs, _ = delivered_run
    run_eval(three, configs, c3d, RunOptions(out_dir=tmp_path))
    again = run_eval(three, build_grid(["fgsm"], c3d), c3d, RunOptions(out_dir=tmp_path))
    assert (again.written, again.skipped) == (3, 0)
    assert [r.delivery for r in again.rows] == [None, "h264:crf=23"]
    md = (tmp_path / "summary.md").read_text()
    assert "| delivery |" in md and "| after delivery |" in md and "| fgsm | - | untargeted | - | - |" in md


def test_the_delivery_columns_show_only_with_a_delivery(reference, delivered_run) -> None:
    plain = to_markdown(reference.rows)
    assert "delivery" not in plain
    assert plain.splitlines()[0] == (
        "| attack | eps | target | settings | videos | clean acc | robust acc | success | after encode | "
        "mean queries | median queries | Linf /255 | L2 /255 | MAP /255 | s/video |"
    )  # as before delivery existed
    assert "| h264:crf=23 |" in to_markdown(delivered_run[2].rows)


def test_a_delivery_needs_the_lossless_file(data: Dataset, c3d: ModelView, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"expected verify=True with a delivery \(h264:crf=23\)"):
        run_eval(
            data, build_grid(["fgsm"], c3d, delivery=H264), c3d, RunOptions(out_dir=tmp_path, verify=False)
        )
    assert not (tmp_path / "results.jsonl").exists()


# -- robust-to (issue #17): attacks optimised through the delivery encode ---------------------------

ROBUST = parse_robust_to("h264:crf=18-28")


def test_robust_to_is_in_the_key_only_when_set() -> None:
    plain = Config(attack="fgsm", params={"eps": 0.01}, target="untargeted", seed=0, model="name:tiny")
    assert plain.key == "fa3ba26f83054f64"  # computed before Config had a robust_to: old keys unchanged
    robust = replace(plain, robust_to=ROBUST)
    assert robust.key != plain.key and robust.label == "fgsm robust_to=h264:crf=18-28"
    # hashed in its resolved form, EOT draws and low-pass included: the defaults spelled out are the
    # same attack, any other encode, draw count or low-pass another one
    same = parse_robust_to("h264:crf=18-28,preset=medium,eot=1,sigma=2")
    assert replace(plain, robust_to=same).key == robust.key
    for other in ("h264:crf=18-27", "h264:crf=18-28,eot=2", "h264:crf=18-28,sigma=0", "vp9:crf=18-28"):
        assert replace(plain, robust_to=parse_robust_to(other)).key != robust.key, other
    # attacking through an encode is not judging after it
    at_23 = replace(plain, robust_to=parse_robust_to("h264:crf=23"))
    assert at_23.key != replace(plain, delivery=H264).key != replace(at_23, delivery=H264).key
    tuned = replace(plain, robust_to=parse_robust_to("h264:crf=18,23,28,eot=3,sigma=0.123456789"))
    for cfg in (robust, tuned, replace(at_23, delivery=H264)):
        assert Config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # configs.json, shards
        assert pickle.loads(pickle.dumps(cfg)) == cfg  # Ray workers


def test_build_grid_gives_every_configuration_the_robust_to(c3d: ModelView) -> None:
    grid = build_grid(["fgsm", "pgd-linf"], c3d, robust_to=ROBUST)
    assert [c.robust_to for c in grid] == [ROBUST, ROBUST]
    plain = build_grid(["fgsm", "pgd-linf"], c3d)
    assert [replace(c, robust_to=None).key for c in grid] == [c.key for c in plain]
    with pytest.raises(UsageError, match="expected robust_to as a DeliverySpec"):
        build_grid(["fgsm"], c3d, robust_to="h264")  # type: ignore[arg-type]


# crf 51, the coarsest H.264 encode, so that what the model says after it differs from what it says of
# the lossless video on some clip: a record judged on the attack's last encode instead would show.
CRF_51 = parse_delivery("h264:crf=51")


@pytest.fixture(scope="module")
def robust_run(tmp_path_factory: pytest.TempPathFactory, data: Dataset, c3d: ModelView):
    """FGSM through H.264 crf 51 on 3 clips, judged after the same encode too, the videos kept."""
    out = tmp_path_factory.mktemp("robust")
    configs = build_grid(["fgsm"], c3d, robust_to=parse_robust_to("h264:crf=51"), delivery=CRF_51)
    three = replace(data, items=data.items[:3])
    return three, configs, run_eval(three, configs, c3d, RunOptions(out_dir=out, save_outputs=True))


def test_robust_records_count_encodes_and_judge_the_lossless_file(robust_run, reference, c3d) -> None:
    from vidattack.pipeline import predict_file

    _, (cfg,), run = robust_run
    records = read_records(run.files["results"])
    attacked = [r for r in records if r["attacked"]]
    assert attacked
    plain_clean = {r["video"]: r["clean"] for r in read_records(reference.files["results"])}
    for r in records:
        assert r["clean"] == plain_clean[r["video"]]  # the clean video is classified as without it
    for r in attacked:
        assert r["encodes"] > 0  # every forward pass of the attack ran the real encoder
        lossless = run.out_dir / "videos" / cfg.key / f"{r['video']}.adv.mp4"
        assert r["adversarial"] == predict_file(lossless, model=c3d, device="cpu")["index"]
        assert r["success"] == (r["adversarial"] != r["label"])
        # judged after a real delivery encode as well (--delivery beside --robust-to)
        assert r["success_after_delivery"] == (r["delivered"] != r["label"])
    assert any(r["delivered"] != r["adversarial"] for r in attacked)  # so the lossless check can fail
    assert all(r["encodes"] is None for r in records if not r["attacked"])
    (row,) = run.rows
    assert (row.robust_to, row.delivery) == ("h264:crf=51", "h264:crf=51")
    assert row.success_after_delivery is not None
    assert line_name(row) == "fgsm (robust to h264:crf=51) (h264:crf=51)"


def test_a_black_box_attack_queries_through_the_encode(data: Dataset, c3d: ModelView, tmp_path: Path) -> None:
    # SR-BAD's static start needs no surrogate model; a few queries of two samples each
    settings = {"max_queries": "10", "population": "2", "tentative": "static", "batch_size": "2"}
    configs = build_grid(["sr-bad"], c3d, settings=settings, robust_to=parse_robust_to("h264:crf=23"))
    run = run_eval(replace(data, items=data.items[:1]), configs, c3d, RunOptions(out_dir=tmp_path))
    (record,) = read_records(run.files["results"])
    assert record["attacked"] and record["queries"] > 0
    assert record["encodes"] == record["queries"]  # every query answered after one real encode


def test_records_without_robust_to_count_no_encodes(reference) -> None:
    assert {r["encodes"] for r in read_records(reference.files["results"])} == {None}
    assert all(r.robust_to is None for r in reference.rows)
    assert "robust to" not in to_markdown(reference.rows)


def test_the_robust_to_column_shows_only_with_one(robust_run, tmp_path: Path, c3d: ModelView) -> None:
    three, _, run = robust_run
    plain = run_eval(three, build_grid(["fgsm"], c3d, delivery=CRF_51), c3d, RunOptions(out_dir=tmp_path))
    assert "robust to" not in to_markdown(plain.rows)
    md = to_markdown([*plain.rows, *run.rows])
    assert md.splitlines()[0].startswith("| attack | eps | target | settings | robust to | delivery |")
    assert "| fgsm | - | untargeted | - | h264:crf=51 | h264:crf=51 |" in md
    assert "| fgsm | - | untargeted | - | - | h264:crf=51 |" in md


def test_a_rerun_with_the_same_robust_to_adds_nothing(robust_run, tmp_path: Path, c3d: ModelView) -> None:
    three, _, first = robust_run
    two = replace(three, items=three.items[:2])
    configs = build_grid(["fgsm"], c3d, robust_to=parse_robust_to("h264:crf=18-28,eot=2"))
    run = run_eval(two, configs, c3d, RunOptions(out_dir=tmp_path))
    records = read_records(run.files["results"])
    # eot=2 averages two encodes per forward pass: twice the encodes of one draw
    once = {r["video"]: r["encodes"] for r in read_records(first.files["results"])}
    assert [r["encodes"] for r in records if r["attacked"]] == [
        2 * once[r["video"]] for r in records if r["attacked"]
    ]
    before = run.files["results"].read_bytes()
    # the same spec spelled with its defaults is the same configuration: resumed, not redone
    spelled = parse_robust_to("h264:crf=18-28,preset=medium,eot=2,sigma=2")
    for spec in (configs[0].robust_to, spelled):
        again = run_eval(two, build_grid(["fgsm"], c3d, robust_to=spec), c3d, RunOptions(out_dir=tmp_path))
        assert (again.written, again.skipped) == (0, 2)
    assert run.files["results"].read_bytes() == before


# -- records ---------------------------------------------------------------------------------------


def _record(video: str, **fields: Any) -> dict[str, Any]:
    """A minimal well-formed ok record of configuration `k`."""
    base = {"key": "k", "video": video, "label": 0, "clean": 0, "adversarial": 1, "success": True}
    return base | {"queries": 1, "linf": 1.0, "l2": 1.0, "map": 1.0} | fields


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record) + "\n"


def test_results_writer_drops_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text(_line(_record("a")) + '{"key": "k", "vi')
    assert [r["video"] for r in read_records(path)] == ["a"]
    with ResultsWriter(path) as w:
        w.write(_record("b"))
    assert path.read_text() == _line(_record("a")) + _line(_record("b"))


def test_summary_definitions_on_hand_made_records() -> None:
    def rec(video: str, label: int, clean: int, adv: int, **kw: Any) -> dict[str, Any]:
        base = {"key": "k", "video": video, "label": label, "clean": clean, "adversarial": adv}
        base |= {"success": adv != label, "success_after_encode": adv != label, "attacked": clean == label}
        return base | {"queries": 10, "linf": 2.0, "l2": 5.0, "map": 0.5, "seconds": 1.0} | kw

    records = [
        rec("a", 0, 0, 1),  # fooled
        rec("b", 0, 0, 0),  # robust
        rec("c", 1, 2, 2, queries=0, linf=0.0),  # already wrong: not attacked
        rec("d", 1, 1, 1, status="error"),  # failed: not counted
    ]
    (row,) = summarize(records, {})
    assert (row.videos, row.failed) == (3, 1)
    assert row.clean_accuracy == pytest.approx(2 / 3)
    assert row.robust_accuracy == pytest.approx(1 / 3)
    assert row.attack_success_rate == pytest.approx(1 / 2)
    assert (row.mean_queries, row.mean_linf) == (10, 2.0)


def test_summary_settings_name_the_steps_and_alpha_options() -> None:
    record = {"key": "k", "video": "a", "label": 0, "clean": 0, "adversarial": 1, "success": True}
    record |= {"queries": 40, "linf": 4.0, "l2": 5.0, "map": 0.5, "seconds": 1.0}
    config = {"attack": "pgd-linf", "settings": {"random_start": True}, "steps": "40", "alpha": "auto"}
    (row,) = summarize([record], {"k": config})
    assert row.settings == "alpha=auto random_start=True steps=40"


# -- runs ------------------------------------------------------------------------------------------


def test_eval_counts_and_accuracies(reference, configs: list[Config]) -> None:
    records = read_records(reference.out_dir / "results.jsonl")
    assert len(records) == VIDEOS * len(configs) == reference.written
    assert {r["status"] for r in records} == {"ok"}
    assert len(reference.rows) == len(configs)
    for row in reference.rows:
        assert row.videos == VIDEOS
        assert row.clean_accuracy is not None and row.clean_accuracy > 0.5
        assert row.robust_accuracy is not None and row.robust_accuracy <= row.clean_accuracy
        assert row.mean_queries == 2
    pgd = next(r for r in records if r["attack"] == "pgd-linf" and r["attacked"])
    assert pgd["linf"] <= 2.0 + 1e-9 and pgd["frames_perturbed"] == 16
    assert pgd["success_after_encode"] == pgd["success"]  # the lossless file keeps the attack
    for name in ("summary.csv", "summary.json", "summary.md", "robust_accuracy.png", "configs.json"):
        assert (reference.out_dir / name).stat().st_size > 0
    assert "| pgd-linf | 2/255 |" in (reference.out_dir / "summary.md").read_text()


def test_rerun_skips_everything_done(reference, data: Dataset, configs: list[Config], c3d: ModelView) -> None:
    again = run_eval(data, configs, c3d, RunOptions(out_dir=reference.out_dir, verify=True))
    assert (again.written, again.skipped) == (0, VIDEOS * len(configs))


def test_records_keep_the_info_entries_asked_for(
    tmp_path: Path, data: Dataset, c3d: ModelView, reference: Any
) -> None:
    assert all("info" not in r for r in read_records(reference.files["results"]))  # none asked
    two = replace(data, items=data.items[:2])
    configs = build_grid(["sparse"], c3d, settings={"max_iter": "2", "frames": "4"})
    run = run_eval(
        two, configs, c3d, RunOptions(out_dir=tmp_path, info=["iterations", "sparsity", "no_such_entry"])
    )
    records = read_records(run.files["results"])
    assert len(records) == 2
    for r in records:
        if r["attacked"]:
            assert set(r["info"]) == {"iterations", "sparsity"}
            assert r["info"]["iterations"] <= 2 and r["info"]["sparsity"] >= 0.75  # 4 of 16 frames
        else:
            assert r["info"] == {}
    assert any(r["attacked"] for r in records)


def test_resume_after_a_kill_gives_the_same_summary(
    reference, tmp_path: Path, data: Dataset, configs: list[Config], c3d: ModelView
) -> None:
    class Killed(Exception):
        pass

    def kill_after_five(done: int, total: int) -> None:
        if done == 5:
            raise Killed

    with pytest.raises(Killed):
        run_eval(data, configs, c3d, RunOptions(out_dir=tmp_path), progress=kill_after_five)
    results = tmp_path / "results.jsonl"
    text = results.read_bytes()
    results.write_bytes(text[: len(text) - 40])  # the last record half written when the kill came
    assert len(read_records(results)) == 4

    resumed = run_eval(data, configs, c3d, RunOptions(out_dir=tmp_path))
    assert (resumed.skipped, resumed.written) == (4, VIDEOS * len(configs) - 4)
    assert _untimed(resumed.rows) == _untimed(reference.rows)
    assert _sorted(read_records(results)) == _sorted(read_records(reference.out_dir / "results.jsonl"))


def test_two_shards_merged_equal_one_run(
    reference, tmp_path: Path, data: Dataset, configs: list[Config], c3d: ModelView
) -> None:
    dirs = [tmp_path / "s1", tmp_path / "s2"]
    for k, d in enumerate(dirs, 1):
        run_eval(data, configs, c3d, RunOptions(out_dir=d, shard=(k, 2)))
    sizes = [len(read_records(d / "results.jsonl")) for d in dirs]
    assert sum(sizes) == VIDEOS * len(configs) and min(sizes) > 0
    rows = merge(dirs, tmp_path / "merged")
    assert _untimed(rows) == _untimed(reference.rows)
    assert _untimed(summarize_dir(tmp_path / "merged", write=False)) == _untimed(reference.rows)
    merged = read_records(tmp_path / "merged" / "results.jsonl")
    assert _sorted(merged) == _sorted(read_records(reference.out_dir / "results.jsonl"))


def test_a_broken_video_fails_its_records_and_the_run_goes_on(
    tmp_path: Path, configs: list[Config], c3d: ModelView
) -> None:
    (tmp_path / "still").mkdir()
    (tmp_path / "still" / "broken.mp4").write_bytes(b"not a video")
    data = load_dataset(tmp_path, c3d.labels)
    run = run_eval(data, configs, c3d, RunOptions(out_dir=tmp_path / "out"))
    assert run.failed == len(configs)
    records = read_records(tmp_path / "out" / "results.jsonl")
    assert all(r["status"] == "error" and "BadVideoError" in r["error"] for r in records)
    assert [row.failed for row in run.rows] == [1, 1]


def test_unknown_executor_is_a_usage_error(
    data: Dataset, configs: list[Config], c3d: ModelView, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="expected --executor local or ray"):
        run_eval(data, configs, c3d, RunOptions(out_dir=tmp_path, executor="dask"))


# -- Ray -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    from vidattack.eval.executors import package_root

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": package_root(), "OMP_NUM_THREADS": "1"}},
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


@pytest.mark.slow  # ~6 s on a quiet core with its fixture: a local Ray instance
def test_ray_gives_the_same_records_as_local(
    ray_local, reference, tmp_path: Path, data: Dataset, configs: list[Config], c3d: ModelView
) -> None:
    run = run_eval(data, configs, c3d, RunOptions(out_dir=tmp_path, executor="ray", chunk_size=2, threads=1))
    assert run.written == VIDEOS * len(configs)
    assert _sorted(read_records(tmp_path / "results.jsonl")) == _sorted(
        read_records(reference.out_dir / "results.jsonl")
    )
    assert _untimed(run.rows) == _untimed(reference.rows)
    assert all(not math.isnan(r.seconds_per_video or 0) for r in run.rows)


@pytest.mark.slow  # ~6 s on a quiet core with its fixture: a local Ray instance
def test_ray_gives_the_same_delivery_records_as_local(ray_local, delivered_run, tmp_path: Path, c3d) -> None:
    three, configs, run = delivered_run
    ray_run = run_eval(three, configs, c3d, RunOptions(out_dir=tmp_path, executor="ray", threads=1))
    assert _sorted(read_records(tmp_path / "results.jsonl")) == _sorted(read_records(run.files["results"]))
    assert _untimed(ray_run.rows) == _untimed(run.rows)


def test_importing_eval_does_not_import_ray() -> None:
    import subprocess
    import sys

    code = "import sys, vidattack.eval, vidattack.data.datasets; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1]).returncode == 0


def test_a_video_too_large_to_deliver_is_refused_before_its_attack(
    c3d: ModelView, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import EXAMPLES

    import vidattack.pipeline.delivery as delivery
    import vidattack.pipeline.stages as stages

    # the example as if its header declared more frames than a delivery may decode whole
    monkeypatch.setattr(delivery, "_whole_bytes", lambda path: (10**12, "1000000 frames of 112x112"))
    attacks: list[object] = []
    monkeypatch.setattr(stages, "run_attack", lambda *a, **k: attacks.append(a))
    manifest = tmp_path / "one.csv"
    manifest.write_text(f"path,label\n{EXAMPLES / 'move_left_1.mp4'},move_left\n")
    one = load_dataset(manifest, c3d.labels)
    run = run_eval(one, build_grid(["fgsm"], c3d, delivery=H264), c3d, RunOptions(out_dir=tmp_path / "out"))
    (record,) = read_records(run.files["results"])
    assert record["status"] == "error" and "whole in memory" in record["error"]
    assert not attacks  # refused from the header, before the attack
