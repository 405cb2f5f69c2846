"""The course's datasets behind one function: CIFAR-10/100, ImageNet(-100), a folder of
images and the generated worlds (toy and texture, each also without co-occurrence).

``get_dataset(name, root, train)`` returns a map-style dataset of ``(image, label)``
pairs, images as float tensors (3, H, W) in [0, 1] unless another ``transform`` is
given. Nothing is downloaded unless ``download=True``; missing data raises a
``FileNotFoundError`` whose one sentence names the folder looked in and what to run
on a machine with internet.

ImageNet-100 is the 100-class subset of ImageNet (ILSVRC 2012) chosen by Tian et al.
(CMC, 2020), read with ``ImageFolder`` from a user's own ImageNet folder; its class
list ships with the library (``resources/imagenet100.txt``). ``imagenet`` is all 1000
classes of the same folder; ``imagefolder`` is any folder laid out the same way (``train/``
and ``val/``, one sub-folder of images per class), so that users train on their own images.

The small datasets (CIFAR, the toy worlds) also load as one uint8 tensor
(:func:`load_tensors`). Training reads either kind through one interface (:func:`make_data`):
:class:`TensorData` keeps a small dataset on the device and batches it by indexing,
:class:`LoaderData` reads a large one through DataLoader workers. Both give each process
its share of every global batch (:class:`RankBatches`) in the order :func:`epoch_order`
fixes, so that a run is the same on any number of processes and after a resume.
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import datasets
from torchvision import transforms as T

from cooc_minimal.config import Config
from cooc_minimal.textureworld import TextureWorld
from cooc_minimal.toyworld import ToyWorld, ToyWorldDataset

NAMES = ("cifar10", "cifar100", "imagenet100", "imagenet", "imagefolder", "toyworld",
         "toyworld_independent", "textureworld", "textureworld_independent")
# held in memory as one tensor
SMALL = ("cifar10", "cifar100", "toyworld", "toyworld_independent", "textureworld",
         "textureworld_independent")
# The generated worlds, each with its class's default seed (ToyWorld: 0, TextureWorld:
# textureworld.WORLD_SEED); all use the sizes and seeds below. The
# ``_independent`` ones are the controls without co-occurrence: P = p p^T.
WORLDS = {"toyworld": ToyWorld,
          "toyworld_independent": functools.partial(ToyWorld, independent_parts=True),
          "textureworld": TextureWorld,
          "textureworld_independent": functools.partial(TextureWorld, independent_parts=True)}
DATA_VARIABLE = "COOC_DATA"
CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
TOYWORLD_SIZES = {True: 10_000, False: 2_000}  # train, test
TOYWORLD_SEEDS = {True: 1, False: 2}  # image draws; the world is its class's default


def default_root() -> Path:
    """Where datasets live unless told: ``$COOC_DATA``, else ``~/data``."""
    return Path(os.environ.get(DATA_VARIABLE) or Path.home() / "data").expanduser()


def imagenet100_classes() -> list[str]:
    """The 100 WordNet ids of ImageNet-100 (CMC's list), in the file's order."""
    text = resources.files("cooc_minimal").joinpath("resources/imagenet100.txt").read_text()
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.startswith("#")]


def _fetch_command(name: str, root: Path) -> str:
    return (f"python -c \"from cooc_minimal.data import get_dataset; "
            f"get_dataset('{name}', '{root}', download=True)\"")


def _cifar(name: str, root: Path, train: bool, download: bool, transform) -> Dataset:
    folder = root / CIFAR_FOLDERS[name]
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    hint = (f"on a machine with internet run {_fetch_command(name, root)} and copy the folder "
            f"{CIFAR_FOLDERS[name]} it makes into {root}")
    if not download and not folder.is_dir():
        raise FileNotFoundError(f"{name} was not found: the folder {folder} does not exist; "
                                f"{hint}.")
    try:
        return cls(str(root), train=train, transform=transform, download=download)
    except RuntimeError as error:  # torchvision's "Dataset not found or corrupted."
        raise FileNotFoundError(f"{name} in {folder} is incomplete or corrupted ({error}); "
                                f"{hint}.") from error


class BadImageError(ValueError):
    """An image file that cannot be decoded (corrupt, truncated, not an image); the message
    names the file. Raised inside a DataLoader worker, it reaches the caller with the
    worker's traceback in its text: the sentence is taken back out of it."""

    def __init__(self, message: str) -> None:
        marker = f"{type(self).__name__}: "
        if "Traceback" in message and marker in message:  # re-raised from a worker
            message = message[message.rindex(marker) + len(marker):].strip()
        super().__init__(message)


def read_image(path: str) -> Image.Image:
    """The image file at ``path`` as RGB (ImageFolder's loader); a file that cannot be
    decoded is a :class:`BadImageError` naming it. Such a run stops: it does not skip the
    image, since the data would then differ from run to run and a resume would not be exact.
    """
    try:
        with open(path, "rb") as f:
            image = Image.open(f).convert("RGB")
    except Image.UnidentifiedImageError:
        reason = "not a format Pillow knows, or a broken header"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
    else:
        return image
    raise BadImageError(f"The image {path} cannot be read ({reason}): replace it with a "
                        f"readable copy or delete it, then run again.")


class ImageNet100(datasets.ImageFolder):
    """ImageFolder restricted to the 100 classes of ImageNet-100, labelled in sorted order.

    ``split_dir`` is an ImageNet split folder (``train`` or ``val``) with one sub-folder
    per WordNet id; other classes in it are ignored, and a missing one is an error.
    """

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        wanted = sorted(imagenet100_classes())
        missing = [c for c in wanted if not (Path(directory) / c).is_dir()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of the 100 ImageNet-100 classes (first: {missing[0]}) have no "
                f"folder in {directory}: {_imagenet_hint(Path(directory).parent)}.")
        return wanted, {c: i for i, c in enumerate(wanted)}


def _imagenet_hint(root: Path) -> str:
    return (f"ImageNet cannot be downloaded automatically, so on a machine with internet get "
            f"ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar and ILSVRC2012_devkit_t12.tar.gz "
            f"from https://image-net.org, put them in {root} and run "
            f"python -c \"import torchvision.datasets as d; d.ImageNet('{root}', split='train'); "
            f"d.ImageNet('{root}', split='val')\" to unpack them into class folders")


def _imagenet100(root: Path, train: bool, download: bool, transform) -> Dataset:
    if download:
        raise ValueError("download=True is not possible for imagenet100: ImageNet needs an "
                         "account at https://image-net.org; pass download=False and a root "
                         "that holds train/ and val/ class folders.")
    split_dir = root / ("train" if train else "val")
    if not split_dir.is_dir():
        raise FileNotFoundError(f"imagenet100 was not found: the folder {split_dir} does not "
                                f"exist; {_imagenet_hint(root)}.")
    if transform is None:  # a common size, so that images batch
        transform = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])
    return ImageNet100(str(split_dir), transform=transform, loader=read_image)


