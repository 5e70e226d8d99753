"""The files a job writes, declared once: `OUTPUT_FILES`, and `Outputs`, one job's set of them.

Every reader of "which files does a job write" reads the table: the claim (`claim.py`: what must be
free, what a failed job removes, what `--resume` needs), input skipping (`is_own_output`: a folder
input never attacks our own videos again), `--outputs` and its help (`parse_outputs`, `KINDS_HELP`),
the report's `outputs` roles, the pictures `render` draws (`Outputs.pictures`) and the report schema
(a test holds its `outputs` properties to the table's roles). A new output file is one row here (and
the code that writes it).

How a set is named (`--name`, subfolders) is `names.py`; how a job claims it is `claim.py`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vidattack.errors import BadParameterError, OutputExistsError


@dataclass(frozen=True)
class OutputFile:
    """One file of an output set, named `S` + a suffix.

    `role`: its name in the report's `outputs` and on `Outputs`; `kind`: what `--outputs` (or, with
    `option` set, that option) chooses it by; `suffixes`: the names it may have, the first the
    default (the delivery copy's container follows its codec); `video`: a video we wrote (never
    attacked again as an input); `picture`: drawn by `vidattack.pipeline.render` under its role;
    `required`: every finished job of its kind writes it (the curve exists only for attacks with a
    history), so `--resume` redoes a set that lacks it."""

    role: str
    kind: str
    suffixes: tuple[str, ...]
    video: bool = False
    picture: bool = False
    required: bool = True
    option: str | None = None

    @property
    def suffix(self) -> str:
        return self.suffixes[0]


#: Every file a job can write, report last (written last: its presence means the job finished).
OUTPUT_FILES: tuple[OutputFile, ...] = (
    OutputFile("adversarial", "adv", (".adv.mp4",), video=True),
    OutputFile("heatmap_png", "heatmaps", (".heatmap.png",), picture=True),
    OutputFile("frames_plot", "plots", (".frames.png",), picture=True),
    OutputFile("curve_plot", "plots", (".curve.png",), picture=True, required=False),
    OutputFile("heatmap_video", "heatmaps", (".heatmap.mp4",), video=True, picture=True),
    OutputFile("delivery", "delivery", (".delivery.mp4", ".delivery.webm"), video=True, option="--delivery"),
    # browser-playable copies of the clean and adversarial videos for the run page (vidattack.page)
    OutputFile("clean_preview", "preview", (".clean.preview.mp4",), video=True),
    OutputFile("adversarial_preview", "preview", (".adv.preview.mp4",), video=True),
    OutputFile("report", "report", (".report.json",)),
)

_BY_ROLE = {f.role: f for f in OUTPUT_FILES}

#: The kinds `--outputs` chooses from (the others come with their own option, such as `--delivery`),
#: and `page`: the run's `index.html` in the output folder, drawn from the reports (no set's file).
OUTPUT_KINDS: tuple[str, ...] = (
    *dict.fromkeys(f.kind for f in OUTPUT_FILES if f.option is None),
    "page",
)

#: The kinds a job writes when not told otherwise.
DEFAULT_KINDS: frozenset[str] = frozenset(OUTPUT_KINDS)

#: `--outputs`' help, from the table.
KINDS_HELP = ",".join(OUTPUT_KINDS)

#: Suffixes of the videos a job writes: inputs found by searching (folders, stdin) that end in one are
#: our own outputs and are never attacked again.
OUTPUT_VIDEO_SUFFIXES: tuple[str, ...] = tuple(s for f in OUTPUT_FILES if f.video for s in f.suffixes)

#: What `vidattack.files` adds to the name of a temp file it writes beside its target.
TEMP_NAME = re.compile(r"\.tmp-[0-9a-f]{8}")


def output_file(role: str) -> OutputFile:
    """The table's row for `role` (`KeyError` for an unknown one)."""
    return _BY_ROLE[role]


