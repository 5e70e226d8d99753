"""Where a job's files go, and how a job claims them: names, `--outputs`, locks, resume.

Names. An input's output set is named from its full stem (`clip.2020.mp4` -> `clip.2020`), through a
`--name` template (`{stem}` by default; `{stem}.{attack}` lets several attacks share one folder), in
the output folder, under the input's subfolder when it was found by searching a folder input. Every
name is decided before the first input runs, so two inputs that would write the same files are a usage
error instead of a silent `clip-2` whose meaning depends on the order of the inputs.

Claims. A job claims its output set (`claim`): it takes the set's lock (`locks.py`), removes temp files
left by killed runs, and then either finds the set finished by the same job (`--resume`: skip it),
or checks that it may write it (free, `--overwrite`, or `--resume` redoing an incomplete set). If the
job fails or is interrupted, every file of the set it created or replaced is removed again, so a
folder holds only whole output sets, each ending with its report.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import stat
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidattack.errors import BadParameterError, OutputExistsError, VidattackError
from vidattack.files import sha256_file
from vidattack.pipeline.locks import acquire, release

if TYPE_CHECKING:
    from vidattack.attacks.base import Attack
    from vidattack.models.view import ModelView
    from vidattack.pipeline.stages import Outputs

log = logging.getLogger("vidattack")

#: What a job can write (`--outputs`): the adversarial video, the report, the heatmaps (video and
#: contact sheet), the plots (per-frame chart and attack curve), the browser previews of the clean and
#: adversarial videos, and the run's page (`index.html` in the output folder, drawn from the reports).
OUTPUT_KINDS: tuple[str, ...] = ("adv", "report", "heatmaps", "plots", "preview", "page")

#: Suffixes of the files a job writes; inputs found by searching (folders, stdin) that end in the video
#: ones are our own outputs and are never attacked again.
OUTPUT_VIDEO_SUFFIXES = (".adv.mp4", ".heatmap.mp4", ".clean.preview.mp4", ".adv.preview.mp4")

_TEMP = re.compile(r"\.tmp-[0-9a-f]{8}")


def parse_outputs(text: str | Iterable[str]) -> frozenset[str]:
    """`adv,report,heatmaps,plots,preview,page` (any subset, `all`) as a set of kinds; unknown ones are a usage error."""
    parts = [p.strip().lower() for p in (text.split(",") if isinstance(text, str) else text)]
    parts = [p for p in parts if p]
    if parts == ["all"]:
        return frozenset(OUTPUT_KINDS)
    unknown = [p for p in parts if p not in OUTPUT_KINDS]
    if unknown or not parts:
        got = ", ".join(unknown) if unknown else "nothing"
        raise BadParameterError(f"expected --outputs from {','.join(OUTPUT_KINDS)} (or all), got {got}")
    return frozenset(parts)


def is_own_output(path: Path) -> bool:
    """Whether `path` is named like a video this tool writes (or one of its temp files)."""
    name = path.name
    return name.endswith(OUTPUT_VIDEO_SUFFIXES) or (name.startswith(".") and bool(_TEMP.search(name)))


# -- names --------------------------------------------------------------------------------------------

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
    outputs: Outputs | None  # None for an input that fails before it is a job (`Item.error`)
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

    `items` are `vidattack.pipeline.batch.Item`s: each has `path`, `stem` and `subdir` (the folder it
    was found in, relative to the folder input, mirrored under `out_dir`).
    """
    from vidattack.pipeline.stages import Outputs

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


# -- the job's identity, for --resume ------------------------------------------------------------------


def _fingerprint(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return hashlib.sha256(value.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_fingerprint(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _fingerprint(v) for k, v in value.items()}
    delta = getattr(value, "delta", None)  # a universal perturbation: what it adds is what counts
    if isinstance(delta, torch.Tensor):
        return {"delta": _fingerprint(delta), "frames": _fingerprint(getattr(value, "frames", None))}
    return repr(value)


def _input_sha256(path: Path) -> str | None:
    # Only regular files: opening a FIFO would wait for a writer forever.
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        return sha256_file(path)
    except OSError:
        return None


def job_key(attack: Attack, view: ModelView, *, seed: int, target: int | None, path: Path) -> dict[str, Any]:
    """What makes a finished report the answer to this job: the attack and every hyperparameter, the
    model (its weights' SHA-256 when known), the seed, the target and the input's bytes.

    Returns `{"key": hex, "input_sha256": hex or None}`, stored in the report as `job`.
    """
    params = {spec.name: _fingerprint(getattr(attack, spec.name, None)) for spec in attack.params()}
    perturbation = getattr(attack, "perturbation", None)
    if perturbation is not None:
        params["perturbation"] = _fingerprint(perturbation)
    input_sha = _input_sha256(path)
    fields = {
        "attack": attack.name,
        "params": params,
        "model": view.sha256 or f"{view.name} {view.source}",
        "seed": seed,
        "target": target,
        "input_sha256": input_sha,
    }
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=repr).encode()).hexdigest()
    return {"key": digest, "input_sha256": input_sha}


