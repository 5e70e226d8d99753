"""A hostile corpus: files and names a batch of real-world inputs throws at `vidattack perturb`.

`make_corpus(folder)` writes at least 40 inputs (damaged containers, wrong contents behind a .mp4 name,
degenerate and huge declared sizes, odd names, FIFOs, symlink loops, a folder named like a video) and
returns one `Case` per input saying whether a correct tool processes it or refuses it. The tests and
`benchmarks/hostile_corpus.py` both run it, so the table in the notes comes from the same inputs.

Everything is made with PyAV and plain bytes, seeded: the corpus is the same on every machine.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


@dataclass(frozen=True)
class Case:
    """One input of the corpus: its path and what a correct batch does with it."""

    path: Path
    kind: str  # what it is, in a few words (the table's first column)
    expect: str  # "ok": processed; "refused": one clear error line, no outputs


def _frames(n: int, h: int, w: int, seed: int = 0, flat: bool = False) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    # flat frames compress to almost nothing: a huge declared size in a file of a few kilobytes
    base = np.full((h, w, 3), 96, np.uint8) if flat else rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    # a moving bar so codecs have motion to code, and the clip is not all one colour
    if flat:
        return [base] * n
    out = []
    for i in range(n):
        f = base.copy()
        f[:, (i * 3) % w : (i * 3) % w + max(1, w // 8)] = 255
        out.append(f)
    return out


def write_video(
    path: Path,
    n: int,
    h: int,
    w: int,
    *,
    codec: str = "libx264",
    fmt: str | None = None,
    audio: bool = False,
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    flat: bool = False,
) -> Path:
    """A small real video, written with PyAV only (so the corpus does not depend on our own writer)."""
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=Fraction(8))
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        s.options = {"preset": "ultrafast", **(options or {})} if codec == "libx264" else dict(options or {})
        a = c.add_stream("aac", rate=8000) if audio else None
        for f in _frames(n, h, w, flat=flat):
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
        if a is not None:
            _silence(c, a)
    return path


def write_audio_only(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as c:
        _silence(c, c.add_stream("aac", rate=8000))
    return path


def _silence(container: av.container.OutputContainer, stream: av.AudioStream) -> None:
    # about one second of silence at 8 kHz: enough for a real audio stream in the container
    samples = np.zeros((1, 1024), dtype=np.float32)
    for i in range(8):
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 8000, i * 1024
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def _zero_frames(path: Path) -> Path:
    # PyAV writes no file for a stream without packets: keep the container's header, cut every frame
    good = write_video(path.with_name(".zero-src.mp4"), 2, 64, 64, options={"movflags": "+faststart"})
    data = good.read_bytes()
    good.unlink()
    mdat = data.find(b"mdat")
    path.write_bytes(data[: mdat + 4] if mdat > 0 else data[:64])
    return path


def _flip_bits(data: bytes, positions: list[int]) -> bytes:
    b = bytearray(data)
    for pos in positions:
        b[pos % len(b)] ^= 0xFF
    return bytes(b)


def _png_bytes() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(_frames(1, 16, 16)[0]).save(buf, format="PNG")
    return buf.getvalue()


def make_corpus(folder: Path, *, huge: bool = True, long: bool = False) -> list[Case]:
    """Write the corpus into `folder` (created) and return its cases, good files among them.

    `huge=False` leaves out the 8192x8192 input (about 3 s to encode); `long=True` adds 2000 frames of
    1280x720 in 80 KB (about 8 s to encode): the model samples 16 of them, so a streaming decoder
    processes it in bounded memory, and one that holds every frame needs 5.5 GB.
    """
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    rng = random.Random(1234)

    def add(name: str, kind: str, expect: str, make: Callable[[Path], object]) -> None:
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        make(p)
        cases.append(Case(p, kind, expect))

    good = write_video(folder / "a_good.mp4", 16, 64, 64)
    cases.append(Case(good, "good clip", "ok"))
    data = good.read_bytes()

    # --- damaged containers -----------------------------------------------------------------------
    for frac in (0.0, 0.1, 0.5, 0.9):
        cut = int(len(data) * frac)
        add(
            f"trunc_{int(frac * 100):02d}.mp4",
            f"truncated to {frac:.0%}",
            "refused",
            lambda p, cut=cut: p.write_bytes(data[:cut]),
        )
    add("trunc_last_byte.mp4", "truncated by one byte", "ok_or_refused", lambda p: p.write_bytes(data[:-1]))
    for i in range(4):
        pos = [rng.randrange(0, 64) for _ in range(4)]
        add(
            f"flip_header_{i}.mp4",
            "bit flips in the header",
            "ok_or_refused",
            lambda p, pos=pos: p.write_bytes(_flip_bits(data, pos)),
        )
    for i in range(4):
        pos = [rng.randrange(len(data) // 3, len(data)) for _ in range(16)]
        add(
            f"flip_data_{i}.mp4",
            "bit flips in the data",
            "ok_or_refused",
            lambda p, pos=pos: p.write_bytes(_flip_bits(data, pos)),
        )
    for i, size in enumerate((1, 100, 4096, 100_000)):
        add(
            f"random_{i}.mp4",
            f"{size} random bytes",
            "refused",
            lambda p, size=size: p.write_bytes(rng.randbytes(size)),
        )
    add("zeros.mp4", "64 KiB of zeros", "refused", lambda p: p.write_bytes(bytes(65536)))
    add("empty.mp4", "empty file", "refused", lambda p: p.write_bytes(b""))

    # --- other contents behind a video name -----------------------------------------------------------
    add("image.mp4", "PNG renamed .mp4", "refused", lambda p: p.write_bytes(_png_bytes()))
    add("text.mp4", "text renamed .mp4", "refused", lambda p: p.write_text("not a video\n" * 50))
    add(
        "html.mp4",
        "HTML renamed .mp4",
        "refused",
        lambda p: p.write_text("<html><body>[bold]x[/]</body></html>\n"),
    )
    add("audio_only.mp4", "audio only", "refused", write_audio_only)

    # --- degenerate sizes and lengths ---------------------------------------------------------------
    add("one_frame.mp4", "1 frame", "ok", lambda p: write_video(p, 1, 64, 64))
    add("two_frames.mp4", "2 frames", "ok", lambda p: write_video(p, 2, 64, 64))
    add("tiny_2x2.mp4", "2x2 pixels", "ok_or_refused", lambda p: write_video(p, 8, 2, 2))
    add("zero_frames.mp4", "0 frames (header only)", "refused", _zero_frames)
    add("long_tiny.mp4", "3000 frames of 16x16", "ok", lambda p: write_video(p, 3000, 16, 16, flat=True))
    add(
        "odd_size.mp4", "odd size 63x47 (4:4:4)", "ok", lambda p: write_video(p, 8, 47, 63, pix_fmt="yuv444p")
    )
    add("with_audio.mp4", "video with audio", "ok", lambda p: write_video(p, 8, 64, 64, audio=True))
    add(
        "mjpeg.avi",
        "MJPEG in AVI",
        "ok",
        lambda p: write_video(p, 8, 64, 64, codec="mjpeg", pix_fmt="yuvj420p"),
    )
    add("vp9.webm", "VP9 in WebM", "ok", lambda p: write_video(p, 8, 64, 64, codec="libvpx-vp9"))
    if huge:
        # Declared sizes far beyond a 24 GB machine once decoded to float; tiny on disk.
        add(
            "huge_8192.mp4",
            "4 frames of 8192x8192",
            "refused",
            lambda p: write_video(p, 4, 8192, 8192, flat=True),
        )
    if long:
        add(
            "long_720p.mp4",
            "2000 frames of 1280x720",
            "ok_or_refused",
            lambda p: write_video(p, 2000, 720, 1280, flat=True),
        )

    # --- names a shell or a terminal may choke on -----------------------------------------------------
    odd_names = [
        "[bold]styled.mp4",
        "m[/]x.mp4",
        'quote\'s "double".mp4',
        "spaces  and\ttab.mp4",
        "trailing space .mp4",
        "ünïcödé 视频.mp4",
        "emoji 🎬.mp4",
        "-dash-first.mp4",
        "semi;colon&amp $(echo no).mp4",
        "clip.2020.mp4",
        "clip.2021.mp4",
        "UPPER.MP4",
        "new\nline.mp4",
        "sub/dir/nested.mp4",
        "back\\slash.mp4",
    ]
    for n in odd_names:
        add(n, f"odd name {n!r}", "ok", lambda p: p.write_bytes(data))
    if os.name == "posix":
        raw = os.fsencode(folder) + b"/bad_utf8_\xff\xfe.mp4"
        with open(raw, "wb") as fh:
            fh.write(data)
        cases.append(Case(Path(os.fsdecode(raw)), "name not valid UTF-8", "ok"))

    # --- things that are not regular files --------------------------------------------------------------
    if hasattr(os, "mkfifo"):
        fifo = folder / "fifo.mp4"
        os.mkfifo(fifo)
        cases.append(Case(fifo, "FIFO", "refused"))
    loop = folder / "loop.mp4"
    os.symlink(folder / "loop2.mp4", loop)
    os.symlink(loop, folder / "loop2.mp4")
    cases.append(Case(loop, "symlink loop", "refused"))
    dangling = folder / "dangling.mp4"
    os.symlink(folder / "does-not-exist.mp4", dangling)
    cases.append(Case(dangling, "dangling symlink", "refused"))
    (folder / "dir.mp4").mkdir()
    cases.append(Case(folder / "dir.mp4", "a directory named x.mp4", "refused"))
    link = folder / "link_to_good.mp4"
    os.symlink(good, link)
    cases.append(Case(link, "symlink to a good clip", "ok"))
    unreadable = folder / "unreadable.mp4"
    unreadable.write_bytes(data)
    unreadable.chmod(0)
    # root reads any file: then it is simply a good clip
    cases.append(Case(unreadable, "unreadable (mode 000)", "ok" if os.geteuid() == 0 else "refused"))
    cases.append(Case(folder / "missing.mp4", "missing file", "refused"))
    cases.append(Case(Path("/dev/zero"), "/dev/zero", "refused"))
    return cases


def digest(path: Path) -> str | None:
    """SHA-256 of a regular file's bytes (None for anything else), to prove an input was not modified."""
    import hashlib

    try:
        if not path.is_file() or path.is_fifo():
            return None
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


#: `python -c PEAK_LAUNCHER CMD...` runs CMD and writes `@maxrss KIB` last on stderr: the peak memory
#: of CMD alone, whatever the calling process ran before.
PEAK_LAUNCHER = (
    "import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
    "sys.stderr.write('\\n@maxrss %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
    "sys.exit(rc)"
)
