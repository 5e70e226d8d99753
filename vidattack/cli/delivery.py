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
    "BPDA + EOT over the CRFs), e.g. h264:crf=18-28. eot: encodes averaged per step (default 1); "
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
    str | None, robust_to_option("Without --delivery the report checks one encode at the median CRF.")
]


def parse_delivery_options(
    delivery: str | None, robust_to: str | None
) -> tuple[DeliverySpec | None, DeliverySpec | None]:
    """The two options as specs (`BadParameterError`, exit 2, for a bad one)."""
    from vidattack.delivery import parse_delivery, parse_robust_to

    return (
        parse_delivery(delivery) if delivery is not None else None,
        parse_robust_to(robust_to) if robust_to is not None else None,
    )
