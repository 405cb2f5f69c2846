"""Datasets: the toy world's known co-occurrence and its probe, CIFAR and ImageNet-100 loading."""

import hashlib
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets

from cooc_minimal import data
from cooc_minimal.patches import grid_patches
from cooc_minimal.toyworld import ToyWorld

# ---- the toy world ----------------------------------------------------------------------


def test_true_cooccurrence_is_the_class_mixture_of_part_pairs():
    world = ToyWorld()
    P, p = world.cooccurrence()
    K, V = world.n_classes, world.n_parts
    expected = torch.zeros(V, V, dtype=torch.float64)
    for c in range(K):
        for u in range(V):
            for v in range(V):
                expected[u, v] += world.class_prior[c] * world.weights[c, u] * world.weights[c, v]
    assert P.dtype == torch.float64 and P.shape == (V, V)
    torch.testing.assert_close(P, expected, atol=1e-15, rtol=0)
    assert torch.equal(P, P.T) and abs(P.sum().item() - 1) < 1e-12
    torch.testing.assert_close(p, P.sum(dim=1))


def test_sampled_tiles_cooccur_as_the_true_matrix_says():
    world = ToyWorld()
    parts = world.sample(3000, 11).parts.numpy()  # (images, tiles)
    V = world.n_parts
    counts = np.zeros((V, V))
    for tiles in parts:  # every ordered pair of distinct tiles of one image
        hist = np.bincount(tiles, minlength=V)
        counts += np.outer(hist, hist) - np.diag(hist)
    empirical = counts / counts.sum()
    P, _ = world.cooccurrence()
    assert np.abs(empirical - P.numpy()).max() < 0.004  # entries are about 0.016 on average


def test_tiles_show_their_part_colour_and_the_world_is_deterministic():
    world = ToyWorld()
    a, b, c = world.sample(50, 3), world.sample(50, 3), world.sample(50, 4)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert a.images.shape == (50, 3, 32, 32) and a.parts.shape == (50, 16)
    assert a.images.min() >= 0 and a.images.max() <= 1
    tiles, _ = grid_patches(a.images, 8)  # (50, 16, 3, 8, 8), row-major like parts
    mean_colour = tiles.mean(dim=(-1, -2))
    nearest = torch.cdist(mean_colour.reshape(-1, 3), world.colors).argmin(dim=1)
    assert (nearest == a.parts.reshape(-1)).float().mean() > 0.97


def _tile_features(tiles: torch.Tensor) -> torch.Tensor:
    """Hand-made tile features: mean colour, and mean absolute differences in 4 directions."""
    grey = tiles.mean(dim=-3)
    steps = [grey[..., :, 1:] - grey[..., :, :-1], grey[..., 1:, :] - grey[..., :-1, :],
             grey[..., 1:, 1:] - grey[..., :-1, :-1], grey[..., 1:, :-1] - grey[..., :-1, 1:]]
    texture = torch.stack([s.abs().mean(dim=(-1, -2)) for s in steps], dim=-1)
    return torch.cat([tiles.mean(dim=(-1, -2)), texture], dim=-1)


