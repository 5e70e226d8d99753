"""`vidattack perturb`'s delivery options (issue #17): `--delivery` and `--robust-to`, parsed eagerly.

`vidattack eval` takes `--robust-to` too (`robust_to_option`, its help ending with what eval does
with it) and parses both with `parse_delivery_options`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from vidattack.delivery import DeliverySpec

Delivery = Annotated[
    str | None,
    typer.Option(
        "--delivery",
        metavar="CODEC[:crf=N,preset=P]",
        help="Also write S.delivery.mp4 (h264) or S.delivery.webm (vp9), a yuv420p copy that plays in "
        "browsers and phones, and report the prediction and perturbation after that encode. "
        "Example: h264:crf=23 (FFmpeg's defaults: h264 crf 23 preset medium, vp9 crf 31 speed 1).",
        show_default=False,
    ),
]
ROBUST_TO_HELP = (
    "Optimise the attack through this delivery encode (real encoder in the forward pass, "
    "BPDA + EOT over the CRFs), e.g. h264:crf=18-28. eot: encodes averaged per step (default 2; "
    "1 for an http(s):// or cmd: model, each encode a request); "
    "sigma: the gradient's low-pass in pixels (default 2, 0 = straight-through). The budget "
    "still holds on the lossless file."
)


def robust_to_option(note: str) -> Any:
    """The `--robust-to` option of a command, its help ending with `note`: what that command does
    with the option beyond the attack (the common part is `ROBUST_TO_HELP`)."""
    return typer.Option(
        "--robust-to",
        metavar="CODEC[:crf=A-B,eot=N,sigma=S]",
        help=f"{ROBUST_TO_HELP} {note}",
        show_default=False,
    )


RobustTo = Annotated[
    str | None,
    robust_to_option(
        "Raises an iterative attack's default --steps to 40 (what the delivery measurements needed). "
        "Without --delivery the report checks one encode at the median CRF."
    ),
]


#: What `--robust-to` raises an attack's defaults to, unless the user set them: the settings the
#: delivery measurements showed work (benchmarks/results/eval-robust: 40 steps and 2 EOT draws per
#: step fooled 16/19 and 19/19 after h264 crf 23, where the 5 default steps fooled 1 of 4 clips).
ROBUST_STEPS = 40
ROBUST_EOT = 2


def parse_delivery_options(
    delivery: str | None, robust_to: str | None, *, remote: bool = False
) -> tuple[DeliverySpec | None, DeliverySpec | None]:
    """The two options as specs (`BadParameterError`, exit 2, for a bad one); `--robust-to` without
    `eot` gets `ROBUST_EOT` draws, or one for a deployed (`remote`) model, where each draw is a paid
    request (`vidattack.pipeline.delivery.check_robust_to`)."""
    import dataclasses

    from vidattack.delivery import parse_delivery, parse_robust_to

    robust = parse_robust_to(robust_to) if robust_to is not None else None
    if robust is not None and robust.eot is None:
        robust = dataclasses.replace(robust, eot=1 if remote else ROBUST_EOT)
    return (parse_delivery(delivery) if delivery is not None else None, robust)


def robust_steps(attack: str, steps: str | None, robust_to: str | None) -> str | None:
    """`--steps` as given, or `ROBUST_STEPS` with `--robust-to` for an iterative attack whose own
    default is fewer: optimising through an encode needs more steps than a lossless file does."""
    if steps is not None or robust_to is None:
        return steps
    from vidattack.attacks.registry import attack_class

    try:
        own = {p.name: p.default for p in attack_class(attack).params()}.get("steps")
    except Exception:  # an unknown name: the attack's own parsing says so, with close matches
        return steps
    return str(ROBUST_STEPS) if isinstance(own, int) and own < ROBUST_STEPS else steps