def _default_transform():
    return T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])


def _image_folder(name: str, root: Path, train: bool, download: bool, transform) -> Dataset:
    if download:
        raise ValueError(f"download=True is not possible for {name}: it reads images you "
                         f"already have; pass download=False and a root that holds train/ "
                         f"and val/ class folders.")
    split = "train" if train else "val"
    split_dir = root / split
    hint = (_imagenet_hint(root) if name == "imagenet" else
            f"make {root} hold train/ and val/, each with one sub-folder of images per class")
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{name} was not found: the folder {split_dir} does not exist; "
                                f"{hint}.")
    try:
        return datasets.ImageFolder(str(split_dir), transform=transform or _default_transform(),
                                    loader=read_image)
    except FileNotFoundError as error:  # no class folder, or a class folder without images
        raise FileNotFoundError(f"{name} in {split_dir} has no usable images "
                                f"({str(error).rstrip('.')}); {hint}.") from None


def _check_arguments(name, train, download) -> None:
    if not isinstance(name, str) or name not in NAMES:
        close = difflib.get_close_matches(str(name).lower(), NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"Unknown dataset {name!r}{hint}: choose one of {', '.join(NAMES)}.")
    for key, value in (("train", train), ("download", download)):
        if not isinstance(value, bool | np.bool_):
            raise ValueError(f"{key} must be True or False, got {value!r} "
                             f"({type(value).__name__}).")


