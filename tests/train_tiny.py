"""A tiny training config shared by the training tests and the torchrun worker.

64 toy-world images, batches of 16 (4 steps per epoch), 4 patches of 8x8 per image with
BYOL's views, a tiny CNN of width 8: a step takes milliseconds on a CPU.
"""

from cooc_minimal.config import Config, validate_config

# The tests assert exact equalities (resume = straight run to 1e-6, 2 ranks = 1 process to
# 1e-5): pinned to the CPU in fp32, so a GPU machine runs the same checks (gloo, not NCCL,
# which would want one GPU per rank) and cuDNN's or bf16's rounding cannot enter.
TINY = {"train_images": 64, "batch_size": 16, "n_patches": 4, "width": 8,
        "projector": "32-16", "epochs": 2, "augment": "byol", "name": "tiny",
        "device": "cpu", "precision": "fp32"}


def tiny_config(**changes) -> Config:
    return validate_config(Config(**{**TINY, **changes}))


def weights(path) -> dict:
    import torch

    state = torch.load(path, weights_only=True)
    return {**{f"model.{k}": v for k, v in state["model"].items()},
            **{f"probe.{k}": v for k, v in (state["probe"] or {}).items()}}


def random_batch(size: int = 16):
    """``size`` random uint8 images (3, 32, 32) and labels in 0..9, the same every call."""
    import torch

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (size, 3, 32, 32), dtype=torch.uint8, generator=g)
    return images, torch.randint(0, 10, (size,), generator=g)
