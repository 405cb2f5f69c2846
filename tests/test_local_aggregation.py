"""Local aggregation (appendix C.4) and loading pretrained weights in three namings."""

import argparse

import pytest
import torch
import torchvision
from torch import nn

from cooc_minimal.local_aggregation import (
    CIFAR_MEAN,
    backbone_state_dict,
    feature_map_size,
    global_pool_features,
    load_pretrained,
    local_aggregation_features,
    pad_images,
    pooled_side,
)
from cooc_minimal.models import build_model


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return build_model("resnet18", "", cifar_stem=True).eval()


def _windows_by_hand(fmap: torch.Tensor) -> torch.Tensor:
    """3x3 windows at stride 2 of a 5x5 map, averaged and flattened channel-major."""
    starts = (0, 2)
    pooled = torch.stack([torch.stack([fmap[:, :, r:r + 3, c:c + 3].mean(dim=(2, 3))
                                       for c in starts], dim=-1) for r in starts], dim=-2)
    return pooled.flatten(1)  # (B, C, 2, 2) -> (B, 4C), as avg_pool2d + flatten order


def test_resnet18_local_features_are_2048_and_match_a_hand_pooling(resnet18):
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    features = local_aggregation_features(resnet18, images)
    assert features.shape == (3, 2048)
    with torch.no_grad():
        fmap = resnet18.feature_map(pad_images(images, 40))
    assert fmap.shape == (3, 512, 5, 5)
    torch.testing.assert_close(features, _windows_by_hand(fmap))


def test_resnet50_local_features_are_8192():
    torch.manual_seed(0)
    model = build_model("resnet50", "", cifar_stem=True)
    images = torch.rand(2, 3, 32, 32)
    assert local_aggregation_features(model, images).shape == (2, 2048 * 4)
    assert model.training  # the caller's mode is restored


def test_global_pooling_is_the_backbone_output(resnet18):
    images = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        h, _ = resnet18(images)
    torch.testing.assert_close(global_pool_features(resnet18, images), h)
    padded = global_pool_features(resnet18, images, pad_to=40)
    assert padded.shape == (4, 512) and not torch.allclose(padded, h)


def test_padding_centres_the_image_on_black():
    images = torch.rand(2, 3, 32, 32) + 1.0
    padded = pad_images(images, 40)
    assert padded.shape == (2, 3, 40, 40)
    assert torch.equal(padded[:, :, 4:36, 4:36], images)
    padded[:, :, 4:36, 4:36] = 0
    assert not padded.any()  # everything else is black


