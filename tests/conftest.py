"""Shared fixtures: a tiny deterministic model, bundled models, example clips, video files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
import torch
from torch import nn

from vidattack.models.view import BoundModel, FramePlan, ModelView, Preprocess

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# Two cores in CI: one thread per test process avoids oversubscription and keeps timings stable.
torch.set_num_threads(1)


class ToyC3D(nn.Module):
    """A 3D conv net small enough to attack in milliseconds; deterministic from its seed."""

    def __init__(self, num_classes: int = 5, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv3d(3, 8, kernel_size=3, stride=(1, 2, 2), padding=1)
        self.pool = nn.AdaptiveAvgPool3d((2, 2, 2))
        self.head = nn.Linear(64, num_classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.relu(self.conv(x))).flatten(1)
        return self.head(h)


def toy_view(num_classes: int = 5, clip_len: int = 8, seed: int = 0) -> ModelView:
    net = ToyC3D(num_classes, seed).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return ModelView(net, Preprocess(clip_len=clip_len), [f"class{i}" for i in range(num_classes)], "toy")


def bind_plan(view: ModelView, frame_ids: tuple[int, ...], num_frames: int) -> BoundModel:
    """`view` bound to a plan that samples `frame_ids` of a `num_frames`-long video, as one clip."""
    plan = FramePlan(num_frames=num_frames, frame_ids=frame_ids, clips=(tuple(range(len(frame_ids))),))
    return view.bind(plan)


@pytest.fixture
def toy() -> ModelView:
    return toy_view()


@pytest.fixture
def toy_video() -> torch.Tensor:
    """(1, 8, 3, 40, 48) float video on the 8-bit grid, with some black pixels."""
    g = torch.Generator().manual_seed(7)
    x = torch.randint(0, 256, (1, 8, 3, 40, 48), generator=g).float() / 255
    x[..., :2, :2] = 0.0
    return x


def write_clip(path: Path, frames: torch.Tensor, fps: int = 8) -> Path:
    """Write uint8 frames (T, H, W, 3) losslessly to `path` with the project's own writer."""
    from vidattack.video import Video, save_video

    video = Video(
        frames=frames, pts=list(range(frames.shape[0])), time_base=Fraction(1, fps), rate=Fraction(fps)
    )
    return save_video(video, path, overwrite=True)


@pytest.fixture(scope="session")
def c3d() -> ModelView:
    from vidattack.models.bundled import load_bundled

    return load_bundled("tiny-c3d")


@pytest.fixture(scope="session")
def lrcn() -> ModelView:
    from vidattack.models.bundled import load_bundled

    return load_bundled("tiny-lrcn")


@pytest.fixture(scope="session")
def example_clips() -> list[Path]:
    clips = sorted(EXAMPLES.glob("*.mp4"))
    if not clips:
        pytest.fail("examples/*.mp4 are missing: run python scripts/make_examples.py")
    return clips


@pytest.fixture(scope="session")
def example_clip(example_clips: list[Path]) -> Path:
    return next((p for p in example_clips if p.name == "move_left_1.mp4"), example_clips[0])
