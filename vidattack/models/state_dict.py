"""From a state dict to a loaded torchvision network: key names mapped, architecture recognised,
every weight checked.

Keys are mapped to torchvision's names:

- `module.` (DataParallel) and `_orig_mod.` (torch.compile) are removed from the start of every key;
- mmaction2's layout: `backbone.` is removed and `cls_head.fc_cls.{weight,bias}` becomes the head
  (reshaped to S3D's 1x1x1 convolution where needed); other `cls_head.` keys stay unexpected;
- a prefix shared by every key (Lightning's `model.`, `net.`...) is removed when that makes the keys
  match the architecture.

Then every weight of the architecture must be present with the right shape: a missing weight or a shape
mismatch is an error (a network with random layers is not what anyone asked for); keys the architecture
does not have are ignored with a note in `ModelView.notes`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from vidattack.errors import BadCheckpointError
from vidattack.models.architectures import ARCHITECTURES, Architecture, get_architecture
from vidattack.models.checkpoint import CheckpointMeta, LoadRequest
from vidattack.models.labels import choose_labels
from vidattack.models.messages import few, file_name
from vidattack.models.view import ModelView

_STRIPPED_PREFIXES = ("module.", "_orig_mod.")


def view_from_state_dict(
    spec: str,
    path: Path | None,
    digest: str | None,
    sd: dict[str, Tensor],
    meta: CheckpointMeta,
    req: LoadRequest,
    *,
    what: str,
    source: str | None = None,
) -> ModelView:
    """The `ModelView` of a torchvision architecture holding the weights `sd` read from `path`.

    The architecture is the caller's, else the metadata's, else the one the keys and shapes fit; the
    class count is read from the head. `what` names the kind of file in the view's `source`.
    """
    notes = list(meta.notes)
    sd = strip_prefixes(sd, notes)
    arch_name = req.arch or meta.arch
    if arch_name is not None:
        arch = get_architecture(arch_name)
    else:
        arch = detect_architecture(sd, path)
        notes.append(f"architecture {arch.name} recognised from the checkpoint's keys and shapes")
    sd = fit_keys(sd, arch, notes)

    k = arch.num_classes_in(sd)
    if k is not None and req.num_classes is not None and k != req.num_classes:
        raise BadCheckpointError(
            f"expected {req.num_classes} classes, got a {arch.name} head with {k} outputs in {file_name(path)}"
        )
    k = k or req.num_classes or (len(req.labels) if req.labels else None) or 400
    net = build_loaded(arch, k, sd, path, notes)

    labels = choose_labels(req.labels, meta.labels, meta.labels_from, k, arch, notes)
    pre = meta.preprocess_over(arch.preprocess, notes)
    return ModelView(
        net=net,
        preprocess=pre,
        labels=labels,
        name=spec,
        sha256=digest,
        source=source or f"{arch.name} {what} from {file_name(path)}",
        notes=notes,
    )


def strip_prefixes(sd: dict[str, Tensor], notes: list[str]) -> dict[str, Tensor]:
    """`sd` without the `module.` and `_orig_mod.` prefixes wrappers add (said in `notes`)."""
    out: dict[str, Tensor] = {}
    seen: set[str] = set()
    for key, value in sd.items():
        new = key
        changed = True
        while changed:  # DataParallel inside torch.compile gives `_orig_mod.module.`
            changed = False
            for prefix in _STRIPPED_PREFIXES:
                if new.startswith(prefix):
                    new, changed = new[len(prefix) :], True
                    seen.add(prefix)
        out[new] = value
    if seen:
        notes.append(f"key prefixes removed: {', '.join(sorted(seen))}")
    return out


def fit_keys(sd: dict[str, Tensor], arch: Architecture, notes: list[str]) -> dict[str, Tensor]:
    """Map mmaction2-style and commonly prefixed keys onto `arch`'s names (see the module docstring)."""
    expected = arch.expected_shapes()
    if any(k.startswith("backbone.") for k in sd):
        mapped: dict[str, Tensor] = {}
        for key, value in sd.items():
            if key.startswith("backbone."):
                mapped[key[len("backbone.") :]] = value
            elif key in ("cls_head.fc_cls.weight", "cls_head.fc_cls.bias"):
                mapped[f"{arch.head}.{key.rsplit('.', 1)[1]}"] = value
            else:
                mapped[key] = value
        notes.append("mmaction2 layout mapped: backbone.* and cls_head.fc_cls.*")
        sd = mapped
    elif not any(k in expected for k in sd):
        first = {k.split(".", 1)[0] for k in sd}
        if len(first) == 1 and all("." in k for k in sd):
            prefix = f"{first.pop()}."
            stripped = {k[len(prefix) :]: v for k, v in sd.items()}
            if any(k in expected for k in stripped):
                notes.append(f"key prefix removed: {prefix}")
                sd = stripped
    head_w = sd.get(arch.head_weight_key)
    want = len(expected.get(arch.head_weight_key, ()))
    if head_w is not None and head_w.dim() == 2 and want == 5:
        # a Linear classifier's weights for S3D's 1x1x1 Conv3d head: same numbers, another shape
        sd = {**sd, arch.head_weight_key: head_w.reshape(*head_w.shape, 1, 1, 1)}
    return sd


