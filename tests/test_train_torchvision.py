"""`vidattack train --arch` with a fresh network (issue #15): a torchvision r3d_18 trains for one step on
two clips and is written as a model every command loads; `--seed` decides the fresh weights. Kept to
two 16-frame clips: one training step of r3d_18 costs seconds on a CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import EXAMPLES

from vidattack.models import load_model
from vidattack.models.trained import build_network
from vidattack.train import TrainConfig, train_model


def _manifest(path: Path, names: list[str]) -> str:
    path.write_text("path,label\n" + "".join(f"{EXAMPLES / n}.mp4,{n.rsplit('_', 1)[0]}\n" for n in names))
    return str(path)


# slow: an r3d_18 trained end to end; test_train.py's tiny runs cover train-save-load, the fast test below the torchvision build
@pytest.mark.slow
def test_a_fresh_torchvision_network_trains_and_loads_as_a_model(tmp_path: Path) -> None:
    from torchvision.models.video import r3d_18

    data = _manifest(tmp_path / "train.csv", ["move_left_1", "still_1"])
    held = _manifest(tmp_path / "held.csv", ["move_left_1"])
    out = tmp_path / "r3d.safetensors"
    cfg = TrainConfig(epochs=1, batch_size=2, lr=1e-2, eval_size=0)
    result = train_model(cfg, data=data, heldout=held, out=out, arch="r3d_18", labels=["move_left", "still"])

    view = load_model(str(out))
    assert isinstance(view.net, type(r3d_18())) and view.labels == ["move_left", "still"]
    # the file holds the trained weights: the same network as the run returned, predicting the same
    x = torch.rand(1, 16, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    plan = view.plan(16)
    with torch.no_grad():
        assert torch.allclose(view.bind(plan)(x), result.view.bind(plan)(x), atol=1e-5)
    # and one optimiser step moved them away from the fresh network's: --seed seeds the weights
    torch.manual_seed(cfg.seed)
    fresh = build_network("r3d_18", 2)[0].state_dict()
    trained = view.net.state_dict()
    assert not torch.equal(fresh["stem.0.weight"], trained["stem.0.weight"])
    assert not torch.equal(fresh["fc.weight"], trained["fc.weight"])
    assert result.heldout["n"] == 1 and 0 <= result.heldout["clean"] <= 1


def test_the_same_seed_trains_the_same_fresh_network(tmp_path: Path) -> None:
    # the second run starts with the global generator where the first left it: only --seed decides
    data = _manifest(tmp_path / "train.csv", ["move_left_1", "still_1"])
    cfg = dict(epochs=1, batch_size=2, eval_size=0, seed=3)
    runs = [
        train_model(TrainConfig(**cfg), data=data, out=tmp_path / f"{i}.safetensors", arch="tiny-c3d")
        for i in range(2)
    ]
    a, b = (r.view.net.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