def _linear_probe_accuracy(train_x, train_y, test_x, test_y, classes: int) -> float:
    mean, std = train_x.mean(0), train_x.std(0)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    torch.manual_seed(0)
    probe = torch.nn.Linear(train_x.shape[1], classes)
    optimizer = torch.optim.LBFGS(probe.parameters(), max_iter=100,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(probe(train_x), train_y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return (probe(test_x).argmax(1) == test_y).float().mean().item()


def test_one_tile_is_ambiguous_but_a_bag_of_tiles_names_the_class():
    world = ToyWorld()
    train, test = world.sample(2000, 1), world.sample(1000, 2)
    f_train = _tile_features(grid_patches(train.images, 8)[0])  # (N, 16, 7)
    f_test = _tile_features(grid_patches(test.images, 8)[0])
    one = _linear_probe_accuracy(f_train[:, 5], train.labels, f_test[:, 5], test.labels, 10)
    bag = _linear_probe_accuracy(f_train.mean(1), train.labels, f_test.mean(1), test.labels, 10)
    bayes_one, bayes_bag = world.bayes_accuracy(1), world.bayes_accuracy(16)
    # The best any classifier can do: about 0.30 from one tile's part, about 0.94 from 16.
    assert bayes_one < 0.35 and bayes_bag > 0.9
    assert one < bayes_one + 0.05, f"one tile: {one:.3f}"
    assert bag > 0.85 and bag > one + 0.5, f"bag of 16 tiles: {bag:.3f}, one tile: {one:.3f}"


def test_toyworld_dataset():
    dataset = data.get_dataset("toyworld", train=False)
    image, label = dataset[0]
    assert len(dataset) == 2000 and image.shape == (3, 32, 32) and isinstance(label, int)
    assert not torch.equal(dataset.images[:5], data.get_dataset("toyworld").images[:5])


# ---- CIFAR, from small files in the real pickle format ---------------------------------

CIFAR_LAYOUT = {  # name: (folder, train files, test files, meta file, label key, meta key)
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                "batches.meta", "labels", "label_names"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", "fine_labels",
                 "fine_label_names"),
}


def _write_cifar(root, name, per_file=4):
    """Pickled dicts of uint8 rows (N, 3072: red plane, green, blue) and labels, as the
    CIFAR authors ship them. Returns the md5 of each file and the rows written."""
    folder, train, test, meta, label_key, meta_key = CIFAR_LAYOUT[name]
    (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    md5, written = {}, {}
    for file in train + test:
        rows = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_file).tolist()
        entry = {"batch_label": file, "data": rows, label_key: labels,
                 "filenames": [f"{file}_{i}.png" for i in range(per_file)]}
        (root / folder / file).write_bytes(pickle.dumps(entry, protocol=2))
        written[file] = (rows, labels)
    classes = [f"class_{i}" for i in range(100 if name == "cifar100" else 10)]
    (root / folder / meta).write_bytes(pickle.dumps({meta_key: classes}, protocol=2))
    for file in train + test + [meta]:
        md5[file] = hashlib.md5((root / folder / file).read_bytes()).hexdigest()
    return md5, written


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_loader_reads_the_real_file_format(tmp_path, monkeypatch, name):
    md5, written = _write_cifar(tmp_path, name)
    folder, train, test, meta, *_ = CIFAR_LAYOUT[name]
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    # torchvision checks each file's md5: make it expect our small files.
    monkeypatch.setattr(cls, "train_list", [[f, md5[f]] for f in train])
    monkeypatch.setattr(cls, "test_list", [[f, md5[f]] for f in test])
    monkeypatch.setattr(cls, "meta", {"filename": meta, "key": cls.meta["key"], "md5": md5[meta]})
    dataset = data.get_dataset(name, tmp_path, train=True)
    assert len(dataset) == 4 * len(train)
    image, label = dataset[1]
    rows, labels = written[train[0]]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    torch.testing.assert_close(image, torch.from_numpy(rows[1]).view(3, 32, 32).float() / 255)
    assert label == labels[1]
    assert len(data.get_dataset(name, tmp_path, train=False)) == 4


def test_missing_cifar_names_the_folder_and_the_command(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.CIFAR10, "download",
                        lambda self: pytest.fail("get_dataset downloaded without download=True"))
    with pytest.raises(FileNotFoundError) as info:
        data.get_dataset("cifar10", tmp_path)
    message = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "on a machine with internet run" in message and "download=True" in message
    assert message.count(". ") == 0 and message.endswith(".")
    (tmp_path / "cifar-10-batches-py").mkdir()  # there, but empty
    with pytest.raises(FileNotFoundError, match="is incomplete or corrupted"):
        data.get_dataset("cifar10", tmp_path)


# ---- ImageNet-100 on a small fake ImageNet tree --------------------------------------


def test_imagenet100_class_list():
    classes = data.imagenet100_classes()
    assert len(classes) == 100 == len(set(classes))
    assert all(c[0] == "n" and c[1:].isdigit() and len(c) == 9 for c in classes)
    assert classes[0] == "n02869837" and classes[-1] == "n02090622"  # CMC's first and last


def _fake_imagenet(root, classes, extra=("n99999999",)):
    for wnid in list(classes) + list(extra):
        folder = root / "val" / wnid
        folder.mkdir(parents=True)
        Image.new("RGB", (6, 5), color=(int(wnid[-2:]), 0, 0)).save(folder / f"{wnid}_1.JPEG")


def test_imagenet100_reads_only_the_100_classes(tmp_path):
    classes = data.imagenet100_classes()
    _fake_imagenet(tmp_path, classes)
    dataset = data.get_dataset("imagenet100", tmp_path, train=False)
    assert len(dataset) == 100 and dataset.classes == sorted(classes)
    assert "n99999999" not in dataset.class_to_idx
    image, label = dataset[3]
    assert image.shape == (3, 224, 224) and dataset.classes[label] == sorted(classes)[3]


def test_imagenet100_missing_data_is_one_clear_sentence(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        data.get_dataset("imagenet100", tmp_path, train=False)
    message = str(info.value)
    assert str(tmp_path / "val") in message and "on a machine with internet" in message
    _fake_imagenet(tmp_path, data.imagenet100_classes()[:99])
    with pytest.raises(FileNotFoundError, match="1 of the 100 ImageNet-100 classes"):
        data.get_dataset("imagenet100", tmp_path, train=False)
    with pytest.raises(ValueError, match="download=True is not possible for imagenet100"):
        data.get_dataset("imagenet100", tmp_path, download=True)


def test_unknown_dataset_and_default_root(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="Unknown dataset 'mnist': choose one of cifar10"):
        data.get_dataset("mnist")
    monkeypatch.setenv("COOC_DATA", str(tmp_path))
    assert data.default_root() == tmp_path


# ---- added with the training script (issue 9): image folders, argument checks, tensors ----

def _image_tree(root, classes=("cat", "dog"), sizes=((40, 30), (17, 50))):
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i, (w, h) in enumerate(sizes):
                Image.new("RGB", (w, h), (10 * i, 80, 160)).save(root / split / c / f"{i}.png")


def test_imagefolder_reads_any_image_size_and_names_its_classes(tmp_path):
    _image_tree(tmp_path)
    train = data.get_dataset("imagefolder", tmp_path)
    val = data.get_dataset("imagefolder", tmp_path, train=False)
    assert train.classes == ["cat", "dog"] and len(train) == 4 and len(val) == 4
    image, label = train[3]
    assert image.shape == (3, 224, 224) and label == 1  # resized 256 + centre crop 224
    import torchvision.transforms as T

    small = data.get_dataset("imagefolder", tmp_path, transform=T.Compose(
        [T.Resize(16), T.CenterCrop(16), T.PILToTensor()]))
    assert small[0][0].shape == (3, 16, 16) and small[0][0].dtype == torch.uint8


def test_imagefolder_missing_or_empty_folders_are_one_sentence(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train does not exist; make .* hold train/"):
        data.get_dataset("imagefolder", tmp_path)
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="has no usable images"):
        data.get_dataset("imagefolder", tmp_path)
    with pytest.raises(ValueError, match="download=True is not possible for imagefolder"):
        data.get_dataset("imagefolder", tmp_path, download=True)


def _spoil(root, kind: str):
    """A corrupt JPEG (a broken header) or a truncated PNG in the dog class."""
    if kind == "jpeg":
        path = root / "train" / "dog" / "bad.jpg"
        Image.new("RGB", (20, 20), (1, 2, 3)).save(path)
        data_bytes = path.read_bytes()
        path.write_bytes(data_bytes[:4] + b"\x00" * 40 + data_bytes[44:])
    else:
        path = root / "train" / "dog" / "1.png"
        Image.effect_noise((40, 40), 60).convert("RGB").save(path)
        path.write_bytes(path.read_bytes()[:300])
    return path


@pytest.mark.parametrize("kind, reason", [("jpeg", "cannot be read ("),
                                          ("png", "cannot be read (image file is truncated")])
def test_an_image_that_cannot_be_decoded_is_named(tmp_path, kind, reason):
    _image_tree(tmp_path)
    bad = _spoil(tmp_path, kind)
    dataset = data.get_dataset("imagefolder", tmp_path)
    index = [path for path, _ in dataset.samples].index(str(bad))
    assert dataset[0][0].shape == (3, 224, 224)  # the others read as before
    with pytest.raises(data.BadImageError) as caught:
        dataset[index]
    message = str(caught.value)
    assert message.startswith(f"The image {bad} {reason}") and "\n" not in message
    loader = torch.utils.data.DataLoader(dataset, batch_size=len(dataset), num_workers=1)
    with pytest.raises(data.BadImageError) as caught:  # from a worker: the sentence only
        next(iter(loader))
    assert str(caught.value) == message


def test_training_with_a_probe_refuses_a_one_class_folder(tmp_path):
    from cooc_minimal.config import Config

    _image_tree(tmp_path, classes=("cat",))
    cfg = Config(dataset="imagefolder", data_root=str(tmp_path), image_size=16)
    with pytest.raises(ValueError, match=r"has one class \(cat\), so the online probe"):
        data.make_data(cfg, torch.device("cpu"))
    assert data.make_data(Config(**{**cfg.__dict__, "probe": False}), torch.device("cpu")).size


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "toyworld", "train": "yes"}, r"train must be True or False, got 'yes' \(str\)"),
    ({"name": "toyworld", "download": 1}, "download must be True or False, got 1"),
    ({"name": "CIFAR10"}, r"Unknown dataset 'CIFAR10' \(did you mean 'cifar10'\?\)"),
    ({"name": "cifar10", "root": 3}, "root must be a folder path"),
])
def test_bad_arguments_are_one_sentence_not_a_key_error(kwargs, match):
    with pytest.raises(ValueError, match=match) as caught:
        data.get_dataset(**kwargs)
    assert not isinstance(caught.value, KeyError)


