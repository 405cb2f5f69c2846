"""A run's configuration: one dataclass, read from TOML, with ``key=value`` overrides.

Field names follow appendix C's table (``arch``, ``projector``, ``batch_size``, ``lr``...).
``load_config("cifar10_vicreg", ["epochs=10"])`` reads ``cooc_minimal/configs/cifar10_vicreg.toml``
(or any ``.toml`` path), applies the overrides and validates every field before anything
runs: a bad value raises a :class:`ConfigError` (a ``ValueError``) whose one sentence names
the key, the value and what is allowed.

Keys are flat (``lr = 0.3``), except the loss's coefficients, a table::

    loss = "tcr"
    [loss_coeffs]
    lam = 30.0

On the command line: ``--set lr=0.1``, ``--set loss=spectral``, ``--set loss_coeffs.lam=10``.

This module is data only: it imports neither torch nor a loss nor a model, so reading and
checking a config is instant. The coefficients' names and ranges come from the torch-free
table of :mod:`cooc_minimal.coefficients`, the one the losses check themselves with.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cooc_minimal.coefficients import LOSS_NAMES, check_coeffs

__all__ = ["Config", "ConfigError", "RUNTIME_KEYS", "config_from_dict", "config_to_dict",
           "config_to_toml", "describe_keys", "known_configs", "load_config",
           "parse_projector_dims", "save_config", "validate_config", "write_text_atomically"]

DATASETS = ("cifar10", "cifar100", "imagenet100", "imagenet", "imagefolder", "toyworld",
            "toyworld_independent", "textureworld", "textureworld_independent")
# fixed image side of the small datasets
SMALL_DATASETS = {"cifar10": 32, "cifar100": 32, "toyworld": 32, "toyworld_independent": 32,
                  "textureworld": 32, "textureworld_independent": 32}
ARCHS = ("tiny", "resnet18", "resnet34", "resnet50")  # models.ARCHS, without importing torch
CHOICES: dict[str, tuple[str, ...]] = {
    "dataset": DATASETS,
    "arch": ARCHS,
    "loss": LOSS_NAMES,
    "augment": ("byol", "byol_crop", "none"),
    "optimizer": ("lars", "sgd", "adamw"),
    "precision": ("auto", "bf16", "fp32", "fp16"),
    "device": ("auto", "cpu", "cuda"),
}
#: keys that do not change what a run computes (where data lives, how fast, how often it
#: logs): they may differ when a run is resumed; every other key must match the saved run.
#: ``batch_chunks`` is one of them, as the number of processes is: it changes which images
#: share BatchNorm's statistics, not the loss, so a run may resume on a larger or smaller card.
RUNTIME_KEYS = frozenset({"name", "data_root", "num_workers", "device", "precision", "compile",
                          "channels_last", "checkpoint_every", "log_every", "batch_chunks",
                          "deterministic", "eval_patch_size", "eval_out_size"})
#: the widest projector layer allowed (the paper's widest is 8192): a typo such as
#: projector = "10000000000" is refused here, not by a 5 TB allocation
MAX_PROJECTOR_WIDTH = 65_536
MAX_TINY_WIDTH = 4096  # the tiny CNN's first width (its last is 4 times as wide)


def _f(default: Any, help: str, **kwargs: Any) -> Any:
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={"help": help}, **kwargs)
    return field(default=default, metadata={"help": help}, **kwargs)


@dataclass
class Config:
    """Everything a training run needs; defaults are the smoke run (tiny CNN, toy world)."""

    name: str = _f("smoke", "a label for the run (the config file's name)")
    # ---- data
    dataset: str = _f("toyworld", "one of " + ", ".join(DATASETS))
    data_root: str = _f("", "folder holding the dataset ('' = $COOC_DATA, else ~/data)")
    image_size: int = _f(32, "image side: 32 for CIFAR and the toy world; the side large "
                             "datasets are decoded and resized to")
    train_images: int = _f(0, "train on the first N training images only (0 = all)")
    num_workers: int = _f(4, "DataLoader workers decoding images (large datasets only)")
    # ---- model
    arch: str = _f("tiny", "backbone: " + ", ".join(ARCHS))
    width: int = _f(32, "first width of the tiny CNN (ignored by ResNets)")
    cifar_stem: bool = _f(True, "ResNet with a 3x3 stride-1 first conv and no max-pool")
    projector: str = _f("512-128", "projector widths, e.g. '4096-128'; '' for none")
    sync_bn: bool = _f(False, "synchronise BatchNorm statistics across processes")
    # ---- objective
    loss: str = _f("vicreg", "one of " + ", ".join(LOSS_NAMES) + " (multi-patch forms)")
    loss_coeffs: dict = _f({}, "the loss's coefficients, e.g. {inv_coeff = 25.0}")
    # ---- patches and views
    patch_size: int = _f(8, "side of the fixed-scale patches cut from each image (pixels)")
    patch_out: int = _f(0, "resize patches to this side (0 = keep patch_size)")
    n_patches: int = _f(8, "patches per image (at least 2)")
    patch_grid: bool = _f(False, "draw patch positions on the grid of step patch_size (a toy "
                                 "world's tiles, one part each), not anywhere in the image")
    grid_share: float = _f(0.0, "share of each image's patches cut at distinct positions of "
                                "the grid of step patch_size, the rest anywhere (0: none; a "
                                "toy world's distinct tiles, never one tile twice)")
    eval_patch_size: int = _f(0, "cooc-eval's default patch side (0 = patch_size): a config "
                                 "that trains on whole images evaluates bags of smaller patches")
    eval_out_size: int = _f(0, "cooc-eval's default side each patch is resized to (0 = "
                               "patch_out)")
    augment: str = _f("byol", "'byol': BYOL's view 1 on the first half of each image's "
                              "patches, view 2 on the rest; 'byol_crop': the same with a "
                              "random resized crop (multi-scale); 'none'")
    # ---- optimisation
    batch_size: int = _f(128, "global batch size (images), split over the processes")
    batch_chunks: int | str = _f(1, "C: embed each process's batch in C chunks without a graph, "
                              "take the loss of the whole batch, then back-propagate chunk "
                              "by chunk (GradCache): the activations of one chunk in memory, "
                              "the same loss; C must divide the process's batch. 'auto': the "
                              "smallest C whose chunk fits the free memory (step.choose_chunks)")
    epochs: int = _f(3, "passes over the training images")
    warmup_epochs: float = _f(0.0, "epochs of linear warmup before the cosine decay")
    lr: float = _f(0.3, "peak learning rate (after warmup)")
    final_lr: float = _f(0.0, "learning rate at the end of the cosine decay")
    weight_decay: float = _f(1e-4, "weight decay (not on biases and norm parameters)")
    optimizer: str = _f("lars", "one of lars, sgd (LARS without trust ratio), adamw")
    momentum: float = _f(0.9, "momentum of lars and sgd")
    lars_eta: float = _f(0.001, "LARS trust coefficient")
    seed: int = _f(0, "seed of the weights, the data order, the patches and the views")
    # ---- speed
    device: str = _f("auto", "auto (CUDA if present), cpu or cuda")
    precision: str = _f("auto", "auto (bf16 autocast on a GPU with native bf16, compute "
                                "capability 8.0+; fp32 elsewhere), bf16, fp32, or fp16 "
                                "(autocast with a GradScaler: the option on a T4 or V100)")
    compile: bool = _f(False, "torch.compile the model (not with sync_bn on several "
                              "processes)")
    channels_last: bool = _f(False, "channels_last memory format for the model and inputs")
    deterministic: bool = _f(False, "deterministic kernels only (cuDNN, cuBLAS, "
                                    "torch.use_deterministic_algorithms): bitwise "
                                    "repeatable runs, somewhat slower")
    # ---- bookkeeping
    checkpoint_every: int = _f(0, "also write last.pt every N steps (0 = every epoch only)")
    log_every: int = _f(1, "write a metrics.csv row every N steps")
    probe: bool = _f(True, "train an online linear probe on detached bag embeddings")
    probe_lr: float = _f(0.1, "learning rate of the online probe (constant)")


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


FIELDS = {f.name: f for f in dataclasses.fields(Config)}
_TYPES = {"name": str, "dataset": str, "data_root": str, "image_size": int, "train_images": int,
          "num_workers": int, "arch": str, "width": int, "cifar_stem": bool, "projector": str,
          "sync_bn": bool, "loss": str, "loss_coeffs": dict, "patch_size": int,
          "patch_out": int, "n_patches": int, "patch_grid": bool, "grid_share": float,
          "eval_patch_size": int,
          "eval_out_size": int, "augment": str, "batch_size": int,
          "batch_chunks": (int, str), "epochs": int,
          "warmup_epochs": float, "lr": float, "final_lr": float, "weight_decay": float,
          "optimizer": str, "momentum": float, "lars_eta": float, "seed": int, "device": str,
          "precision": str, "compile": bool, "channels_last": bool, "deterministic": bool,
          "checkpoint_every": int,
          "log_every": int, "probe": bool, "probe_lr": float}
assert set(_TYPES) == set(FIELDS), "every Config field needs its type in _TYPES"
_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
               dict: "a table of name = value", (int, str): "a positive integer or 'auto'"}


def describe_keys() -> list[tuple[str, str, str]]:
    """(key, default, help) for every field, in order: the ``--help`` listing."""
    defaults = config_to_dict(Config())
    return [(name, json.dumps(defaults[name]), f.metadata["help"]) for name, f in FIELDS.items()]


def _unknown_key(key: str, where: str) -> ConfigError:
    close = difflib.get_close_matches(key, list(FIELDS), n=1)
    if close:
        return ConfigError(f"Unknown config key {key!r}{where}: did you mean {close[0]!r}? "
                           f"(python -m cooc_minimal.train --help lists every key).")
    return ConfigError(f"Unknown config key {key!r}{where}: the keys are {', '.join(FIELDS)}.")


def _coerce(key: str, value: Any) -> Any:
    """The value as the field's type, or a ConfigError naming key, value and type."""
    kind = _TYPES[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is dict and isinstance(value, dict):
        coeffs = {}
        for name, coeff in value.items():  # numbers, and the odd switch (normalize, mean)
            if not isinstance(coeff, int | float | str):
                raise ConfigError(f"loss_coeffs.{name} must be a number, true/false or a "
                                  f"word, got {coeff!r} ({type(coeff).__name__}).")
            plain_number = isinstance(coeff, int | float) and not isinstance(coeff, bool)
            coeffs[name] = float(coeff) if plain_number else coeff
        return coeffs
    if not isinstance(value, kind) or (int in (kind if isinstance(kind, tuple) else (kind,))
                                        and isinstance(value, bool)):
        raise ConfigError(f"{key} must be {_TYPE_WORDS[kind]}, got {value!r} "
                          f"({type(value).__name__}).")
    return value


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key} = {value!r} is not allowed: {allowed}.")


