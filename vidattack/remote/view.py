"""A deployed model as a `ModelView`: the pipeline and every black-box attack use it unchanged.

The service decodes and samples the video itself, so the attack must perturb the video as it is sent:
the view's frame plan is every frame of the file at its own resolution (one clip), and its bound model
turns each candidate `(T, 3, H, W)` into an 8-bit lossless MP4, asks the target, and maps the answer to
log-probabilities over a fixed label table:

- labels are the `--labels` file's when given; otherwise each new label gets the next free slot (in the
  order answers bring them; `OPEN_SLOTS` slots, unused ones named `(unseen N)`);
- a full answer gives every listed class its log-score; a top-k answer gives the classes it leaves out
  an equal share of the probability it leaves (1 - sum of the listed scores), capped at the smallest
  listed score: a true class that dropped out of the top k is known only to be below it;
- a label-only answer (with `label_only`) is probability 1 on that label; scores are then ignored, so a
  decision-based attack sees only decisions. Without `label_only`, an answer without scores is an error
  (a score-based attack would be fed fake scores).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import torch
from torch import Tensor, nn

from vidattack.errors import BadParameterError
from vidattack.models.capabilities import Capability
from vidattack.models.view import FramePlan, ModelView, Preprocess
from vidattack.remote.answers import Answer, BadAnswerError
from vidattack.remote.candidate import CODEC_NOTE, CandidateTiming, derived_key, to_uint8
from vidattack.remote.client import RemoteClient, Traffic
from vidattack.remote.options import RemoteOptions
from vidattack.remote.transport import make_target, read_headers
from vidattack.video.types import SampledFrames

OPEN_SLOTS = 1000  # Kinetics has 400 classes, Moments in Time 339, ImageNet-21k-style services more
_FLOOR = 1e-12  # the probability of a class an answer rules out: finite, so log-probabilities stay finite


@dataclass(frozen=True)
class TimedPlan(FramePlan):
    """Every frame of a video and when each is shown: candidates are sent at the source's timestamps
    (the service samples by time), not at a fixed rate. `traffic` adds up what the models bound to
    this plan sent (one plan per input: the input's own traffic, for its report)."""

    timing: CandidateTiming | None = None
    traffic: Traffic = field(default_factory=Traffic, compare=False, hash=False)


class RemoteView(ModelView):
    """A deployed classifier (`--model http://...` or `cmd:...`); see the module docstring."""

    def __init__(self, client: RemoteClient, labels: list[str] | None) -> None:
        width = len(labels) if labels else OPEN_SLOTS
        super().__init__(
            net=nn.Identity(),  # no weights here: nothing for a white-box attack to take
            preprocess=Preprocess(clip_len=1),
            labels=list(labels) if labels else [f"(unseen {i})" for i in range(width)],
            name=client.target.name,
            source="remote",
            notes=[f"candidates sent as {CODEC_NOTE}, every frame at the file's resolution and timestamps"],
        )
        self.client = client
        self._fixed = bool(labels)
        self._known = len(labels) if labels else 0
        self.capabilities = Capability.LABELS if client.options.label_only else Capability.SCORES

    def plan(self, num_frames: int) -> FramePlan:
        """Every frame, one clip: the service samples the file itself."""
        if num_frames < 1:
            raise ValueError(f"expected a video with at least one frame, got {num_frames}")
        ids = tuple(range(num_frames))
        return FramePlan(num_frames=num_frames, frame_ids=ids, clips=(ids,))

    def plan_for(self, frames: SampledFrames) -> TimedPlan:
        """Every frame, with the source's own timestamps and rate (its fps when the file has no rate)."""
        plan = self.plan(frames.num_frames)
        rate = frames.rate or Fraction(self.client.options.fps)
        timing = CandidateTiming(tuple(frames.pts[: frames.num_frames]), frames.time_base, rate)
        return TimedPlan(plan.num_frames, plan.frame_ids, plan.clips, timing)

    def sent_by(self, plan: FramePlan) -> dict[str, Any] | None:
        """What the models bound to `plan` sent (see `Traffic.sent`); None for a plan without timing."""
        return plan.traffic.sent() if isinstance(plan, TimedPlan) else None

    def bind(self, plan: FramePlan) -> RemoteBound:  # type: ignore[override]
        return RemoteBound(self, plan)

    def index_for(self, label: str) -> int:
        """The slot of `label`, given one if it is new (an error when the table is full or fixed)."""
        if label in self.labels[: self._known]:
            return self.labels.index(label)
        if self._fixed:
            raise BadAnswerError(f"{self.name}: answered a label not in --labels: {label[:60]!r}")
        if self._known >= len(self.labels):
            raise BadAnswerError(
                f"{self.name}: answered more than {len(self.labels)} distinct labels; pass --labels FILE"
            )
        self.labels[self._known] = label
        self._known += 1
        return self._known - 1

    def log_probs(self, answer: Answer) -> Tensor:
        """The answer as log-probabilities `(K,)` over the label table (see the module docstring)."""
        k = len(self.labels)
        if answer.scores is None or self.capabilities == Capability.LABELS:
            if answer.scores is None and self.capabilities != Capability.LABELS:
                raise BadAnswerError(
                    f"{self.name}: answered a label without scores; for a label-only service pass "
                    "--label-only and use a decision-based attack (hsja)"
                )
            probs = torch.full((k,), _FLOOR)
            probs[self.index_for(answer.top)] = 1.0
            return probs.log()
        listed = [self.index_for(label) for label in answer.labels]
        rest_count = k - len(listed)
        left = max(1.0 - sum(answer.scores), 0.0)
        share = min(left / rest_count, min(answer.scores)) if rest_count else 0.0
        probs = torch.full((k,), max(share, _FLOOR), dtype=torch.float64)
        for index, score in zip(listed, answer.scores, strict=True):
            probs[index] = max(score, _FLOOR)
        return probs.log().float()

    def close(self) -> None:
        """Close the client: its workers, log and temp files."""
        self.client.close()


class RemoteBound(nn.Module):
    """`RemoteView` fixed to a plan: `(N, T, 3, H, W)` in [0, 1] -> log-probabilities `(N, K)`, each row
    one answer of the target (no gradient: the tensor is made from JSON)."""

    def __init__(self, view: RemoteView, plan: FramePlan) -> None:
        super().__init__()
        self.view = view
        self.plan = plan

    @property
    def num_classes(self) -> int:
        return self.view.num_classes

    @property
    def labels(self) -> list[str]:
        return self.view.labels

    @property
    def has_frame_predictions(self) -> bool:
        return False

    def forward(self, x: Tensor) -> Tensor:
        return self.metered(x, None)[0]

    def query_keys(self, x: Tensor, how: str) -> list[str]:
        """The keys of the videos `x` `(N, T, 3, H, W)` sent after the transform `how` (a `--robust-to`
        draw): `candidate.derived_key`, for `metered(..., keys=...)`."""
        timing = self.plan.timing if isinstance(self.plan, TimedPlan) else None
        if timing is None:
            timing = CandidateTiming.steady(int(x.shape[1]), self.view.client.options.fps)
        return [derived_key(to_uint8(v), timing, how) for v in x]

    def metered(self, x: Tensor, allowance: int | None, keys: list[str] | None = None) -> tuple[Tensor, int]:
        """`forward(x)` and the queries it cost, at most `allowance` (None: no limit): one per video
        plus one per retried request (`RemoteClient.ask`); a `QueryModel` charges that to the budget.
        `keys`: see `RemoteClient.ask`."""
        if x.dim() != 5 or x.shape[1] != self.plan.num_sampled or x.shape[2] != 3:
            raise ValueError(
                f"expected every frame (N, {self.plan.num_sampled}, 3, H, W), got {tuple(x.shape)}"
            )
        timing = self.plan.timing if isinstance(self.plan, TimedPlan) else None
        asked = self.view.client.ask([to_uint8(v) for v in x], timing, allowance, keys)
        if isinstance(self.plan, TimedPlan):
            self.plan.traffic.add(asked.traffic)
        return torch.stack([self.view.log_probs(a) for a in asked.answers]).to(x.device), asked.cost


def load_remote(spec: str, options: RemoteOptions | None, labels: list[str] | None) -> RemoteView:
    """The `RemoteView` of an `http(s)://` or `cmd:` `--model` value."""
    opts = options or RemoteOptions()
    target = make_target(spec, read_headers(opts.header_env), opts.timeout)
    if labels is not None and len(set(labels)) != len(labels):
        raise BadParameterError("--labels: expected each label once")
    return RemoteView(RemoteClient(target, opts), labels)
