"""Backbones, projectors and the joint-embedding model: ``x -> (h, z)``.

The backbone maps an image (or a patch) to its *embedding* h, the space BagSSL
evaluates: an image is represented by the mean of its patches' h. The projector
maps h to the *projection* z on which the loss is computed, as in VICReg, SimCLR
and TCR. Inputs are images in [0, 1]; the model normalises them itself, so that
patches straight from ``augment`` can be fed as they are.

Every backbone has ``out_dim``, ``forward_features(x) -> (B, C, h, w)`` (the last
feature map, used by local aggregation, appendix C.4) and ``forward(x) -> (B, out_dim)``,
the global average of that map.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from cooc_minimal.config import parse_projector_dims as parse_dims

ARCHS = ("tiny", "resnet18", "resnet34", "resnet50")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(nn.Module):
    """A feature extractor ``x: (B, 3, H, W) -> h: (B, out_dim)``, globally average-pooled."""

    out_dim: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x).mean(dim=(2, 3))


class TinyCNN(Backbone):
    """Three 3x3 conv-BN-ReLU blocks (width, 2 width, 4 width), the last two with stride 2.

    Small enough to learn the toy world on a CPU in under a minute (smoke scale).
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        channels = (3, width, 2 * width, 4 * width)
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(channels, channels[1:], strict=False)):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=1 if i == 0 else 2, padding=1,
                                 bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.out_dim = channels[-1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class ResNet(Backbone):
    """A torchvision ResNet without its classifier (``fc``), optionally with a CIFAR stem.

    The CIFAR stem replaces the 7x7 stride-2 convolution and the max-pool by one 3x3
    stride-1 convolution, so that a 32x32 image keeps a 4x4 final map instead of 1x1
    (as in solo-learn and the EMP-SSL code). Parameter names follow torchvision's
    (``conv1.weight``, ``layer1.0.bn1.weight``, ...), so its state dicts load directly.
    """

    def __init__(self, name: str, cifar_stem: bool) -> None:
        super().__init__()
        net = getattr(torchvision.models, name)(weights=None)
        if cifar_stem:
            net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        self.out_dim = net.fc.in_features
        net.fc = nn.Identity()
        for part in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, part, getattr(net, part))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def resnet(name: str, cifar_stem: bool) -> ResNet:
    """``resnet18``, ``resnet34`` or ``resnet50``, randomly initialised, without ``fc``."""
    if name not in ARCHS or name == "tiny":
        raise ValueError(f"Unknown ResNet {name!r}: choose resnet18, resnet34 or resnet50.")
    return ResNet(name, cifar_stem)


def tiny_cnn(width: int = 32) -> TinyCNN:
    """The smoke-scale backbone: conv widths ``width, 2 width, 4 width``; out_dim = 4 width."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}.")
    return TinyCNN(width)


def projector(dims: str, in_dim: int) -> nn.Sequential:
    """The projection head: Linear layers of widths ``dims``, with BatchNorm1d + ReLU between.

    As in VICReg's ``Projector``: hidden Linear layers with bias, the last Linear with no
    bias, no norm and no activation.
    ``projector("", in_dim)`` is the identity (z = h).
    """
    widths = [in_dim, *parse_dims(dims)]
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(widths, widths[1:], strict=False)):
        last = i == len(widths) - 2
        layers.append(nn.Linear(d_in, d_out, bias=not last))
        if not last:
            layers += [nn.BatchNorm1d(d_out), nn.ReLU(inplace=True)]
    head = nn.Sequential(*layers)
    head.out_dim = widths[-1]
    return head


class JointEmbedding(nn.Module):
    """Normalise, embed, project: ``forward(x) -> (h, z)``.

    x: (B, 3, H, W) in [0, 1]; h: (B, backbone.out_dim), the embedding; z: (B, proj_dim),
    the projection (``z = h`` without a projector).
    """

    def __init__(self, backbone: Backbone, head: nn.Module,
                 mean: tuple[float, ...] = IMAGENET_MEAN,
                 std: tuple[float, ...] = IMAGENET_STD) -> None:
        super().__init__()
        self.backbone = backbone
        self.projector = head
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    @property
    def embedding_dim(self) -> int:
        return self.backbone.out_dim

    @property
    def projection_dim(self) -> int:
        return getattr(self.projector, "out_dim", self.backbone.out_dim)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(f"the model takes images (B, {self.mean.shape[1]}, H, W) in [0, 1], "
                             f"got shape {tuple(x.shape)}: flatten patches (B, n, C, s, s) to "
                             f"(B * n, C, s, s) first.")
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's last feature map (B, C, h, w), before global pooling."""
        return self.backbone.forward_features(self.normalize(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.backbone(self.normalize(x))
        return h, self.projector(h)

    def embed(self, x: torch.Tensor, space: str = "embedding") -> torch.Tensor:
        """h (``space="embedding"``) or z (``space="projection"``) of x: (B, D)."""
        if space not in ("embedding", "projection"):
            raise ValueError(f"space must be 'embedding' or 'projection', got {space!r}.")
        h = self.backbone(self.normalize(x))
        return h if space == "embedding" else self.projector(h)


def build_model(arch: str, projector_dims: str, cifar_stem: bool = True, width: int = 32,
                mean: tuple[float, ...] = IMAGENET_MEAN,
                std: tuple[float, ...] = IMAGENET_STD) -> JointEmbedding:
    """The joint-embedding model of a run: ``arch`` in ARCHS, projector ``"4096-128"``.

    ``width`` is the tiny CNN's first width (ignored by ResNets); ``cifar_stem`` is
    ignored by the tiny CNN, which has no down-sampling stem.
    """
    if arch not in ARCHS:
        raise ValueError(f"Unknown architecture {arch!r}: choose one of {', '.join(ARCHS)}.")
    backbone = tiny_cnn(width) if arch == "tiny" else resnet(arch, cifar_stem)
    return JointEmbedding(backbone, projector(projector_dims, backbone.out_dim), mean, std)
