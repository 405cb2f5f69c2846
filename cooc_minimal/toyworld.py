"""A toy world of images built from parts, whose true patch co-occurrence is known exactly.

An image of class c is a grid of ``grid x grid`` tiles; each tile shows one of V
part textures, drawn independently from the class's part distribution ``w_c``
(a row of ``weights``, Dirichlet-distributed when the world is made). Parts are
shared between classes, as sky is shared by airplanes, birds and ships, so one
tile says little about the class while a bag of tiles says a lot.

Because tiles are independent given the class, the part types (u, v) of two
distinct tiles of one image have the joint

    P[u, v] = sum_c pi_c w_c[u] w_c[v],   i.e.   P = W^T diag(pi) W,   (V, V),

symmetric, summing to 1, with marginal p = P.sum(1) = W^T pi: the (P, p)
convention of ``cooccurrence.py`` (both orders of a pair counted).

How close a model comes to that structure (chapter 5): :func:`part_embeddings` (the mean
embedding of each part type's tiles), compared with the closed-form optimum of
Proposition 3.1 by :func:`gram_similarity` (on :func:`weighted_gram` matrices).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

PART_NAMES = ("sky", "grass", "water", "bark", "sand", "brick", "leaves", "snow")
# One colour per part (RGB in [0, 1]) and a stripe orientation (degrees) and period (pixels):
# every part differs from every other in colour or in texture or both.
PALETTE = ((0.45, 0.65, 0.90), (0.35, 0.70, 0.30), (0.15, 0.30, 0.60), (0.45, 0.30, 0.20),
           (0.85, 0.75, 0.45), (0.70, 0.30, 0.25), (0.20, 0.45, 0.20), (0.90, 0.90, 0.92))
ORIENTATIONS = (0.0, 90.0, 45.0, 135.0, 0.0, 90.0, 45.0, 135.0)
PERIODS = (8.0, 4.0, 4.0, 8.0, 4.0, 8.0, 8.0, 4.0)


@dataclass(frozen=True)
class ToySample:
    """A batch of toy images. images: (N, 3, S, S) float32 in [0, 1]; labels: (N,) int64;
    parts: (N, T) int64, the part of each tile, tiles in row-major order (as ``grid_patches``)."""

    images: torch.Tensor
    labels: torch.Tensor
    parts: torch.Tensor


class ToyWorld:
    """K classes mixing V part textures on a ``grid x grid`` grid of ``tile``-pixel tiles.

    The defaults make 32x32 RGB images of 16 tiles of 8x8, 10 classes, 8 parts, and
    class part-distributions drawn from Dirichlet(0.7), all fixed by ``seed``.
    """

    def __init__(self, n_classes: int = 10, n_parts: int = 8, grid: int = 4, tile: int = 8,
                 concentration: float = 0.7, seed: int = 0, amplitude: float = 0.2,
                 noise: float = 0.04, *, independent_parts: bool = False) -> None:
        if not 2 <= n_parts <= len(PALETTE):
            raise ValueError(f"n_parts must be between 2 and {len(PALETTE)}, got {n_parts}.")
        for name, value in (("n_classes", n_classes), ("grid", grid), ("tile", tile)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if concentration <= 0:
            raise ValueError(f"concentration must be positive, got {concentration}.")
        self.n_classes, self.n_parts, self.grid, self.tile = n_classes, n_parts, grid, tile
        self.amplitude, self.noise, self.seed = amplitude, noise, seed
        self.independent_parts = bool(independent_parts)
        rng = np.random.default_rng(seed)
        weights = rng.dirichlet(np.full(n_parts, concentration), size=n_classes)
        self.weights = torch.from_numpy(weights)  # (K, V) float64, rows sum to 1
        self.class_prior = torch.full((n_classes,), 1.0 / n_classes, dtype=torch.float64)
        self.colors = torch.tensor(PALETTE[:n_parts], dtype=torch.float32)  # (V, 3)
        angles = torch.tensor(ORIENTATIONS[:n_parts]) * math.pi / 180
        self.directions = torch.stack([angles.cos(), angles.sin()], dim=1)  # (V, 2)
        self.periods = torch.tensor(PERIODS[:n_parts])  # (V,)

    @property
    def size(self) -> int:
        """Side of an image in pixels."""
        return self.grid * self.tile

    @property
    def n_tiles(self) -> int:
        return self.grid * self.grid

    def cooccurrence(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The true co-occurrence of the parts of two distinct tiles of one image.

        Returns P: (V, V) float64, symmetric, summing to 1, and p = P.sum(1): (V,). With
        ``independent_parts`` it is P = p p^T: the parts of two tiles are independent.
        """
        joint = self.weights.T @ (self.class_prior[:, None] * self.weights)
        joint = (joint + joint.T) / 2  # exact symmetry despite rounding
        if self.independent_parts:
            joint = torch.outer(joint.sum(dim=1), joint.sum(dim=1))
        return joint, joint.sum(dim=1)

    @property
    def part_marginal(self) -> torch.Tensor:
        """p: (V,) float64, the share of tiles that show each part (the same in both modes)."""
        return self.class_prior @ self.weights

    def class_log_posterior(self, parts: torch.Tensor) -> torch.Tensor:
        """log p(class | the parts seen), with tiles independent given the class.

        parts: (N, T) int64 part ids of T observed tiles. Returns (N, K) float64. With
        ``independent_parts`` the parts say nothing: the posterior is the class prior.
        """
        if self.independent_parts:
            return self.class_prior.log().expand(parts.shape[0], -1).clone()
        log_w = self.weights.log()  # (K, V)
        scores = self.class_prior.log() + log_w[:, parts].sum(dim=-1).T  # (N, K)
        return scores - scores.logsumexp(dim=1, keepdim=True)

    def bayes_accuracy(self, n_tiles: int, n_samples: int = 20_000, seed: int = 0) -> float:
        """Accuracy of the best possible classifier that sees the parts of ``n_tiles`` tiles.

        Exact for one tile; for more, a Monte Carlo estimate from ``n_samples`` images.
        """
        if n_tiles == 1 and not self.independent_parts:
            joint = self.class_prior[:, None] * self.weights  # (K, V): p(class, part)
            return joint.max(dim=0).values.sum().item()
        generator = torch.Generator().manual_seed(seed)
        labels, parts = self.sample_parts(n_samples, generator, n_tiles)
        guess = self.class_log_posterior(parts).argmax(dim=1)
        return (guess == labels).double().mean().item()

    def sample_parts(self, n: int, generator: torch.Generator,
                     n_tiles: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw classes and tile parts without rendering: labels (n,), parts (n, T).

        A tile's part is drawn from its class's row of ``weights``, or, with
        ``independent_parts``, from the marginal p whatever the class: the same parts as
        often, with no co-occurrence left (the control of chapter 7).
        """
        n_tiles = self.n_tiles if n_tiles is None else n_tiles
        labels = torch.multinomial(self.class_prior, n, replacement=True, generator=generator)
        rows = (self.part_marginal.expand(n, -1) if self.independent_parts
                else self.weights[labels])
        parts = torch.multinomial(rows, n_tiles, replacement=True, generator=generator)
        return labels, parts

    def render(self, parts: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Paint tiles of the given parts into images.

        parts: (N, T) int64 with T = grid * grid. Each tile is its part's colour plus
        stripes of the part's orientation and period, at a random phase, with a random
        brightness offset and pixel noise. Returns images: (N, 3, S, S) float32.
        """
        n, grid, tile = parts.shape[0], self.grid, self.tile
        coords = torch.arange(tile, dtype=torch.float32)
        ys, xs = torch.meshgrid(coords, coords, indexing="ij")  # (t, t)
        direction = self.directions[parts]  # (N, T, 2)
        along = direction[..., 0, None, None] * xs + direction[..., 1, None, None] * ys
        phase = 2 * math.pi * torch.rand(n, grid * grid, 1, 1, generator=generator)
        wave = torch.sin(2 * math.pi * along / self.periods[parts][..., None, None] + phase)
        offset = 0.06 * (torch.rand(n, grid * grid, 1, 1, 1, generator=generator) - 0.5)
        tiles = (self.colors[parts][..., None, None] + offset
                 + self.amplitude * wave[:, :, None]
                 + self.noise * torch.randn(n, grid * grid, 3, tile, tile, generator=generator))
        # (N, rows, cols, 3, t, t) -> (N, 3, rows, t, cols, t) -> (N, 3, S, S)
        tiles = tiles.view((n, grid, grid, 3, tile, tile)).permute((0, 3, 1, 4, 2, 5))
        return tiles.reshape(n, 3, grid * tile, grid * tile).clamp(0.0, 1.0)

    def sample(self, n: int, generator: torch.Generator | int = 0) -> ToySample:
        """Draw ``n`` images: a class each, a part per tile, then the pixels.

        ``generator``: a ``torch.Generator`` or an integer seed; the same seed gives the
        same images on every machine.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}.")
        if not isinstance(generator, torch.Generator):
            generator = torch.Generator().manual_seed(int(generator))
        labels, parts = self.sample_parts(n, generator)
        return ToySample(self.render(parts, generator), labels, parts)


class ToyWorldDataset(Dataset):
    """A fixed set of toy images as a map-style dataset of ``(image, label)`` pairs.

    Also holds ``images`` (N, 3, S, S), ``labels`` (N,), ``parts`` (N, T) and the ``world``.
    """

    def __init__(self, world: ToyWorld, n: int, seed: int, transform=None) -> None:
        sample = world.sample(n, seed)
        self.world, self.transform = world, transform
        self.images, self.labels, self.parts = sample.images, sample.labels, sample.parts
        self.classes = [f"class {c}" for c in range(world.n_classes)]

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])


# ------------------------------------------- how a model's parts compare with the closed form

def part_embeddings(model: nn.Module, images: torch.Tensor, parts: torch.Tensor, tile: int,
                    n_parts: int, *, space: str = "projection",
                    batch_size: int | None = None) -> torch.Tensor:
    """The mean embedding of the tiles of each part type, for a toy world.

    images: (B, C, S, S) toy images; parts: (B, T) the part of each tile, row-major (as
    ``ToySample.parts``), with T = (S / tile)^2. Each tile is embedded on its own
    (``bags.grid_embeddings``, ``batch_size`` tiles per pass); the tiles of part v are
    averaged. Returns (n_parts, D) float32 on ``images``' device; a part that never occurs
    gets a row of NaN.
    """
    # Imported here: the datasets (data.py) read this module and need no model.
    from cooc_minimal.bags import grid_embeddings

    height, width = images.shape[-2:]
    if parts.shape != (images.shape[0], (height // tile) * (width // tile)):
        raise ValueError(f"parts must be (B, T) = ({images.shape[0]}, "
                         f"{(height // tile) * (width // tile)}) for {height}x{width} images of "
                         f"{tile}-pixel tiles, got {tuple(parts.shape)}.")
    tiles = grid_embeddings(model, images, tile, space=space, batch_size=batch_size)
    flat = tiles.flatten(0, 1)  # (B * T, D), in the order of parts.flatten()
    ids = parts.flatten().to(images.device)
    sums = torch.zeros(n_parts, flat.shape[1], device=images.device).index_add_(0, ids, flat)
    counts = torch.bincount(ids, minlength=n_parts).float()[:, None]
    return sums / counts


def weighted_gram(Z: torch.Tensor, p: torch.Tensor, centre: bool = True) -> torch.Tensor:
    """The Gram matrix of V type embeddings in the metric of Proposition 3.1: (V, V) float64.

    Z: (V, d), p: (V,) type frequencies. Returns G = U U^T with U = diag(sqrt p) Z, the
    matrix that the objective ||w U U^T - M||_F^2 fits to M = D^-1/2 P D^-1/2 (chapter 1).
    ``centre`` first projects the columns of U off the unit vector along sqrt(p): the top
    eigenvector of M (eigenvalue 1), the direction of a constant embedding.
    """
    if Z.dim() != 2 or p.shape != (Z.shape[0],):
        raise ValueError(f"Z must be (V, d) and p (V,), got {tuple(Z.shape)} and "
                         f"{tuple(p.shape)}.")
    root = p.double().sqrt()
    U = root[:, None] * Z.double()
    if centre:
        unit = root / root.norm()
        U = U - unit[:, None] * (unit @ U)[None, :]
    return U @ U.T


def gram_similarity(Z: torch.Tensor, reference: torch.Tensor, p: torch.Tensor,
                    centre: bool = True) -> float:
    """How alike two embeddings of V types are, up to rotation and scale: in [-1, 1].

    Z: (V, d), reference: (V, d'), p: (V,) type frequencies. The cosine
    <G, G_ref>_F / (||G||_F ||G_ref||_F) of their :func:`weighted_gram` matrices, which
    ignores rotations of Z (Z Q has the same Gram matrix) and its scale. ``centre`` removes
    the direction of a constant embedding first: every embedding with a non-zero mean has
    it for free, so it would hide differences (chapter 5 measures how much). An embedding
    with nothing left after centring (a constant one) scores 0.
    """
    if Z.dim() != 2 or reference.dim() != 2 or Z.shape[0] != reference.shape[0] \
            or p.shape != (Z.shape[0],):
        raise ValueError(f"Z (V, d), reference (V, d') and p (V,) must agree on V, got "
                         f"{tuple(Z.shape)}, {tuple(reference.shape)}, {tuple(p.shape)}.")
    G, R = weighted_gram(Z, p, centre), weighted_gram(reference, p, centre)
    norms = G.norm() * R.norm()
    return ((G * R).sum() / norms).item() if norms > 0 else 0.0


def layout_sample(world: ToyWorld, n: int, seed: int) -> ToySample:
    """``n`` images of the layout world built on ``world`` (chapter 8).

    Classes come in pairs (2m, 2m + 1) that share the two part mixes ``weights[2m]`` and
    ``weights[2m + 1]``, in opposite places: class 2m draws its top half of tiles from the
    first and its bottom half from the second, class 2m + 1 the other way round. Both
    classes of a pair have the same part histogram over the whole image; only where the
    parts sit tells them apart. Tiles are row-major, so the first half is the top rows.
    Needs an even ``n_classes``; the pixels are ``world.render``'s (colours or textures).
    """
    if world.n_classes % 2 or world.grid % 2:
        raise ValueError(f"a layout world needs an even number of classes and of grid rows, "
                         f"got {world.n_classes} classes and a {world.grid}x{world.grid} grid.")
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, world.n_classes, (n,), generator=g)
    first, second = world.weights[labels - labels % 2], world.weights[labels - labels % 2 + 1]
    even = (labels % 2 == 0)[:, None]
    top, bottom = torch.where(even, first, second), torch.where(even, second, first)
    half = world.n_tiles // 2
    parts = torch.cat([torch.multinomial(top, half, True, generator=g),
                       torch.multinomial(bottom, half, True, generator=g)], dim=1)
    return ToySample(world.render(parts, g), labels, parts)