def _check_choice(key: str, value: str) -> None:
    choices = CHOICES[key]
    if value not in choices:
        close = difflib.get_close_matches(value, choices, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{key} = {value!r} is unknown{hint}: choose one of "
                          f"{', '.join(choices)}.")


def parse_projector_dims(dims: str) -> list[int]:
    """``"4096-128"`` -> ``[4096, 128]``; ``""`` -> ``[]`` (no projector). Torch-free.

    Raises a ValueError with one sentence unless ``dims`` is positive integers joined by '-'.
    """
    text = dims.strip() if isinstance(dims, str) else None
    if text is None:
        raise ValueError(f"projector dims must be a string such as '4096-128', got {dims!r}.")
    if not text:
        return []
    parts = [part.strip() for part in text.split("-")]
    # isascii: str.isdigit also accepts digits such as '²' that int() refuses.
    if not all(p.isascii() and p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"projector dims {dims!r} is not a list of positive integers joined by "
                         f"'-': write it like '4096-128' or '8192-8192-8192'.")
    return [int(p) for p in parts]


def _coerced(cfg: Config) -> Config:
    """A new Config holding ``cfg``'s values as their fields' types (loss_coeffs copied)."""
    if not isinstance(cfg, Config):
        raise ConfigError(f"expected a Config, got {type(cfg).__name__}: build one with "
                          f"load_config(name) or Config(...).")
    return dataclasses.replace(cfg, **{key: _coerce(key, getattr(cfg, key)) for key in FIELDS})