def test_load_tensors_gives_uint8_images_and_labels(tmp_path, monkeypatch):
    images, labels = data.load_tensors("toyworld", train=False)
    dataset = data.get_dataset("toyworld", train=False)
    assert images.dtype == torch.uint8 and images.shape == (2000, 3, 32, 32)
    assert torch.equal(labels, dataset.labels)
    assert (images.float() / 255 - dataset.images).abs().max() <= 0.5 / 255 + 1e-6
    with pytest.raises(ValueError, match="load_tensors reads only the small datasets"):
        data.load_tensors("imagefolder", tmp_path)


def test_load_tensors_reads_cifar_in_its_real_format(tmp_path, monkeypatch):
    md5, written = _write_cifar(tmp_path, "cifar10")
    folder, train, test, meta, *_ = CIFAR_LAYOUT["cifar10"]
    cls = datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[f, md5[f]] for f in train])
    monkeypatch.setattr(cls, "test_list", [[f, md5[f]] for f in test])
    monkeypatch.setattr(cls, "meta", {"filename": meta, "key": cls.meta["key"], "md5": md5[meta]})
    images, labels = data.load_tensors("cifar10", tmp_path, train=True)
    assert images.shape == (20, 3, 32, 32) and images.dtype == torch.uint8
    rows, expected = written[train[1]]
    assert torch.equal(images[4 + 2], torch.from_numpy(rows[2]).view(3, 32, 32))
    assert labels[4:8].tolist() == expected