# -- claiming an output set -------------------------------------------------------------------------------


def temp_leftovers(outputs: Outputs) -> list[Path]:
    """Temp files of this set's outputs left by killed runs (`.S.adv.mp4.tmp-1a2b3c4d.mp4`)."""
    folder = outputs.folder
    names = {p.name for p in outputs.all()}
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        n = entry.name
        if not n.startswith("."):
            continue
        m = _TEMP.search(n)
        if m is not None and n[1 : m.start()] in names and entry.is_file(follow_symlinks=False):
            found.append(Path(entry.path))
    return found


def finished_report(outputs: Outputs, key: str) -> dict[str, Any] | None:
    """The set's report when it was written by the same job and every chosen output is there, else None."""
    try:
        report = json.loads(outputs.report.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or (report.get("job") or {}).get("key") != key:
        return None
    # the roles the report lists are the set's field names; their paths may have been written relative
    # to another working folder, so they are looked up in this set
    roles = report.get("outputs") or {}
    listed = [getattr(outputs, role) for role in roles if isinstance(getattr(outputs, role, None), Path)]
    if not all(p.exists() for p in (*outputs.required(), *listed)):
        return None
    return report


def _report_key(outputs: Outputs) -> str | None:
    try:
        report = json.loads(outputs.report.read_text())
        return str((report.get("job") or {}).get("key"))
    except (OSError, ValueError, AttributeError):
        return None


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns)


class Claim:
    """A claimed output set, held (its lock taken) until `release`.

    `done` is the finished report when `--resume` found one (nothing to do). A claim may be taken in
    one thread and released in another (the batch engine decodes in one worker and writes in another):
    the lock belongs to the open file, not to a thread. Used as a context manager, it is released at
    the end of the block, as failed when the block raises.
    """

    def __init__(self, outputs: Outputs, fd: int | None, done: dict[str, Any] | None = None) -> None:
        self.outputs, self.done = outputs, done
        self._fd: int | None = fd
        self._held = True
        self._before = {p: _identity(p) for p in outputs.all()}

    def release(self, *, failed: bool = False) -> None:
        """Drop the lock; when `failed`, first remove every file of the set that was created or replaced
        since the claim (a folder holds only whole output sets). Releasing twice does nothing."""
        if not self._held:
            return
        self._held = False
        try:
            if failed:
                for p, was in self._before.items():
                    now = _identity(p)
                    if now is not None and now != was:
                        with contextlib.suppress(OSError):
                            p.unlink()
        finally:
            release(self.outputs.lock, self._fd)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.release(failed=exc_type is not None)


def claim(outputs: Outputs, *, key: str, overwrite: bool = False, resume: bool = False) -> Claim:
    """Take `outputs`' lock and decide whether the job may write them; the caller releases the claim.

    Without `overwrite` or `resume`, an existing output is an `OutputExistsError`. With `resume`, a set
    finished by the same job (`key`) is returned as `Claim.done`; a set without a report (a killed
    run's) or with the same job's report is redone; a report of another job is refused unless
    `overwrite`. Temp files left by killed runs are removed. `Claim.release(failed=True)` removes every
    file of the set created or replaced since the claim.
    """
    folder = outputs.folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VidattackError(f"cannot create the output folder {folder}: {e.strerror}") from None
    fd = acquire(outputs.lock)
    try:
        for tmp in temp_leftovers(outputs):
            log.info("removing %s, left by an interrupted run", tmp)
            tmp.unlink(missing_ok=True)
        if resume:
            done = finished_report(outputs, key)
            if done is not None:
                return Claim(outputs, fd, done)
        existing = [p for p in outputs.chosen() if p.exists()]
        if existing and not overwrite:
            if not resume:
                raise OutputExistsError(
                    f"{existing[0]} exists (use --overwrite to replace it, or --resume to continue an "
                    "interrupted batch)"
                )
            if outputs.report.exists() and _report_key(outputs) != key:
                raise OutputExistsError(
                    f"{outputs.report} reports another attack, model, seed or input; use --overwrite to "
                    "replace it, or --name to write beside it"
                )
        return Claim(outputs, fd)
    except BaseException:
        release(outputs.lock, fd)
        raise
