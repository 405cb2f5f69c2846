"""A toy world whose parts are told apart by texture alone, under a nuisance that hides them.

:class:`TextureWorld` is a :class:`~cooc_minimal.toyworld.ToyWorld` with other pixels. The
classes and parts are ToyWorld's machinery, unchanged: class part-distributions ``weights``
(K, V) drawn from a Dirichlet, hence the co-occurrence ``P = W^T diag(pi) W``
(:meth:`~ToyWorld.cooccurrence`) and the Bayes accuracy of n tiles
(:meth:`~ToyWorld.bayes_accuracy`). Only :meth:`TextureWorld.render` differs.

Why another world: in ToyWorld each part has its own colour, and an *untrained* network's
features already tell colours apart, so its bag of 16 tiles reaches 90% under a linear probe
(Bayes 93%): training cannot show what it adds. Here

- every part is one grey-level pattern of :data:`TEXTURE_NAMES` (stripes, checker, grid,
  rings, diamonds), all with the same mean and the same energy, at a random phase: only
  where light and dark lie tells parts apart. The pattern is faint (RMS 0.12 on a [0, 1]
  scale, against pixel noise of 0.08), so that an untrained network's features follow the
  paint far more than the pattern;
- every occurrence is painted anew (:class:`Nuisance`): a random colour per tile (any hue),
  and per image a random exposure (a gain on every pixel) and contrast, as a camera setting
  changes a whole photograph; pixel noise on top.

A random network's features follow colour, exposure and phase more than the arrangement of
light and dark, so its bags are poor. Training on the co-occurrence of patches learns the
arrangement, which is what two patches of one class share. The per-image exposure and
contrast are also a *shortcut*: the same in every patch of an image and unrelated to the
class, they let a network match the patches of an image without looking at their texture.
BYOL's colour jitter (brightness and contrast factors in [0.6, 1.4], drawn per patch) breaks
that shortcut; without augmentations the trained network learns it, and its bags are worse.

The defaults (10 classes, 8 parts, 4 x 4 tiles of 8 pixels, Dirichlet(0.3), :class:`Nuisance`'s
ranges) were chosen by measuring a tiny CNN (``configs/texture.toml``) on a 2-core CPU:
``cooc_minimal/results/texture_world.json`` holds the figures. So was the class draw,
:data:`WORLD_SEED`: a kNN vote (k = 20) is not the Bayes classifier, and on some draws it
falls short of Bayes even when it reads each image's exact part counts (3.4 points on draw
0, 1 on draw 4: ``texture_knn_ceiling.json``, ``class_draws``). A kNN claim measured
against Bayes needs a draw where the vote itself can get there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cooc_minimal.toyworld import ToyWorld

#: The part textures, in part order: part v is drawn as texture v. Periods are 3 or 4 pixels
#: (diamonds: 8 along each diagonal), so an 8-pixel tile holds two cycles or more. Each is
#: mapped to itself (at another phase) by a horizontal flip, BYOL's only geometric change of
#: a patch, so augmentations never turn one part into another.
TEXTURE_NAMES = ("rows", "columns", "fine rows", "fine columns", "checker", "grid", "rings",
                 "diamonds")
#: TextureWorld's default ``seed``: the draw of the class part-distributions (see above).
WORLD_SEED = 4


@dataclass(frozen=True)
class Nuisance:
    """How each occurrence of a part is painted: every ``(low, high)`` is a uniform range.

    Per tile: ``shade``, the HSV value of its colour; ``saturation``, its HSV saturation (the
    hue is uniform on the circle; (0, 0) gives grey tiles); ``contrast``, the RMS amplitude
    of its texture. Per image: ``exposure``, a gain on every pixel; ``image_contrast``, a
    factor on the texture amplitude of all its tiles. Per pixel: Gaussian ``noise`` (its
    standard deviation).
    """

    shade: tuple[float, float] = (0.5, 0.5)
    saturation: tuple[float, float] = (1.0, 1.0)
    contrast: tuple[float, float] = (0.12, 0.12)
    exposure: tuple[float, float] = (0.75, 1.25)
    image_contrast: tuple[float, float] = (0.75, 1.25)
    noise: float = 0.08

    def __post_init__(self) -> None:
        for name in ("shade", "saturation", "contrast", "exposure", "image_contrast"):
            bounds = getattr(self, name)
            if not (isinstance(bounds, tuple) and len(bounds) == 2
                    and 0 <= bounds[0] <= bounds[1]):
                raise ValueError(f"{name} must be a range (low, high) with 0 <= low <= high, "
                                 f"got {bounds!r}.")
        for name in ("shade", "saturation"):
            if getattr(self, name)[1] > 1:
                raise ValueError(f"{name} is an HSV coordinate: its range must lie in [0, 1], "
                                 f"got {getattr(self, name)}.")
        if not self.noise >= 0:
            raise ValueError(f"noise must be >= 0, got {self.noise!r}.")


#: No nuisance at all: grey tiles of one shade and contrast, no exposure, no noise (the
#: texture's phase stays random). What a world without painting would look like.
PLAIN = Nuisance(shade=(0.5, 0.5), saturation=(0.0, 0.0), contrast=(0.12, 0.12),
                 exposure=(1.0, 1.0), image_contrast=(1.0, 1.0), noise=0.0)


def texture_patterns(kinds: torch.Tensor, tile: int, generator: torch.Generator) -> torch.Tensor:
    """The texture of each tile at a random phase, with zero mean and unit RMS.

    kinds: (N, T) int64 indices into :data:`TEXTURE_NAMES`. Returns (N, T, tile, tile)
    float32. Each pattern is a sine wave, or a sum or product of two, with two random phases
    per tile (uniform in [0, 2 pi)); normalising every tile to mean 0 and RMS 1 leaves parts
    alike in brightness and energy, different only in their arrangement.
    """
    n, count = kinds.shape
    coords = torch.arange(tile, dtype=torch.float32)
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")  # (t, t)
    radius = ((xs - (tile - 1) / 2) ** 2 + (ys - (tile - 1) / 2) ** 2).sqrt()
    phases = 2 * math.pi * torch.rand(2, n, count, 1, 1, generator=generator)

    def wave(period: float, position: torch.Tensor, which: int) -> torch.Tensor:
        return torch.sin(2 * math.pi * position / period + phases[which])  # (N, T, t, t)

    bank = torch.stack([
        wave(4, ys, 0), wave(4, xs, 1), wave(3, ys, 0), wave(3, xs, 1),
        wave(4, xs, 1) * wave(4, ys, 0),               # checker
        wave(4, xs, 1) + wave(4, ys, 0),               # grid
        wave(4, radius, 0),                            # rings around the tile's centre
        wave(8, xs + ys, 0) + wave(8, xs - ys, 1),     # diamonds
    ])  # (8, N, T, t, t); computing all 8 for every tile is cheaper than indexing
    index = kinds[None, :, :, None, None].expand(1, n, count, tile, tile)
    chosen = bank.gather(0, index)[0]
    chosen = chosen - chosen.mean(dim=(-2, -1), keepdim=True)
    return chosen / chosen.square().mean(dim=(-2, -1), keepdim=True).sqrt().clamp_min(1e-6)


def _uniform(shape: tuple[int, ...], bounds: tuple[float, float],
             generator: torch.Generator) -> torch.Tensor:
    return torch.empty(shape).uniform_(bounds[0], bounds[1], generator=generator)


def random_colours(value: torch.Tensor, saturation: torch.Tensor,
                   generator: torch.Generator) -> torch.Tensor:
    """RGB colours of HSV ``value`` and ``saturation`` and a hue uniform on the circle.

    value, saturation: (...,) in [0, 1]. Returns (..., 3) in [0, value]; saturation 0 gives
    grey. The channel formula is the one ``augment.adjust_hue`` uses:
    ``value * (1 - saturation * clamp(min(k, 4 - k), 0, 1))``, k = (c + 6 hue) mod 6.
    """
    hue = 6 * torch.rand(value.shape, generator=generator)
    k = (torch.tensor([5.0, 3.0, 1.0]) + hue[..., None]) % 6
    ramp = torch.minimum(k, 4 - k).clamp(0, 1)
    return value[..., None] * (1 - saturation[..., None] * ramp)


class TextureWorld(ToyWorld):
    """ToyWorld's classes and parts, each part drawn as a texture (:data:`TEXTURE_NAMES`)
    and painted anew at every occurrence (:class:`Nuisance`).

    The defaults make 32x32 RGB images of 16 tiles of 8x8, 10 classes and 8 parts, with
    class part-distributions drawn from Dirichlet(0.3), fixed by ``seed`` (default
    :data:`WORLD_SEED`). ToyWorld's
    Dirichlet(0.7) mixes parts more; with the 2,000-image probe of chapter 7 the sharper
    classes leave more room between what an untrained network reads and the Bayes accuracy.
    """

    def __init__(self, n_classes: int = 10, n_parts: int = 8, grid: int = 4, tile: int = 8,
                 concentration: float = 0.3, seed: int = WORLD_SEED, *,
                 nuisance: Nuisance | None = None, independent_parts: bool = False) -> None:
        super().__init__(n_classes=n_classes, n_parts=n_parts, grid=grid, tile=tile,
                         concentration=concentration, seed=seed,
                         independent_parts=independent_parts)
        nuisance = Nuisance() if nuisance is None else nuisance
        if not isinstance(nuisance, Nuisance):
            raise ValueError(f"nuisance must be a Nuisance, got {type(nuisance).__name__}.")
        self.nuisance = nuisance
        self.texture_names = TEXTURE_NAMES[:n_parts]

    def render(self, parts: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Paint tiles of the given parts into images.

        parts: (N, T) int64 with T = grid * grid. A tile is its colour plus its texture
        (:func:`texture_patterns`, the same on the three channels) times its contrast and
        its image's contrast; the image is then multiplied by its exposure, pixel noise is
        added, and values are clamped to [0, 1] (a saturated colour has a channel near 0,
        where the clamp cuts the texture's dark half; the other channels keep it).
        Returns images: (N, 3, S, S) float32, S = grid * tile.
        """
        n, count, tile, grid = parts.shape[0], parts.shape[1], self.tile, self.grid
        paint = self.nuisance
        pattern = texture_patterns(parts, tile, generator)  # (N, T, t, t)
        colour = random_colours(_uniform((n, count), paint.shade, generator),
                                _uniform((n, count), paint.saturation, generator),
                                generator)  # (N, T, 3)
        amplitude = (_uniform((n, count, 1, 1), paint.contrast, generator)
                     * _uniform((n, 1, 1, 1), paint.image_contrast, generator))
        exposure = _uniform((n, 1, 1, 1, 1), paint.exposure, generator)
        tiles = exposure * (colour[..., None, None] + (amplitude * pattern)[:, :, None])
        tiles = tiles + paint.noise * torch.randn(n, count, 3, tile, tile, generator=generator)
        # (N, rows, cols, 3, t, t) -> (N, 3, rows, t, cols, t) -> (N, 3, S, S)
        tiles = tiles.view((n, grid, grid, 3, tile, tile)).permute((0, 3, 1, 4, 2, 5))
        return tiles.reshape(n, 3, grid * tile, grid * tile).clamp(0.0, 1.0)
