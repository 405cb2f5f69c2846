"""Local aggregation of a pretrained backbone's feature map (appendix C.4), and loading weights.

A backbone's last feature map, (B, C, h, w), is usually averaged over all h x w
positions (global pooling) before a linear probe. Appendix C.4 instead
average-pools it with a 3x3 window and stride 2 and flattens the result: for a
CIFAR ResNet-18 whose map is 512 x 5 x 5, that is 512 x 2 x 2 = 2048 numbers,
four overlapping regional averages instead of one global one.

The weights can come from this course's own checkpoints (``checkpoint.py``), or
from a plain ResNet state dict in torchvision's naming (``conv1.weight``,
``layer1.0.bn1.weight``, ...) or in solo-learn's (the same names behind a
``backbone.`` prefix, inside a PyTorch Lightning checkpoint's ``state_dict``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cooc_minimal.bags import bag_embeddings
from cooc_minimal.evaluate import linear_probe
from cooc_minimal.models import ARCHS, JointEmbedding, build_model
from cooc_minimal.runtime import evaluation_mode, model_device, positive_int

__all__ = [
    "BAG_OF_TILES", "CIFAR_MEAN", "CIFAR_STD", "GLOBAL_AVERAGE", "REGIONS", "pooled_side",
    "pad_images", "feature_map_size",
    "local_aggregation_features", "global_pool_features", "backbone_state_dict",
    "load_backbone_weights", "load_pretrained", "pooling_features", "probe_poolings",
]

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)  # solo-learn's CIFAR normalisation
CIFAR_STD = (0.2470, 0.2435, 0.2616)
_SHOW = 3  # how many offending keys an error message names


def pooled_side(side: int, pool: int, stride: int) -> int:
    """Side of ``avg_pool2d(window=pool, stride=stride)``'s output, no padding: 5 -> 2 for 3, 2."""
    return (side - pool) // stride + 1


def pad_images(images: torch.Tensor, pad_to: int | None) -> torch.Tensor:
    """Zero-pad (black, in [0, 1] pixel space) images (B, C, H, W) to (B, C, pad_to, pad_to).

    The padding is split evenly between the sides (one more pixel right/bottom when odd),
    as ``RandomCrop(32, padding=4)`` pads CIFAR images to 40x40. ``None`` returns images.
    """
    if pad_to is None:
        return images
    height, width = images.shape[-2:]
    if pad_to < max(height, width):
        raise ValueError(f"pad_to={pad_to} is smaller than the images ({height}x{width}): pass "
                         f"pad_to=None or a size of at least {max(height, width)}.")
    top, left = (pad_to - height) // 2, (pad_to - width) // 2
    return F.pad(images, (left, pad_to - width - left, top, pad_to - height - top))