def test_map_sizes_follow_the_stride_formula(resnet18):
    # each stride-2 stage takes n to ceil(n / 2): 40 -> 20 -> 10 -> 5, 32 -> 16 -> 8 -> 4
    for side in (32, 33, 40, 41):
        expected = side
        for _ in range(3):  # layer2, layer3, layer4
            expected = -(-expected // 2)
        assert feature_map_size(resnet18, side) == (512, expected, expected)
    assert pooled_side(5, 3, 2) == 2 and pooled_side(4, 3, 2) == 1


def test_bad_inputs_fail_before_work(resnet18):
    with pytest.raises(ValueError, match="smaller than the images"):
        local_aggregation_features(resnet18, torch.rand(1, 3, 48, 48), pad_to=40)
    with pytest.raises(ValueError, match="pooling window"):
        local_aggregation_features(resnet18, torch.rand(1, 3, 8, 8), pad_to=None)
    with pytest.raises(ValueError, match="4-D tensor"):
        local_aggregation_features(resnet18, torch.rand(3, 32, 32))


def _solo_learn_resnet18() -> nn.Module:
    """A ResNet-18 built the way solo-learn builds its CIFAR backbone (written out here)."""
    net = torchvision.models.resnet18()
    net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return net


def _lightning_checkpoint(backbone: nn.Module) -> dict:
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    state["projector.0.weight"] = torch.zeros(2048, 512)
    state["classifier.weight"] = torch.zeros(10, 512)
    return {"state_dict": state, "epoch": 999, "hyper_parameters": argparse.Namespace(lr=0.3)}


def test_solo_learn_checkpoint_loads_and_reproduces_its_features(tmp_path):
    torch.manual_seed(2)
    solo = _solo_learn_resnet18().eval()
    for module in solo.modules():  # non-trivial running statistics
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "solo.ckpt"
    torch.save(_lightning_checkpoint(solo), path)
    with pytest.raises(ValueError, match="trusted=True"):
        load_pretrained(path)  # a pickled Namespace: refused unless trusted
    model = load_pretrained(path, trusted=True)
    assert model.backbone.conv1.padding == (2, 2)
    assert tuple(model.mean.flatten().tolist()) == pytest.approx(CIFAR_MEAN)
    images = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        expected = solo((images - model.mean) / model.std)
    torch.testing.assert_close(global_pool_features(model, images), expected)
    assert feature_map_size(model, 32) == (512, 5, 5)  # the 5x5 map of appendix C.4
    assert local_aggregation_features(model, images, pad_to=None).shape == (3, 2048)


def test_broken_state_dict_names_the_first_mismatches():
    state, found = backbone_state_dict(_lightning_checkpoint(_solo_learn_resnet18()))
    assert found == "solo-learn" and "conv1.weight" in state and "projector.0.weight" not in state
    del state["layer4.1.bn2.running_var"]
    state["layer9.weight"] = torch.zeros(1)
    with pytest.raises(ValueError) as error:
        load_pretrained(state)
    message = str(error.value)
    assert "1 missing key (layer4.1.bn2.running_var)" in message
    assert "1 unexpected key (layer9.weight)" in message
    assert "\n" not in message and message.count(". ") == 0


def test_torchvision_state_dict_with_the_wrong_stem_says_so():
    state = torchvision.models.resnet18().state_dict()  # ImageNet stem, with fc
    with pytest.raises(ValueError, match=r"1 shape mismatch \(conv1.weight file \(64, 3, 7, 7\)"):
        load_pretrained(state, cifar_stem=True)
    model = load_pretrained(state, cifar_stem=False)
    assert model.backbone.conv1.padding == (3, 3)  # torchvision's own stem, untouched
    torch.testing.assert_close(model.backbone.layer4[1].bn2.weight, state["layer4.1.bn2.weight"])


def test_missing_and_truncated_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="No weights file"):
        load_pretrained(tmp_path / "nothing.pt")
    good = tmp_path / "good.pt"
    torch.save(torchvision.models.resnet18().state_dict(), good)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(ValueError, match="truncated"):
        load_pretrained(cut, cifar_stem=False)


def test_course_checkpoint_is_rebuilt_with_its_projector(tmp_path):
    from cooc_minimal import checkpoint
    from cooc_minimal.config import Config, config_to_dict

    cfg = Config(arch="tiny", width=8, projector="32-16")
    torch.manual_seed(3)
    model = build_model(cfg.arch, cfg.projector, cifar_stem=cfg.cifar_stem, width=cfg.width)
    path = checkpoint.save_checkpoint(tmp_path / "last.pt", {
        "model": model.state_dict(), "config": config_to_dict(cfg), "step": 1, "epoch": 1})
    loaded = load_pretrained(path)
    images = torch.rand(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(images)[1], model(images)[1])
    # the tiny CNN turns 40x40 into a 10x10 map: 4x4 windows of 3 at stride 2
    assert local_aggregation_features(loaded, images).shape == (2, 32 * 4 * 4)


def test_layout_sample_swaps_two_part_mixes_between_the_halves():
    from cooc_minimal.toyworld import ToyWorld, layout_sample

    world = ToyWorld(seed=0)
    sample = layout_sample(world, 4000, seed=1)
    half = world.n_tiles // 2
    for label, (top_row, bottom_row) in ((0, (0, 1)), (1, (1, 0)), (6, (6, 7)), (7, (7, 6))):
        mine = sample.parts[sample.labels == label]
        for parts, row in ((mine[:, :half], top_row), (mine[:, half:], bottom_row)):
            share = torch.bincount(parts.flatten(), minlength=world.n_parts).double()
            assert (share / share.sum() - world.weights[row]).abs().max() < 0.05, (label, row)
    assert sample.images.shape == (4000, 3, 32, 32)
    with pytest.raises(ValueError, match="even number of classes"):
        layout_sample(ToyWorld(n_classes=3), 10, seed=0)


def test_pooling_features_have_the_widths_they_promise():
    from cooc_minimal.local_aggregation import pooling_features

    torch.manual_seed(0)
    model = build_model("tiny", "").eval()
    images = torch.rand(3, 3, 32, 32)
    widths = {name: f(images).shape for name, f in pooling_features(model, literal=True).items()}
    assert list(widths.values()) == [(3, 128), (3, 128), (3, 512), (3, 2048)], widths
