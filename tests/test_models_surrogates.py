"""Image surrogates (V-BAD's white-box image models): names, layers, offline failures and the torch hub
cache. Nothing is downloaded: the network is replaced by one that fails."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from vidattack.errors import BadCheckpointError, BadParameterError
from vidattack.models.surrogates import IMAGENET_WEIGHTS, load_surrogate


def test_imagenet_surrogates_fail_quickly_and_clearly_offline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def offline(url: str, timeout: float | None = None) -> None:
        assert timeout is not None, "a download without a timeout hangs for minutes offline"
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(BadCheckpointError, match=r"cannot download .*offline, put the file at"):
        load_surrogate("resnet50")
    assert not list((tmp_path / "checkpoints").iterdir()), "a failed download left a file behind"
    with pytest.raises(BadCheckpointError, match="no such weights file"):
        load_surrogate(f"densenet121:{tmp_path / 'missing.pth'}")
    with pytest.raises(BadParameterError, match="did you mean resnet50"):
        load_surrogate("resnet5")
    with pytest.raises(BadParameterError, match="expected a layer of tiny-image-cnn"):
        load_surrogate("tiny-image-cnn", layer="layer9")


def test_imagenet_surrogate_loads_from_the_hub_cache_with_old_densenet_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import torchvision.models as tvm

    net = tvm.densenet121(weights=None)
    # the original checkpoints spell `norm1` as `norm.1`; they must still load
    old = {
        k.replace("norm1.", "norm.1.").replace("conv2.", "conv.2."): v for k, v in net.state_dict().items()
    }
    url = tvm.get_weight(IMAGENET_WEIGHTS["densenet121"]).url
    cache = tmp_path / "checkpoints" / url.rsplit("/", 1)[1]
    cache.parent.mkdir()
    torch.save(old, cache)

    def must_not_download(*args: object, **kwargs: object) -> None:
        pytest.fail("must not download when cached")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", must_not_download)
    surrogate = load_surrogate("densenet121", layer="mid")
    assert surrogate.layer == "denseblock2"
    assert surrogate(torch.rand(1, 3, 40, 50)).shape[:2] == (1, 512)