def get_dataset(name: str, root: str | Path | None = None, train: bool = True,
                download: bool = False, transform=None) -> Dataset:
    """A dataset of ``(image, label)`` pairs by name: one of :data:`NAMES`.

    root: the folder that holds the data (``default_root()`` if None); for CIFAR the
    folder that contains ``cifar-10-batches-py`` / ``cifar-100-python``, for ImageNet-100
    and ImageNet the ImageNet folder that contains ``train/`` and ``val/``, for
    ``imagefolder`` any folder with ``train/`` and ``val/`` holding one sub-folder of
    images per class (any image size); unused by the toy worlds.
    train: the training split, else the test (validation) split.
    download: fetch CIFAR if it is missing (never done by the book); impossible for ImageNet.
    transform: applied to each image; by default images become tensors (3, H, W) in [0, 1]
    (ImageNet-100, ImageNet, imagefolder: resized to 256 on the short side and
    centre-cropped to 224).
    The toy worlds are ``ToyWorld()`` (``toyworld``, seed 0), ``TextureWorld()``
    (``textureworld``) and each of them with its parts drawn regardless of the class, so with
    no co-occurrence (``toyworld_independent``, ``textureworld_independent``): 10,000
    training and 2,000 test images each.
    """
    _check_arguments(name, train, download)
    train, download = bool(train), bool(download)
    if name in WORLDS:
        return ToyWorldDataset(WORLDS[name](), TOYWORLD_SIZES[train],
                               TOYWORLD_SEEDS[train], transform)
    if root is not None and not isinstance(root, str | os.PathLike):
        raise ValueError(f"root must be a folder path (str or Path), got {type(root).__name__}.")
    root = Path(root).expanduser() if root is not None and str(root) else default_root()
    if name == "imagenet100":
        return _imagenet100(root, train, download, transform)
    if name in ("imagenet", "imagefolder"):
        return _image_folder(name, root, train, download, transform)
    return _cifar(name, root, train, download, transform or T.ToTensor())


