"""`vidattack eval`: robustness tables of a model over a labelled data set and a grid of attacks.

    from vidattack import load_model
    from vidattack.data.datasets import load_dataset
    from vidattack.eval import build_grid, run_eval

    model = load_model("tiny-c3d")
    data = load_dataset("synthetic:10", model.labels)
    configs = build_grid(["pgd-linf", "multav-linf"], model, eps=["1/255", "2/255"])
    run = run_eval(data, configs, model, out_dir="runs/x")   # executor="ray", shard=(1, 2)
    run.rows                                                  # one SummaryRow per configuration

Modules: `grid` (configurations and keys), `records` (results.jsonl), `worker` (one video),
`executors` (local, Ray), `run` (the driver), `summary` (tables, files, plot, merge of shards).

Integration after the redesign (#10):
- `vidattack/cli/eval.py` parses DATASET and the options and calls only
  `load_dataset(spec, model.labels)`, `build_grid(attacks, model, eps=..., alpha=..., steps=...,
  settings=..., targets=..., seed=...)`, `run_eval(data, configs, model, out_dir=..., executor=...,
  ray_address=..., shard=parse_shard(text), device=..., save_outputs=..., progress=...)`, and for
  `--merge DIR...` `merge(dirs, out_dir)`; it prints `EvalRun.rows` with `summary.COLUMNS` and
  `summary.format_cell`. `DatasetError` moves to `vidattack.errors`.
- `grid.attack_from_text` holds a marked SHIM for the registry's `eps=/alpha=/steps=` keywords;
  it calls the registry's own version as soon as that takes them; then delete the shim.
- `worker._attack_one` becomes calls of the pipeline's stages (sample, attack, write, verify).
"""

from __future__ import annotations

from vidattack.eval.executors import LocalExecutor, RayExecutor, get_executor
from vidattack.eval.grid import Config, build_grid
from vidattack.eval.records import read_records
from vidattack.eval.run import EvalRun, run_eval
from vidattack.eval.summary import SummaryRow, merge, summarize_dir
from vidattack.eval.worker import WorkOptions

__all__ = [
    "Config",
    "EvalRun",
    "LocalExecutor",
    "RayExecutor",
    "SummaryRow",
    "WorkOptions",
    "build_grid",
    "get_executor",
    "merge",
    "read_records",
    "run_eval",
    "summarize_dir",
]