def parse_outputs(text: str | Iterable[str]) -> frozenset[str]:
    """`adv,report,heatmaps,plots` (any subset of `OUTPUT_KINDS`, or `all`) as a set of kinds; unknown
    ones are a usage error."""
    parts = [p.strip().lower() for p in (text.split(",") if isinstance(text, str) else text)]
    parts = [p for p in parts if p]
    if parts == ["all"]:
        return DEFAULT_KINDS
    unknown = [p for p in parts if p not in OUTPUT_KINDS]
    if unknown or not parts:
        got = ", ".join(unknown) if unknown else "nothing"
        raise BadParameterError(f"expected --outputs from {KINDS_HELP} (or all), got {got}")
    return frozenset(parts)


def is_own_output(path: Path) -> bool:
    """Whether `path` is named like a video this tool writes (or one of its temp files)."""
    name = path.name
    return name.endswith(OUTPUT_VIDEO_SUFFIXES) or (name.startswith(".") and bool(TEMP_NAME.search(name)))


@dataclass(frozen=True)
class Outputs:
    """The files one job writes: those of the chosen `kinds` among `OUTPUT_FILES`, named `name` +
    suffix in `folder`. `suffixes` picks another of a role's allowed suffixes (the delivery copy's
    `.delivery.webm`). Each role is also an attribute: `outputs.adversarial`, `outputs.report`."""

    folder: Path
    name: str
    kinds: frozenset[str] = DEFAULT_KINDS
    suffixes: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def for_stem(cls, out_dir: Path, stem: str, kinds: Iterable[str] | None = None) -> Outputs:
        """The set named `stem` in `out_dir` (the default kinds unless `kinds`)."""
        return cls(Path(out_dir), stem, DEFAULT_KINDS if kinds is None else frozenset(kinds))

    def path(self, role: str) -> Path:
        """Where the file of `role` goes (chosen or not)."""
        row = output_file(role)
        return self.folder / f"{self.name}{dict(self.suffixes).get(role, row.suffix)}"

    def __getattr__(self, role: str) -> Path:
        if role.startswith("_") or role not in _BY_ROLE:
            raise AttributeError(role)
        return self.path(role)

    def with_kind(self, kind: str, *, suffix: tuple[str, str] | None = None) -> Outputs:
        """This set with `kind` chosen too (and a role's suffix set, such as the delivery's `.webm`)."""
        if suffix is not None and suffix[1] not in output_file(suffix[0]).suffixes:
            raise ValueError(f"expected a suffix of {suffix[0]} among {output_file(suffix[0]).suffixes}")
        extra = () if suffix is None else (suffix,)
        return Outputs(self.folder, self.name, self.kinds | {kind}, (*self.suffixes, *extra))

    def without(self, *kinds: str) -> Outputs:
        """This set with `kinds` left out."""
        return Outputs(self.folder, self.name, self.kinds - set(kinds), self.suffixes)

    @property
    def lock(self) -> Path:
        """The lock file held while a job writes this set (`.S.lock`)."""
        from vidattack.pipeline.locks import lock_path

        return lock_path(self.folder, self.name)

    def wants(self, kind: str) -> bool:
        return kind in self.kinds

    def all(self) -> tuple[Path, ...]:
        """Every path the set may hold, chosen or not, each allowed suffix, report last."""
        return tuple(self.folder / f"{self.name}{s}" for f in OUTPUT_FILES for s in f.suffixes)

    def chosen(self) -> tuple[Path, ...]:
        """The paths of the chosen kinds, report last."""
        return tuple(self.path(f.role) for f in OUTPUT_FILES if f.kind in self.kinds)

    def required(self) -> tuple[Path, ...]:
        """The chosen paths every finished job has written."""
        return tuple(self.path(f.role) for f in OUTPUT_FILES if f.kind in self.kinds and f.required)

    def pictures(self) -> tuple[str, ...]:
        """The render roles (`vidattack.pipeline.render.ROLES`) of the chosen kinds."""
        return tuple(f.role for f in OUTPUT_FILES if f.picture and f.kind in self.kinds)

    def check_free(self, overwrite: bool) -> None:
        """Refuse to start when any chosen output exists, unless `overwrite`: never replace a file silently."""
        if overwrite:
            return
        for p in self.chosen():
            if os.path.lexists(p):  # a dangling symlink too: writing would follow or replace it
                raise OutputExistsError(f"{p} exists (use --overwrite to replace it)")