def _check_ranges(cfg: Config) -> None:
    """Each field alone: choices, signs, bounds."""
    for key in CHOICES:
        _check_choice(key, getattr(cfg, key))
    for key in ("image_size", "width", "patch_size", "n_patches", "batch_size", "epochs",
                "log_every"):
        value = getattr(cfg, key)
        _check(value > 0, key, value, "it must be a positive integer")
    for key in ("train_images", "num_workers", "patch_out", "checkpoint_every", "seed",
                "eval_patch_size", "eval_out_size"):
        value = getattr(cfg, key)
        _check(value >= 0, key, value, "it must be an integer >= 0")
    _check(cfg.seed < 2**32, "seed", cfg.seed, "it must be below 2**32")
    _check(cfg.width <= MAX_TINY_WIDTH, "width", cfg.width,
           f"it must be at most {MAX_TINY_WIDTH} (the smoke runs use 8 to 32)")
    for key in ("lr", "probe_lr"):
        value = getattr(cfg, key)
        _check(math.isfinite(value) and value > 0, key, value, "it must be a positive number")
    for key in ("final_lr", "weight_decay", "momentum", "lars_eta", "warmup_epochs"):
        value = getattr(cfg, key)
        _check(math.isfinite(value) and value >= 0, key, value,
               "it must be a finite number >= 0")
    _check(cfg.momentum < 1, "momentum", cfg.momentum, "it must be below 1")
    _check(math.isfinite(cfg.grid_share) and 0 <= cfg.grid_share <= 1, "grid_share",
           cfg.grid_share, "it must be a share between 0 and 1")
    chunks = cfg.batch_chunks
    _check(chunks == "auto" or (isinstance(chunks, int) and chunks >= 1), "batch_chunks",
           chunks, "it must be a positive integer (1: no chunks) or 'auto'")