def load_tensors(name: str, root: str | Path | None = None,
                 train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """A small dataset as two tensors: images (N, 3, H, W) uint8 and labels (N,) int64.

    For cifar10, cifar100 and the toy worlds (whose images, made in [0, 1], are rounded to
    255 levels). This is what the training script holds on its device and indexes.
    """
    if name not in SMALL:
        raise ValueError(f"load_tensors reads only the small datasets {', '.join(SMALL)}, got "
                         f"{name!r}: read large ones with get_dataset and a DataLoader.")
    dataset = get_dataset(name, root, train)
    if name in WORLDS:
        images = (dataset.images * 255).round().to(torch.uint8)
        return images.contiguous(), dataset.labels.clone()
    images = torch.from_numpy(np.ascontiguousarray(dataset.data)).permute(0, 3, 1, 2)
    return images.contiguous(), torch.as_tensor(dataset.targets, dtype=torch.int64)


# ------------------------------------------------------------------ what training reads

Batch = tuple[torch.Tensor, torch.Tensor]  # images (b, 3, H, W) uint8, labels (b,) int64


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The order of the n training images in ``epoch``: (n,) int64, a function of the seed and
    the epoch only, so every rank and every resume visits the same images."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


class RankBatches(torch.utils.data.Sampler):
    """This rank's share of every global batch of an epoch, from step ``start`` on.

    order: (N,) int64 (:func:`epoch_order`). Global batch k is ``order[k B : (k+1) B]`` with
    B = ``batch_size``; rank r of ``world`` takes its r-th slice of B / world images. The
    last incomplete batch is dropped. Iterating gives index lists (a DataLoader's
    ``batch_sampler``); :meth:`index_tensors` gives the same indices as (B / world,) tensors.
    """

    def __init__(self, order: torch.Tensor, batch_size: int, *, start: int = 0, rank: int = 0,
                 world: int = 1) -> None:
        self.order, self.batch_size, self.start = order, batch_size, start
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return len(self.order) // self.batch_size - self.start

    def index_tensors(self) -> Iterator[torch.Tensor]:
        local = self.batch_size // self.world
        for step in range(self.start, len(self.order) // self.batch_size):
            first = step * self.batch_size + self.rank * local
            yield self.order[first:first + local]

    def __iter__(self) -> Iterator[list[int]]:
        return (index.tolist() for index in self.index_tensors())


def rank_rows(length: int, rank: int = 0, world: int = 1) -> slice:
    """Rank ``rank``'s rows of a held-out batch of ``length`` images shared by ``world``
    processes: ``[r L // world, (r + 1) L // world)``, as equal as integers allow (a
    held-out batch, unlike a training batch, need not divide by the number of processes)."""
    return slice(rank * length // world, (rank + 1) * length // world)


def held_out_batches(n: int, batch_size: int) -> list[int]:
    """The lengths of the global held-out batches: ``n`` images in order, ``batch_size`` at a
    time, the last one shorter."""
    return [min(batch_size, n - i) for i in range(0, n, batch_size)]


def _held_out_shares(n: int, batch_size: int, rank: int, world: int) -> Iterator[range]:
    """The indices of this rank's share of each held-out batch; an empty share (fewer images
    than processes, which only a last batch can have) is left out."""
    for first, length in zip(range(0, n, batch_size), held_out_batches(n, batch_size),
                             strict=True):
        rows = rank_rows(length, rank, world)
        if rows.stop > rows.start:
            yield range(first + rows.start, first + rows.stop)


@functools.lru_cache(maxsize=2)
def _cached_tensors(name: str, root: str, train: bool) -> Batch:
    # Chapters and tests train several runs on the same data in one process. Nothing
    # writes into these tensors: batches are copies made by indexing.
    return load_tensors(name, root or None, train=train)


class TensorData:
    """A small dataset held on ``device`` as uint8 tensors, batched by indexing.

    images: (N, 3, H, W) uint8, labels: (N,) int64, moved to ``device`` once. validation:
    the held-out (images, labels) that the online probe reads, or None; they stay where they
    are and move to the device a batch at a time.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
                 validation: Batch | None = None) -> None:
        self.images, self.labels = images.to(device), labels.to(device)
        self.held_out, self.device = validation, device
        self.size, self.n_classes = len(labels), int(labels.max()) + 1

    @classmethod
    def from_config(cls, cfg: Config, device: torch.device) -> TensorData:
        """``cfg.dataset``'s first ``cfg.train_images`` training images (all for 0), and its
        test split when the online probe needs it."""
        images, labels = _cached_tensors(cfg.dataset, cfg.data_root, True)
        if cfg.train_images:
            images, labels = images[:cfg.train_images], labels[:cfg.train_images]
        held_out = _cached_tensors(cfg.dataset, cfg.data_root, False) if cfg.probe else None
        return cls(images, labels, device, validation=held_out)

    def batches(self, order: torch.Tensor, batch_size: int, *, start: int = 0, rank: int = 0,
                world: int = 1) -> Iterator[Batch]:
        """This rank's slice of each global batch in ``order``, from step ``start`` on."""
        sampler = RankBatches(order, batch_size, start=start, rank=rank, world=world)
        for index in sampler.index_tensors():
            index = index.to(self.device)
            yield self.images[index], self.labels[index]

    @property
    def held_out_size(self) -> int:
        """How many held-out images there are (0 without any)."""
        return 0 if self.held_out is None else len(self.held_out[1])

    def validation(self, batch_size: int, *, rank: int = 0, world: int = 1) -> Iterator[Batch]:
        """The held-out images in order, ``batch_size`` at a time, on the device; under
        torchrun this rank's rows of each such batch (:func:`rank_rows`)."""
        if self.held_out is None:
            raise ValueError("this TensorData has no held-out images: pass validation=(images, "
                             "labels) to read them.")
        images, labels = self.held_out
        for rows in _held_out_shares(len(labels), batch_size, rank, world):
            part = slice(rows.start, rows.stop)
            yield images[part].to(self.device), labels[part].to(self.device)


def usable_workers(requested: int) -> int:
    """``requested`` DataLoader workers, at most one per CPU core this process may use
    (more only compete for the cores, and torch warns)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(int(requested), cores or 1))


class _NextBatches:
    """A DataLoader's batch sampler whose batches are set before each pass: one loader,
    with persistent workers, serves every epoch."""

    def __init__(self) -> None:
        self.batches: Iterable[list[int]] = ()

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class LoaderData:
    """A large dataset read by DataLoader workers, images as uint8 (3, S, S) tensors.

    dataset: map-style ``(image, label)`` pairs with ``classes``; only its first ``size``
    images are used (all for None). validation: the held-out dataset, or None.
    """

    def __init__(self, dataset: Dataset, device: torch.device, *, validation: Dataset | None = None,
                 num_workers: int = 0, size: int | None = None) -> None:
        self.dataset, self.held_out, self.device = dataset, validation, device
        self.num_workers = usable_workers(num_workers)
        self.size = min(len(dataset), size or len(dataset))
        self.n_classes = len(dataset.classes)
        self._loaders: dict[str, tuple[torch.utils.data.DataLoader, _NextBatches]] = {}

    @classmethod
    def from_config(cls, cfg: Config, device: torch.device) -> LoaderData:
        """Workers decode each image and resize it to ``cfg.image_size``; nothing more, since
        patches and views are made on the device. uint8 moves 4x fewer bytes than float."""
        transform = T.Compose([T.Resize(cfg.image_size), T.CenterCrop(cfg.image_size),
                               T.PILToTensor()])
        train = get_dataset(cfg.dataset, cfg.data_root or None, train=True, transform=transform)
        held_out = (get_dataset(cfg.dataset, cfg.data_root or None, train=False,
                                transform=transform) if cfg.probe else None)
        if cfg.probe and len(train.classes) < 2:
            raise ValueError(f"{cfg.dataset} in {cfg.data_root or default_root()} has one "
                             f"class ({train.classes[0]}), so the online probe would score "
                             f"1.0 whatever the network learns: add a folder per class, or "
                             f"set probe = false.")
        return cls(train, device, validation=held_out, num_workers=cfg.num_workers,
                   size=cfg.train_images or None)

    def _load(self, split: str, batches) -> Iterator[Batch]:
        # One DataLoader per split for the whole run: its workers persist from epoch to
        # epoch (no restart, no re-import); each epoch only hands it new batches of indices.
        if split not in self._loaders:
            plan = _NextBatches()
            dataset = self.dataset if split == "train" else self.held_out
            loader = torch.utils.data.DataLoader(
                dataset, batch_sampler=plan, num_workers=self.num_workers,
                pin_memory=self.device.type == "cuda", persistent_workers=self.num_workers > 0)
            self._loaders[split] = (loader, plan)
        loader, plan = self._loaders[split]
        plan.batches = batches
        for images, labels in loader:
            yield (images.to(self.device, non_blocking=True),
                   labels.to(self.device, non_blocking=True))

    def batches(self, order: torch.Tensor, batch_size: int, *, start: int = 0, rank: int = 0,
                world: int = 1) -> Iterator[Batch]:
        """This rank's slice of each global batch in ``order``, from step ``start`` on."""
        sampler = RankBatches(order, batch_size, start=start, rank=rank, world=world)
        return self._load("train", sampler)

    @property
    def held_out_size(self) -> int:
        """How many held-out images there are (0 without any)."""
        return 0 if self.held_out is None else len(self.held_out)

    def validation(self, batch_size: int, *, rank: int = 0, world: int = 1) -> Iterator[Batch]:
        """The held-out images in order, ``batch_size`` at a time, on the device; under
        torchrun this rank's rows of each such batch (:func:`rank_rows`): each rank decodes
        only its share."""
        if self.held_out is None:
            raise ValueError("this LoaderData has no held-out images: pass validation=dataset "
                             "to read them.")
        shares = _held_out_shares(len(self.held_out), batch_size, rank, world)
        return self._load("validation", [list(rows) for rows in shares])


def make_data(cfg: Config, device: torch.device) -> TensorData | LoaderData:
    """What a run trains on: a small dataset (:data:`SMALL`) on the device, a large one
    through DataLoader workers; both batched by :class:`RankBatches`."""
    source = TensorData if cfg.dataset in SMALL else LoaderData
    return source.from_config(cfg, device)