# ---- what training reads: one interface for tensors on the device and DataLoader workers ----

def test_rank_batches_split_each_global_batch_and_drop_the_last_incomplete_one():
    order = data.epoch_order(seed=0, epoch=3, n=10)
    assert torch.equal(order, data.epoch_order(seed=0, epoch=3, n=10))
    assert not torch.equal(order, data.epoch_order(seed=0, epoch=4, n=10))
    whole = list(data.RankBatches(order, 4))
    assert whole == [order[:4].tolist(), order[4:8].tolist()]  # 2 images left over
    ranks = [list(data.RankBatches(order, 4, start=1, rank=r, world=2)) for r in range(2)]
    assert ranks == [[order[4:6].tolist()], [order[6:8].tolist()]]
    assert len(data.RankBatches(order, 4, start=1)) == 1


def test_tensor_data_batches_by_indexing_from_public_tensors():
    images = torch.arange(12, dtype=torch.uint8).view(12, 1, 1, 1).expand(12, 3, 2, 2)
    labels = torch.arange(12) % 3
    held_out = (images[:5], labels[:5])
    source = data.TensorData(images, labels, torch.device("cpu"), validation=held_out)
    assert (source.size, source.n_classes) == (12, 3)
    order = data.epoch_order(seed=1, epoch=0, n=12)
    batches = list(source.batches(order, 4, start=1, rank=1, world=2))
    assert len(batches) == 2 and batches[0][0].shape == (2, 3, 2, 2)
    assert batches[0][0][:, 0, 0, 0].tolist() == order[6:8].tolist()
    assert torch.equal(batches[0][1], labels[order[6:8]])
    assert [len(y) for _, y in source.validation(2)] == [2, 2, 1]
    with pytest.raises(ValueError, match="no held-out images"):
        next(data.TensorData(images, labels, torch.device("cpu")).validation(2))