def _check_fit(cfg: Config) -> None:
    """How the fields fit together: learning rates, epochs, patches and images."""
    _check(cfg.final_lr <= cfg.lr, "final_lr", cfg.final_lr,
           f"it must not exceed lr = {cfg.lr}")
    _check(cfg.warmup_epochs <= cfg.epochs, "warmup_epochs", cfg.warmup_epochs,
           f"it must not exceed epochs = {cfg.epochs}")
    _check(cfg.n_patches >= 2, "n_patches", cfg.n_patches,
           "the multi-patch losses need at least 2 patches per image")
    _check(not (cfg.patch_grid and cfg.grid_share), "grid_share", cfg.grid_share,
           "patch_grid = true already puts every patch on the grid; set one of the two")
    tiles = (cfg.image_size // cfg.patch_size) ** 2
    _check(round(cfg.grid_share * cfg.n_patches) <= tiles, "grid_share", cfg.grid_share,
           f"it asks for {round(cfg.grid_share * cfg.n_patches)} distinct grid positions of "
           f"{cfg.n_patches} patches, and the grid has only {tiles}; lower it to at most "
           f"{tiles / cfg.n_patches:.3g}")
    side = SMALL_DATASETS.get(cfg.dataset)
    if side is not None:
        _check(cfg.image_size == side, "image_size", cfg.image_size,
               f"{cfg.dataset} images are {side}x{side}, so set image_size = {side}")
    _check(cfg.patch_size <= cfg.image_size, "patch_size", cfg.patch_size,
           f"the patch is larger than the {cfg.image_size}x{cfg.image_size} images; choose "
           f"at most {cfg.image_size}")
    _check(cfg.eval_patch_size <= cfg.image_size, "eval_patch_size", cfg.eval_patch_size,
           f"the patch is larger than the {cfg.image_size}x{cfg.image_size} images; choose "
           f"at most {cfg.image_size}, or 0 for patch_size")
    _check(cfg.train_images == 0 or cfg.train_images >= cfg.batch_size, "train_images",
           cfg.train_images, f"fewer images than one batch of batch_size = {cfg.batch_size}")
    try:
        widths = parse_projector_dims(cfg.projector)
    except ValueError as error:
        raise ConfigError(f"projector = {cfg.projector!r} is not allowed: {error}") from None
    _check(max(widths, default=0) <= MAX_PROJECTOR_WIDTH, "projector", cfg.projector,
           f"each width must be at most {MAX_PROJECTOR_WIDTH} (the paper's widest is 8192)")


def _check_world(cfg: Config, world_size: int) -> None:
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ConfigError(f"world_size must be a positive integer, got {world_size!r}.")
    _check(cfg.batch_size % world_size == 0, "batch_size", cfg.batch_size,
           f"it must be divisible by the {world_size} processes sharing it; use a multiple "
           f"of {world_size}")
    local, chunks = cfg.batch_size // world_size, cfg.batch_chunks
    _check(chunks == "auto" or local % chunks == 0, "batch_chunks", chunks,
           f"it must divide the {local} images each process holds (batch_size "
           f"{cfg.batch_size} / {world_size} processes), so that all chunks are equal")
    # BatchNorm over processes gathers inside the forward: torch.compile would have to trace
    # those collectives (SyncBatchNorm, GlobalBatchNorm), and the course has no GPU test of it.
    if cfg.compile and cfg.sync_bn and world_size > 1:
        raise ConfigError(f"compile = true with sync_bn = true is not allowed on {world_size} "
                          f"processes: torch.compile would trace BatchNorm's collectives "
                          f"inside the graph; set compile = false, or sync_bn = false.")


def _check_loss_coeffs(cfg: Config) -> None:
    # The losses' own table (names, ranges), without running a loss or importing torch.
    try:
        check_coeffs(cfg.loss, cfg.loss_coeffs)
    except ValueError as error:
        raise ConfigError(f"loss_coeffs = {cfg.loss_coeffs} does not suit loss = "
                          f"{cfg.loss!r}: {error}") from None


def validate_config(cfg: Config, world_size: int = 1) -> Config:
    """A checked copy of ``cfg``: every field coerced to its type and checked.

    Checks types, choices, ranges and how the fields fit together, the projector's widths
    and the loss's coefficients. ``world_size``: the number of processes that will share
    the batch. Returns a new Config (ints where a number is expected become floats,
    ``loss_coeffs`` is a new dict); ``cfg`` itself is never changed. Raises
    :class:`ConfigError` with one sentence at the first bad value.
    """
    checked = _coerced(cfg)
    _check_ranges(checked)
    _check_fit(checked)
    _check_world(checked, world_size)
    _check_loss_coeffs(checked)
    return checked


# ------------------------------------------------------------------------- TOML and dicts

def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The fields as a plain dict (what checkpoints store)."""
    return dataclasses.asdict(cfg)


def config_from_dict(d: dict[str, Any], where: str = "") -> Config:
    """A validated Config from a dict such as :func:`config_to_dict`'s; missing keys default."""
    if not isinstance(d, dict):
        raise ConfigError(f"a config must be a table of key = value, got {type(d).__name__}.")
    for key in d:
        if key not in FIELDS:
            raise _unknown_key(key, where)
    cfg = Config(**{key: _coerce(key, value) for key, value in d.items()})
    return validate_config(cfg)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # a TOML basic string for our plain text values


def config_to_toml(cfg: Config) -> str:
    """The config as TOML text that :func:`load_config` reads back to an equal Config."""
    lines = [f"# resolved configuration of run {cfg.name!r}"]
    for key, value in config_to_dict(cfg).items():
        if key != "loss_coeffs":
            lines.append(f"{key} = {_toml_value(value)}")
    lines.append("")
    lines.append("[loss_coeffs]")
    lines += [f"{name} = {_toml_value(v)}" for name, v in cfg.loss_coeffs.items()]
    return "\n".join(lines) + "\n"


def write_text_atomically(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file beside it, fsynced and
    renamed over ``path``: a crash leaves the old file or the new one, never half of one.
    The temporary file is ``.NAME.tmpPID``; returns the path."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write ``cfg`` as TOML to ``path``, atomically; returns the path."""
    return write_text_atomically(path, config_to_toml(cfg))


def known_configs() -> list[str]:
    """Names of the configs shipped in ``cooc_minimal/configs/`` (without ``.toml``)."""
    folder = resources.files("cooc_minimal").joinpath("configs")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _config_path(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix == ".toml" or "/" in text or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"The config file {path} does not exist: pass an existing "
                                    f".toml file or one of the names {', '.join(known_configs())}.")
        return path
    names = known_configs()
    if text not in names:
        close = difflib.get_close_matches(text, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise FileNotFoundError(f"There is no config called {text!r}: {hint}choose one of "
                                f"{', '.join(names)}, or pass a path to a .toml file.")
    return Path(str(resources.files("cooc_minimal").joinpath("configs", f"{text}.toml")))


def _parse_override(item: str) -> tuple[str, Any]:
    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(f"the override {item!r} is not key=value: write it like "
                          f"--set epochs=10 or --set loss_coeffs.lam=30.")
    key, text = (part.strip() for part in item.split("=", 1))
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text  # a bare word: loss=spectral, projector=4096-128
    return key, value


def apply_overrides(values: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> None:
    """Apply ``key=value`` strings to a dict of config values, in place."""
    if isinstance(overrides, str):
        raise ConfigError(f"overrides must be a list of 'key=value' strings, got the string "
                          f"{overrides!r}: wrap it in a list.")
    for item in overrides:
        key, value = _parse_override(item)
        head, _, sub = key.partition(".")
        if head not in FIELDS:
            raise _unknown_key(head, " (in --set)")
        if head == "loss_coeffs" and sub:
            values["loss_coeffs"] = {**values.get("loss_coeffs", {}), sub: value}
        elif head == "loss_coeffs" and not isinstance(value, dict):
            raise ConfigError(f"loss_coeffs is a table of coefficients, not one value "
                              f"({item!r}): set one coefficient with --set "
                              f"loss_coeffs.NAME=VALUE, such as --set loss_coeffs.lam=30.")
        elif sub:
            raise ConfigError(f"{head} has no sub-keys, got {key!r}: write --set {head}=VALUE.")
        elif _TYPES[head] is str:
            raw = item.split("=", 1)[1].strip()
            values[head] = value if isinstance(value, str) else raw
        else:
            values[head] = value


def _read_toml(path: Path) -> dict[str, Any]:
    """The key = value pairs of a config file, every key known; else one sentence naming it."""
    try:
        values = tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path} is not UTF-8 text (byte {error.start} cannot be decoded): "
                          f"save it as UTF-8, as TOML requires.") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML ({error}): fix that line.") from None
    except OSError as error:
        raise ConfigError(f"The config file {path} cannot be read ({error.strerror}): check "
                          f"its permissions.") from None
    for key in values:
        if key not in FIELDS:
            raise _unknown_key(key, f" in {path.name}")
    return values


def load_config(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a config by name (``"smoke"``, ``"cifar10_vicreg"``) or path, apply ``overrides``.

    overrides: ``["epochs=1", "loss=spectral", "loss_coeffs.lam=30"]``. Changing ``loss``
    drops the file's ``loss_coeffs`` (they belong to the other loss); coefficients set in
    the overrides are kept. Returns a validated Config; bad input raises ConfigError or
    FileNotFoundError with one sentence.
    """
    path = _config_path(name_or_path)
    values = _read_toml(path)
    values.setdefault("name", path.stem)
    file_loss, file_coeffs = values.get("loss", Config.loss), values.pop("loss_coeffs", {})
    if not isinstance(file_coeffs, dict):
        raise ConfigError(f"loss_coeffs = {file_coeffs!r} in {path} is not allowed: it is a "
                          f"table, written as a [loss_coeffs] section of name = value lines.")
    apply_overrides(values, list(overrides))
    # The file's coefficients belong to its loss: another loss starts from its own defaults.
    base = file_coeffs if values.get("loss", file_loss) == file_loss else {}
    values["loss_coeffs"] = {**base, **values.get("loss_coeffs", {})}
    cfg = Config(**{key: _coerce(key, value) for key, value in values.items()})
    return validate_config(cfg)
