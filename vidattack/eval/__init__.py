"""`vidattack eval`: robustness tables of a model over a labelled data set and a grid of attacks.

    from vidattack import load_model
    from vidattack.data.datasets import load_dataset
    from vidattack.eval import RunOptions, build_grid, run_eval

    model = load_model("tiny-c3d")
    data = load_dataset("synthetic:10", model.labels)
    configs = build_grid(["pgd-linf", "multav-linf"], model, eps=["1/255", "2/255"])
    run = run_eval(data, configs, model, RunOptions(out_dir="runs/x"))   # executor="ray", shard=(1, 2)
    run.rows                                                  # one SummaryRow per configuration

`GridOptions(attacks, eps=...).configs(model)` is `build_grid` from one value, as the command builds it.

Modules: `options` (`GridOptions`, `RunOptions`), `grid` (configurations and keys), `records` (results.jsonl), `worker` (one video),
`executors` (local, Ray), `run` (the driver), `summary` (tables, files, plot, merge of shards).

The command is `vidattack eval` (`vidattack/cli/eval.py`): it parses DATASET and the options and
calls only `load_dataset`, `build_grid`, `run_eval` (or `merge` for `--merge DIR...`), then prints
`EvalRun.rows`. Budgets: `--eps` is each attack's own budget through the registry's common options;
an additive eps e < 1 given to a ratio-bounded attack (MultAV-Linf and its region variants) becomes
the ratio bound 1 + e (`vidattack.budget` says why). `--stop-when-fooled MARGIN` reaches the attacks
that can stop early (`Attack.stops_when_fooled`) through `Config.stop_when_fooled`. `--delivery SPEC`
(`build_grid(delivery=parse_delivery("h264:crf=23"))`, part of every key) also encodes each written
lossless video with that lossy codec and judges the decoded copy: records gain `delivered`,
`success_after_delivery` and `delivery_bytes`, the summary a `success_after_delivery` rate (issue #17:
the lossless file proves the attack, an ordinary H.264 encode often undoes it). `--robust-to SPEC`
(`build_grid(robust_to=parse_robust_to("h264:crf=18-28"))`, part of every key with its `eot` and
`sigma`) gives every attack the model seen through that encode (`pipeline.delivery.robust_model`,
seeded with the attack's seed) and still judges it on the lossless tensors: records gain `encodes`
(the real encodes made), the summary a `robust_to` column. Beside `--delivery`, the two say whether
optimising through the codec made the attack survive it.

Not yet used: the engine's batched attacks (`pipeline.stages.run_attack_batch`); a chunk of videos
under one configuration could be attacked in one call (`batch_key`) with the same records.
"""

from __future__ import annotations

from vidattack.eval.executors import LocalExecutor, RayExecutor, get_executor
from vidattack.eval.grid import Config, build_grid
from vidattack.eval.options import GridOptions, RunOptions
from vidattack.eval.records import read_records
from vidattack.eval.run import EvalRun, run_eval
from vidattack.eval.summary import SummaryRow, merge, summarize_dir
from vidattack.eval.worker import WorkOptions

__all__ = [
    "Config",
    "EvalRun",
    "GridOptions",
    "LocalExecutor",
    "RayExecutor",
    "RunOptions",
    "SummaryRow",
    "WorkOptions",
    "build_grid",
    "get_executor",
    "merge",
    "read_records",
    "run_eval",
    "summarize_dir",
]
