"""Run by tests/test_losses_distributed.py under ``torchrun --nproc_per_node=2``.

Every rank builds the same global batch from a fixed seed, projects its own slice with a
shared linear layer, computes every loss, runs backward, and saves the loss, the gradient
of its embeddings and the gradient of the layer to ``OUT_DIR/rank<r>.pt``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch
import torch.distributed as dist

import cooc_minimal.losses
from cooc_minimal.losses import multipatch_loss, simclr_loss, spectral_loss, tcr_loss, vicreg_loss

IMAGES, PATCHES, IN_DIM = 10, 3, 6  # the global batch; each of 2 ranks holds 5 images

# name -> (embedding dimension D, number of views, loss of the list of views (N, D) or
# of z (B, n, D) when views is 0)
CASES: dict[str, tuple[int, int, Callable[..., torch.Tensor]]] = {
    "spectral": (8, 2, lambda a, b: spectral_loss(a, b, lam=0.7)),
    "vicreg_features": (8, 2, lambda a, b: vicreg_loss(a, b, var_coeff=5.0)),
    "vicreg_samples": (16, 2, lambda a, b: vicreg_loss(a, b, var_coeff=5.0)),
    "tcr_features": (8, 1, lambda a: tcr_loss(a)),
    "tcr_samples": (16, 1, lambda a: tcr_loss(a)),
    "simclr": (8, 2, lambda a, b: simclr_loss(a, b, temperature=0.5)),
    "multipatch_spectral": (8, 0, lambda z: multipatch_loss(z, "spectral")),
    "multipatch_vicreg": (16, 0, lambda z: multipatch_loss(z, "vicreg", var_coeff=5.0)),
    "multipatch_tcr": (8, 0, lambda z: multipatch_loss(z, "tcr", lam=3.0)),
    "multipatch_simclr": (8, 0, lambda z: multipatch_loss(z, "simclr", temperature=0.5)),
}


def inputs(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The global inputs x: (IMAGES, n, IN_DIM) and the layer's weight (IN_DIM, D), float64."""
    dim, views, _ = CASES[name]
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    x = torch.randn(IMAGES, views or PATCHES, IN_DIM, generator=g, dtype=torch.float64)
    weight = torch.randn(IN_DIM, dim, generator=g, dtype=torch.float64) / IN_DIM**0.5
    return x, weight


def run(name: str, x: torch.Tensor, weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """Loss, d loss / d z and d loss / d weight of the images in x."""
    _, views, loss_fn = CASES[name]
    weight = weight.clone().requires_grad_(True)
    z = (x @ weight).detach().requires_grad_(True)
    loss = loss_fn(*z.unbind(1)) if views else loss_fn(z)
    loss.backward()
    # The chain rule through the layer by hand keeps z a leaf whose .grad we can read.
    grad_weight = torch.einsum("bni,bnd->id", x, z.grad)
    return {"loss": loss.detach(), "grad_z": z.grad, "grad_weight": grad_weight}


def plain_all_gather(z: torch.Tensor) -> torch.Tensor:
    """The usual mistake: dist.all_gather returns constants; only this rank's rows keep a graph."""
    parts = [torch.empty_like(z) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, z.detach())
    parts[dist.get_rank()] = z
    return torch.cat(parts)


def main(out_dir: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    results = {}
    for name in CASES:
        x, weight = inputs(name)
        local = x.chunk(world)[rank]
        results[name] = run(name, local, weight)
    # The same losses with a gather that drops the gradient path, to show the test has teeth.
    differentiable = cooc_minimal.losses.gather_with_grad
    cooc_minimal.losses.gather_with_grad = plain_all_gather
    for name in ("spectral", "vicreg_samples", "multipatch_simclr"):
        x, weight = inputs(name)
        results[f"plain_all_gather/{name}"] = run(name, x.chunk(world)[rank], weight)
    cooc_minimal.losses.gather_with_grad = differentiable
    torch.save(results, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
