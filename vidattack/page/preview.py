"""Browser-playable previews of a job's clean and adversarial videos, for the run page.

The result of a job is the lossless `S.adv.mp4` (RGB H.264, qp 0), which most browsers refuse to
play. A preview is the same frames as H.264 yuv420p crf 18 (`video.encode`'s delivery codec): it
plays everywhere, but chroma subsampling and quantisation change the perturbation, so the page labels
it a preview and links the lossless file as the result. The clean preview is encoded the same way,
so the two play side by side with the same codec's artefacts.
"""

from __future__ import annotations

from pathlib import Path

from vidattack.video.decode import Source

#: The suffixes of the two previews of an output set S (`S.clean.preview.mp4`, `S.adv.preview.mp4`).
PREVIEW_SUFFIXES = (".clean.preview.mp4", ".adv.preview.mp4")


def preview_paths(folder: Path, name: str) -> tuple[Path, Path]:
    """The clean and adversarial preview paths of the output set `name` in `folder`."""
    return folder / f"{name}{PREVIEW_SUFFIXES[0]}", folder / f"{name}{PREVIEW_SUFFIXES[1]}"


def write_previews(clean: Source, adversarial: Source, folder: Path, name: str) -> dict[str, Path]:
    """Write both previews of set `name` into `folder` (atomically, replacing old ones: the caller's
    claim on the set decided that it may) and return them by report role (`clean_preview`,
    `adversarial_preview`).

    `clean` is the input (its path, or what `decode_sampled` returned, which spares a timing pass) and
    `adversarial` the written lossless file; both are decoded again frame by frame, never held whole.
    No audio: the page plays them muted, side by side.
    """
    from vidattack.video.encode import rewrite

    clean_path, adv_path = preview_paths(folder, name)
    rewrite(clean, clean_path, {}, codec="delivery", overwrite=True, copy_audio=False)
    rewrite(adversarial, adv_path, {}, codec="delivery", overwrite=True, copy_audio=False)
    return {"clean_preview": clean_path, "adversarial_preview": adv_path}