def fitting_architectures(sd: dict[str, Tensor]) -> list[Architecture]:
    """The architectures whose every weight (head aside) the checkpoint has, with the same shape."""
    found: list[Architecture] = []
    for arch in ARCHITECTURES.values():
        fitted = fit_keys(sd, arch, [])
        heads = (arch.head_weight_key, f"{arch.head}.bias")
        expected = {k: s for k, s in arch.expected_shapes().items() if k not in heads}
        if all(k in fitted and tuple(fitted[k].shape) == s for k, s in expected.items()):
            found.append(arch)
    return found


def detect_architecture(sd: dict[str, Tensor], path: Path | None) -> Architecture:
    """The one architecture `sd` fits, or an error asking for `--arch` (naming the candidates)."""
    found = fitting_architectures(sd)
    if len(found) == 1:
        return found[0]
    names = " or ".join(a.name for a in found)
    hint = f" (it fits {names})" if found else ""
    raise BadCheckpointError(
        f"cannot tell the architecture of {file_name(path)}{hint}: pass --arch NAME or ARCH:PATH, NAME one of "
        f"{', '.join(ARCHITECTURES)}"
    )


def build_loaded(
    arch: Architecture, k: int, sd: dict[str, Tensor], path: Path | None, notes: list[str]
) -> nn.Module:
    """`arch` with `k` classes holding the checkpoint's weights; an error if any weight is missing."""
    # Built on the meta device: random initialisation of weights about to be overwritten costs as much
    # as the load itself (seconds for MViT and Swin). The checkpoint's tensors are then assigned.
    with torch.device("meta"):
        net = arch.build(k)
    own = net.state_dict()
    _check_shapes(arch, sd, own, path)
    # assign=True keeps the checkpoint's dtype, so convert (a half-precision file gives a float model).
    sd = {
        key: v.to(own[key].dtype) if key in own and v.dtype != own[key].dtype else v for key, v in sd.items()
    }
    result = net.load_state_dict(sd, strict=False, assign=True)
    # BatchNorm's batch counter only matters for momentum=None training; old checkpoints lack it.
    missing = [key for key in result.missing_keys if not key.endswith("num_batches_tracked")]
    unexpected = list(result.unexpected_keys)
    if missing:
        extra = f"; it has {len(unexpected)} keys {arch.name} lacks ({few(unexpected)})" if unexpected else ""
        raise BadCheckpointError(
            f"checkpoint {file_name(path)} does not fit {arch.name}: {len(missing)} weights missing "
            f"({few(missing)}){extra}{_other_arch_hint(sd, arch)}"
        )
    _materialise_batch_counters(net)
    left = [n for n, t in (*net.named_parameters(), *net.named_buffers()) if t.is_meta]
    if left:
        # cannot happen for the tables' architectures (every tensor is in the state dict); a new one
        # with non-persistent buffers would need a real build
        raise BadCheckpointError(f"{arch.name} has tensors no checkpoint provides: {few(left)}")
    if unexpected:
        notes.append(f"{len(unexpected)} checkpoint keys not used by {arch.name}: {few(unexpected)}")
    return net


def _check_shapes(
    arch: Architecture, sd: dict[str, Tensor], own: dict[str, Tensor], path: Path | None
) -> None:
    bad = [key for key, v in sd.items() if key in own and tuple(v.shape) != tuple(own[key].shape)]
    if bad:
        key = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise BadCheckpointError(
            f"checkpoint {file_name(path)} does not fit {arch.name}: {key} has shape {tuple(sd[key].shape)} in "
            f"the checkpoint, {tuple(own[key].shape)} in the model{more}{_other_arch_hint(sd, arch)}"
        )


def _materialise_batch_counters(net: nn.Module) -> None:
    # the counters a checkpoint lacked are still on the meta device: give them real (zero) storage
    for module in net.modules():
        for name, buf in module.named_buffers(recurse=False):
            if buf.is_meta and name == "num_batches_tracked":
                setattr(module, name, torch.zeros((), dtype=torch.long))


def _other_arch_hint(sd: dict[str, Tensor], arch: Architecture) -> str:
    others = [a.name for a in fitting_architectures(sd) if a.name != arch.name]
    return f" (the checkpoint fits {' or '.join(others)})" if others else ""