def _feature_map(backbone: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w): ``feature_map`` of a JointEmbedding (normalises [0, 1] images itself),
    else ``forward_features`` of a bare backbone (images already normalised)."""
    if isinstance(backbone, JointEmbedding) or hasattr(backbone, "feature_map"):
        return backbone.feature_map(images)
    return backbone.forward_features(images)


def _check_inputs(backbone: nn.Module, images: torch.Tensor) -> None:
    if not (hasattr(backbone, "feature_map") or hasattr(backbone, "forward_features")):
        raise ValueError(f"backbone must be a JointEmbedding or a cooc_minimal backbone with "
                         f"forward_features, got {type(backbone).__name__}.")
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a 4-D tensor (B, C, H, W), got {shape}: add a batch "
                         f"dimension with images.unsqueeze(0) for a single image.")


def _pooled(backbone: nn.Module, images: torch.Tensor, pad_to: int | None, batch_size: int,
            pool_fn) -> torch.Tensor:
    """Run the backbone in eval mode over batches of images (moved to its device), apply
    ``pool_fn`` to each feature map; the result is on the images' device, modes restored.

    Not ``bags.grid_embeddings``: these features pool one feature map of the whole image,
    so neighbouring positions share context, where a patch embedding sees its pixels only.
    """
    device = model_device(backbone)
    with evaluation_mode(backbone):
        chunks = [pool_fn(_feature_map(backbone, pad_images(
            images[i:i + batch_size].to(device), pad_to))).float().to(images.device)
                  for i in range(0, images.shape[0], batch_size)]
    return torch.cat(chunks)


def feature_map_size(backbone: nn.Module, side: int | tuple[int, int]) -> tuple[int, int, int]:
    """(C, h, w) of the last feature map for a ``side`` x ``side`` (or (H, W)) input, by running
    one blank image through ``backbone`` (a JointEmbedding or a bare backbone)."""
    height, width = (side, side) if isinstance(side, int) else tuple(side)
    param = next(backbone.parameters())
    probe = torch.zeros(1, 3, height, width, device=param.device, dtype=param.dtype)
    return tuple(_pooled(backbone, probe, None, 1, lambda m: m).shape[1:])


def local_aggregation_features(backbone: nn.Module, images: torch.Tensor, pool: int = 3,
                               stride: int = 2, pad_to: int | None = 40,
                               batch_size: int = 256) -> torch.Tensor:
    """Appendix C.4's features: the last map average-pooled (window ``pool``, ``stride``), flat.

    images: (B, 3, H, W), in [0, 1] for a JointEmbedding (or normalised for a bare
    backbone), zero-padded to ``pad_to`` x ``pad_to`` first (``None``: as they are).
    The map (B, C, h, w) becomes (B, C, a, a') with ``a = (h - pool) // stride + 1``,
    flattened channel-major to (B, C * a * a'): 512 x 5 x 5 -> 512 x 2 x 2 -> 2048 for a
    CIFAR ResNet-18 fed 40x40, 2048 x 5 x 5 -> 8192 for a ResNet-50. Runs in eval mode
    (batch-norm running statistics), without gradients, on the images' device.
    """
    _check_inputs(backbone, images)
    for name, value in (("pool", pool), ("stride", stride), ("batch_size", batch_size)):
        positive_int(name, value)
    _, height, width = feature_map_size(backbone, pad_images(images[:1], pad_to).shape[-2:])
    if min(height, width) < pool:
        raise ValueError(f"the feature map is {height}x{width}, smaller than the pooling window "
                         f"{pool}: use larger images (pad_to) or a smaller pool.")
    return _pooled(backbone, images, pad_to, batch_size,
                   lambda fmap: F.avg_pool2d(fmap, pool, stride).flatten(1))


def global_pool_features(backbone: nn.Module, images: torch.Tensor, pad_to: int | None = None,
                         batch_size: int = 256) -> torch.Tensor:
    """The usual features: the last map (B, C, h, w) averaged over all positions -> (B, C).

    With ``pad_to=None`` (the default) this is the backbone's own output h on the images
    as they are; pass ``pad_to=40`` to pool the same padded map as local aggregation does.
    """
    _check_inputs(backbone, images)
    pad_images(images[:1], pad_to)
    return _pooled(backbone, images, pad_to, batch_size, lambda m: m.mean(dim=(2, 3)))


#: The names of :func:`pooling_features`' first three feature sets (the keys of its dict).
BAG_OF_TILES, GLOBAL_AVERAGE, REGIONS = ("bag of the 16 tiles", "global average",
                                         "local, window 5 stride 3 (x4)")


def pooling_features(model: nn.Module, tile: int = 8, *,
                     literal: bool = False) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """The feature sets chapter 8 compares, each a function of images (N, 3, 32, 32).

    - the bag of the grid's tiles of side ``tile``, embedded one by one (chapter 7);
    - the global average of the map of the whole image (``global_pool_features``);
    - four regional averages: windows of 5 at stride 3 on the map, no padding (appendix
      C.4's geometry scaled to an 8x8 map), 4x the dimensions;
    - with ``literal``, appendix C.4 to the letter: padded to 40, window 3, stride 2 (16x).
    """
    sets = {
        BAG_OF_TILES: lambda x: bag_embeddings(model, x, tile, None, grid=True),
        GLOBAL_AVERAGE: lambda x: global_pool_features(model, x),
        REGIONS: lambda x: local_aggregation_features(model, x, pool=5, stride=3, pad_to=None),
    }
    if literal:
        sets["local, pad 40, window 3 stride 2 (x16)"] = lambda x: local_aggregation_features(
            model, x)
    return sets


def probe_poolings(model: nn.Module, train, test, *, literal: bool = False,
                   max_iter: int = 100) -> dict:
    """A linear probe (``evaluate.linear_probe``) on each of :func:`pooling_features`.

    train, test: anything with ``images`` (N, 3, 32, 32) and ``labels`` (N,), such as a
    ``toyworld.ToySample``. Returns {feature set name: ProbeResult}.
    """
    return {name: linear_probe(features(train.images), train.labels, features(test.images),
                               test.labels, max_iter=max_iter)
            for name, features in pooling_features(model, literal=literal).items()}


# ---------------------------------------------------------------- loading weights


def backbone_state_dict(obj: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], str]:
    """The backbone's weights, in torchvision naming, from a loaded state dict or checkpoint.

    Accepts a PyTorch Lightning checkpoint (weights under ``state_dict``), DDP's
    ``module.`` prefix, solo-learn's ``backbone.`` prefix (its projector, classifier and
    momentum networks are dropped) and a torchvision model's ``fc.`` classifier (dropped).
    Returns the state dict and the format found: ``"solo-learn"`` or ``"torchvision"``.
    """
    state = obj.get("state_dict", obj) if isinstance(obj, Mapping) else obj
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise ValueError(f"expected a state dict (a mapping from parameter names to tensors), "
                         f"got {type(state).__name__}.")
    state = {k.removeprefix("module."): v for k, v in state.items()
             if isinstance(v, torch.Tensor)}
    if any(k.startswith("backbone.") for k in state):
        return {k.removeprefix("backbone."): v for k, v in state.items()
                if k.startswith("backbone.") and not k.startswith("backbone.fc.")}, "solo-learn"
    return {k: v for k, v in state.items() if not k.startswith("fc.")}, "torchvision"


def _first(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (", ..." if len(keys) > _SHOW else "")


def load_backbone_weights(backbone: nn.Module, state: Mapping[str, torch.Tensor],
                          what: str = "the backbone") -> None:
    """Copy ``state`` into ``backbone`` exactly (every key, every shape), or say what differs.

    Raises a ValueError whose one sentence counts the missing keys, the unexpected keys
    and the shape mismatches, naming the first few of each, before anything is copied.
    """
    expected = backbone.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        problems = [f"{len(found)} {label}{'' if len(found) == 1 else plural} ({_first(found)})"
                    for found, label, plural in ((missing, "missing key", "s"),
                                                 (unexpected, "unexpected key", "s"),
                                                 (wrong, "shape mismatch", "es")) if found]
        raise ValueError(f"The weights do not fit {what}: {'; '.join(problems)}; check arch and "
                         f"cifar_stem, and strip any prefix your code adds to the names.")
    backbone.load_state_dict(state)


def _read(path: Path, trusted: bool) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"No weights file at {path}: check the path (runs/NAME/last.pt "
                                f"for a run trained with this course).")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trusted)
    except Exception as error:  # any unpickling failure gets one sentence
        if not trusted and "weights only" in str(error).lower().replace("_", " "):
            raise ValueError(f"{path} holds Python objects besides tensors (a Lightning "
                             f"checkpoint's hyper-parameters, say); if you trust where it came "
                             f"from, pass trusted=True to unpickle it.") from None
        raise ValueError(f"{path} is not a readable PyTorch file ({type(error).__name__}): it "
                         f"may be truncated, download or copy it again.") from None


def load_pretrained(source: str | Path | Mapping[str, Any], arch: str = "resnet18",
                    cifar_stem: bool = True, stem_padding: int | None = None,
                    mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                    device: str | torch.device = "cpu", trusted: bool = False) -> JointEmbedding:
    """A JointEmbedding, in eval mode, with pretrained backbone weights from ``source``.

    ``source``: a file path or an already loaded dict. A checkpoint of this course
    (keys ``model`` and ``config``) is rebuilt exactly by ``checkpoint.load_model``, with its
    projector. Any other state dict is read by ``backbone_state_dict`` into a fresh
    ``arch`` backbone without a projector (z = h). solo-learn builds its CIFAR stem with
    ``padding=2``, so 32x32 images give 34x34 after conv1 and a 5x5 last map; for its
    weights ``stem_padding`` defaults to 2 and the normalisation to CIFAR_MEAN/CIFAR_STD.
    Elsewhere the stem keeps padding 1 and ImageNet statistics unless told.
    """
    obj = source if isinstance(source, Mapping) else _read(Path(source), trusted)
    if isinstance(obj, Mapping) and "model" in obj and "config" in obj:
        if isinstance(source, Mapping):
            raise ValueError("this is a course checkpoint: pass its path, so that "
                             "checkpoint.load_model rebuilds the model from its config.")
        from cooc_minimal.checkpoint import load_model

        return load_model(source, device)[0].eval()
    if arch not in ARCHS or arch == "tiny":
        raise ValueError(f"arch must be resnet18, resnet34 or resnet50 for a plain state dict, "
                         f"got {arch!r}.")
    state, found = backbone_state_dict(obj)
    solo = found == "solo-learn" and cifar_stem
    defaults = dict(mean=CIFAR_MEAN, std=CIFAR_STD) if solo else {}
    model = build_model(arch, "", cifar_stem,
                        **{**defaults, **{k: v for k, v in (("mean", mean), ("std", std))
                                          if v is not None}})
    padding = stem_padding if stem_padding is not None else (2 if solo else None)
    if padding is not None:
        model.backbone.conv1.padding = (padding, padding)
    stem = "CIFAR stem" if cifar_stem else "ImageNet stem"
    load_backbone_weights(model.backbone, state, f"a {arch} backbone ({stem}, {found} naming)")
    return model.to(device).eval()
