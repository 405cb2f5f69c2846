"""Models: shapes, the CIFAR stem, the projector's layers, normalisation, bad input."""

import pytest
import torch
from torch import nn

from cooc_minimal.models import ARCHS, JointEmbedding, build_model, parse_dims, projector, resnet


@pytest.mark.parametrize(("name", "cifar_stem", "side", "out_dim", "map_side"), [
    ("resnet18", True, 32, 512, 4),     # stride 1 stem: 32 / 8
    ("resnet18", False, 64, 512, 2),    # 7x7/2 conv + max-pool: 64 / 32
    ("resnet18", True, 40, 512, 5),     # CIFAR padded by 4: the 5x5 map of appendix C.4
    ("resnet50", True, 32, 2048, 4),
])
def test_resnet_dims_and_feature_map(name, cifar_stem, side, out_dim, map_side):
    net = resnet(name, cifar_stem).eval()
    x = torch.rand(2, 3, side, side)
    fmap = net.forward_features(x)
    assert net.out_dim == out_dim
    assert fmap.shape == (2, out_dim, map_side, map_side)
    torch.testing.assert_close(net(x), fmap.mean(dim=(2, 3)))


def test_cifar_stem_is_a_3x3_stride_1_conv_without_maxpool():
    net = resnet("resnet34", cifar_stem=True)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, nn.Identity)
    assert not hasattr(net, "fc")


def test_resnet_keeps_torchvision_parameter_names():
    import torchvision
    ours = set(resnet("resnet18", cifar_stem=False).state_dict())
    theirs = {k for k in torchvision.models.resnet18().state_dict() if not k.startswith("fc.")}
    assert ours == theirs


def test_projector_layers_follow_vicreg():
    head = projector("64-32-16", in_dim=8)
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"]
    linears = [m for m in head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(8, 64), (64, 32), (32, 16)]
    assert linears[0].bias is not None and linears[-1].bias is None
    assert head.out_dim == 16


def test_empty_projector_is_identity():
    model = build_model("tiny", "", width=4)
    h, z = model(torch.rand(3, 3, 8, 8))
    assert torch.equal(h, z) and model.projection_dim == model.embedding_dim == 16


def test_joint_embedding_normalises_inside():
    model = build_model("tiny", "32-8", width=8).eval()
    x = torch.rand(5, 3, 16, 16)
    h, z = model(x)
    assert h.shape == (5, 32) and z.shape == (5, 8)
    expected = model.backbone((x - model.mean) / model.std)
    torch.testing.assert_close(h, expected)
    torch.testing.assert_close(model.embed(x, "projection"), z)
    assert model.feature_map(x).shape == (5, 32, 4, 4)


@pytest.mark.parametrize("arch", ARCHS)
def test_build_model_every_arch(arch):
    model = build_model(arch, "16", cifar_stem=True, width=4)
    assert isinstance(model, JointEmbedding)
    assert model.projection_dim == 16


@pytest.mark.parametrize(("call", "words"), [
    (lambda: build_model("resnet99", "128"), "Unknown architecture 'resnet99'"),
    (lambda: parse_dims("4096x128"), "'4096x128' is not a list of positive integers"),
    (lambda: parse_dims("4096-0"), "positive integers"),
    (lambda: build_model("tiny", "8").embed(torch.rand(1, 3, 8, 8), "proj"), "'proj'"),
    (lambda: build_model("tiny", "8")(torch.rand(2, 4, 3, 8, 8)), "flatten patches"),
])
def test_bad_input_gets_one_sentence(call, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        call()


def test_evaluation_mode_restores_each_modules_mode():
    from cooc_minimal.runtime import evaluation_mode
    model = build_model("tiny", "8", width=4).train()
    model.projector.eval()  # a mixed state must come back as it was
    before = [m.training for m in model.modules()]
    with evaluation_mode(model):
        assert not any(m.training for m in model.modules())
        h, _ = model(torch.rand(2, 3, 8, 8))
        assert not h.requires_grad
    assert [m.training for m in model.modules()] == before
