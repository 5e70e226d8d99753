"""How each input's output set is named: the `--name` template, subfolders, collisions found up front.

An input's output set is named from its full stem (`clip.2020.mp4` -> `clip.2020`), through a
`--name` template (`{stem}` by default; `{stem}.{attack}` lets several attacks share one folder), in
the output folder, under the input's subfolder when it was found by searching a folder input. Every
name is decided before the first input runs, so two inputs that would write the same files are a usage
error instead of a silent `clip-2` whose meaning depends on the order of the inputs.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidattack.errors import BadParameterError
from vidattack.pipeline.outputs import Outputs

if TYPE_CHECKING:
    from vidattack.attacks.base import Attack

log = logging.getLogger("vidattack")

#: The fields a `--name` template may use.
NAME_FIELDS = ("stem", "attack", "model", "seed", "eps", "eps255", "target")


class NameTemplate:
    """A `--name` template such as `{stem}` or `{stem}.{attack}.eps{eps255}`, checked when made.

    Fields: `stem` (the input's file name without its last suffix, dots kept), `attack`, `model`,
    `seed` (an integer), `eps` (the attack's budget as a number, `none` without one), `eps255` (the
    budget in 8-bit levels, `8` for 8/255) and `target` (the target label, `none` when untargeted).
    Values are used as they are, except that `/` becomes `_`: a name never leaves its folder.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        fields = []
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as e:
            raise BadParameterError(
                f"expected a --name template like {{stem}}.{{attack}}, got {text!r}: {e}"
            ) from None
        for _, field, _, _ in parsed:
            if field is None:
                continue
            if field not in NAME_FIELDS:
                raise BadParameterError(
                    f"expected --name fields from {', '.join('{' + f + '}' for f in NAME_FIELDS)}, "
                    f"got {{{field}}} in {text!r}"
                )
            fields.append(field)
        if "stem" not in fields:
            log.debug("--name %r has no {stem}: every input gets the same name", text)
        # one trial with typical values catches bad format specs ({seed:q}) before the first input
        self.render(stem="clip", attack="pgd-linf", model="tiny-c3d", seed=0, eps=4 / 255, target=None)

    def render(
        self, *, stem: str, attack: str, model: str, seed: int, eps: float | None, target: str | None
    ) -> str:
        """The output name for these values (a plain file name, never empty, never `.` or `..`)."""
        values: dict[str, Any] = {
            "stem": stem,
            "attack": attack,
            "model": model,
            "seed": seed,
            "eps": "none" if eps is None else f"{eps:.6g}",
            "eps255": "none" if eps is None else f"{eps * 255:.4g}",
            "target": "none" if target is None else target,
        }
        safe = {
            k: v.replace("/", "_").replace("\0", "_") if isinstance(v, str) else v for k, v in values.items()
        }
        try:
            name = self.text.format(**safe)
        except (ValueError, TypeError, KeyError, IndexError) as e:
            raise BadParameterError(
                f"expected a --name template like {{stem}}.{{attack}}, got {self.text!r}: {e}"
            ) from None
        name = name.replace("/", "_").replace("\0", "_")
        if name in ("", ".", ".."):
            raise BadParameterError(f"--name {self.text!r} gives the name {name!r} for {stem!r}")
        return name


@dataclass(frozen=True)
class Planned:
    """One input with the output set it will write."""

    path: Path
    outputs: Outputs | None  # None for an input that fails before it is a job (`Input.error`)
    error: str | None = None


def plan_outputs(
    items: Sequence[Any],
    out_dir: Path,
    template: NameTemplate,
    kinds: frozenset[str],
    *,
    attack: Attack,
    model: str,
    seed: int,
    target: str | None,
) -> list[Planned]:
    """Name every item's output set; two items with one name are a usage error (found before any work).

    `items` are `vidattack.pipeline.batch.Input`s: each has `path`, `stem` and `subdir` (the folder it
    was found in, relative to the folder input, mirrored under `out_dir`).
    """

    eps = getattr(attack, "eps", None)
    eps = float(eps) if isinstance(eps, int | float) else None
    planned: list[Planned] = []
    seen: dict[Path, Path] = {}
    for item in items:
        if item.error is not None:
            planned.append(Planned(item.path, None, item.error))
            continue
        name = template.render(
            stem=item.stem, attack=attack.name, model=model, seed=seed, eps=eps, target=target
        )
        folder = out_dir / item.subdir
        key = folder / name
        if key in seen:
            raise BadParameterError(
                f"{seen[key]} and {item.path} would both write {key}.*; give --name a field that tells "
                "them apart, or run them separately"
            )
        seen[key] = item.path
        planned.append(Planned(item.path, Outputs.for_stem(folder, name, kinds)))
    return planned
