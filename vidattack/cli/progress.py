"""Progress bars on stderr for the library's `ProgressEvent`s: what each video is doing, and how far.

    videos           ━━━━━━━━━━━━━━━━━━━━━━━━━━━╸━━━━━━━━━━━━━━   7/19 videos   0:00:09  ~0:00:15 left
    move_left_1.mp4  attacking  ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━   6/10 steps    0:00:01  ~0:00:00 left

The overall bar appears for batches; the per-video line shows the stage (decoding, attacking with its
steps or queries, writing, verifying, rendering), the video's elapsed time and the stage's remaining
time. Bars are transient (gone when the command ends), never on stdout, and off with `-q` or when
stderr is not a terminal. Names are printed literally, never as markup.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, Task, TaskID
    from rich.text import Text

    from vidattack.pipeline.progress import ProgressEvent


def _columns() -> list[Any]:
    from rich.progress import BarColumn, ProgressColumn, TextColumn
    from rich.text import Text

    class Elapsed(ProgressColumn):
        """Time since the task's `since` field (a video's start), not since the stage's."""

        def render(self, task: Task) -> Text:
            since = task.fields.get("since")
            seconds = 0 if since is None else int(time.monotonic() - since)
            return Text(
                f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}", style="progress.elapsed"
            )

    class Remaining(ProgressColumn):
        """The stage's remaining time, from its speed so far; blank while it cannot be estimated."""

        max_refresh = 0.5

        def render(self, task: Task) -> Text:
            left = task.time_remaining
            if left is None or task.total is None or task.total <= 1:
                return Text("")
            s = int(left)
            return Text(f"~{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d} left", style="progress.remaining")

    return [
        TextColumn("{task.description}", markup=False),
        TextColumn("{task.fields[stage]}", markup=False, style="cyan"),
        BarColumn(bar_width=32),
        TextColumn("{task.fields[count]}", markup=False),
        Elapsed(),
        Remaining(),
    ]


def _count(done: int, total: int | None, unit: str) -> str:
    if total is None or total <= 1 or not unit:
        return ""
    return f"{done}/{total} {unit}"


class BatchProgress:
    """Rich progress for `perturb`: call it with each `ProgressEvent`, and `finished()` after each
    input's record (done or failed). A context manager: the bars live while it is entered."""

    def __init__(self, total: int, console: Console | None = None) -> None:
        from rich.progress import Progress

        from vidattack.cli.emit import stderr_console

        self.progress: Progress = Progress(
            *_columns(),
            console=console or stderr_console(),
            redirect_stdout=False,
            redirect_stderr=False,
            transient=True,
        )
        self.total = total
        self.done = 0
        self.overall: TaskID | None = None
        # one line per video in flight: the batch engine decodes the next videos while one is attacked
        self.lines: dict[str, tuple[TaskID, str]] = {}
        self.started = time.monotonic()

    def __enter__(self) -> BatchProgress:
        self.progress.__enter__()
        if self.total > 1:
            self.overall = self.progress.add_task(
                "videos",
                total=self.total,
                stage="",
                count=_count(0, self.total, "videos"),
                since=self.started,
            )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.progress.__exit__(kind, error, tb)

    def __call__(self, event: ProgressEvent) -> None:
        """Show `event`: a new video gets its line, a new stage restarts the line's bar."""
        from pathlib import PurePath

        if event.video not in self.lines:
            task = self.progress.add_task(
                PurePath(event.video).name, total=None, stage="", count="", since=time.monotonic()
            )
            self.lines[event.video] = (task, "")
        task, stage = self.lines[event.video]
        total = event.total if event.total is not None and event.total > 1 else None
        if event.stage != stage:
            self.lines[event.video] = (task, event.stage)
            self.progress.reset(task, total=total, completed=0)
        self.progress.update(
            task,
            total=total,
            completed=event.done if total is not None else 0,
            stage=event.stage,
            count=_count(event.done, event.total, event.unit),
        )

    def finished(self, video: str | None = None) -> None:
        """One input is done (or failed): drop its line (every line when `video` is None) and advance
        the overall bar."""
        for name in [video] if video is not None else list(self.lines):
            line = self.lines.pop(name, None)
            if line is not None:
                self.progress.remove_task(line[0])
        self.done += 1
        if self.overall is not None:
            self.progress.update(
                self.overall, completed=self.done, count=_count(self.done, self.total, "videos")
            )
