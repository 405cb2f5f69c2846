"""A tiny training config shared by the training tests and the torchrun worker.

64 toy-world images, batches of 16 (4 steps per epoch), 4 patches of 8x8 per image with
BYOL's views, a tiny CNN of width 8: a step takes milliseconds on a CPU.
"""

from cooc_minimal.config import Config, validate_config

TINY = {"train_images": 64, "batch_size": 16, "n_patches": 4, "width": 8,
        "projector": "32-16", "epochs": 2, "augment": "byol", "name": "tiny"}


def tiny_config(**changes) -> Config:
    return validate_config(Config(**{**TINY, **changes}))


def weights(path) -> dict:
    import torch

    state = torch.load(path, weights_only=True)
    return {**{f"model.{k}": v for k, v in state["model"].items()},
            **{f"probe.{k}": v for k, v in (state["probe"] or {}).items()}}
