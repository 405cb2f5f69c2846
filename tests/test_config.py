"""The shipped configs against appendix C (written out here independently), and every bad value's
sentence, before any work, on the command line as well as from Python."""

import copy
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cooc_minimal import config as C
from cooc_minimal.cli import train_main as main
from cooc_minimal.losses import LOSSES

REPO = Path(__file__).resolve().parent.parent

# Appendix C of Chen et al. (2023), typed from the paper. TCR's eps is the paper's 0.2, which
# the authors' EMP-SSL code uses where eps^2 stands; VICReg's coefficients are given as
# (variance, invariance, covariance).
APPENDIX = {
    "cifar10": {"section": "C.1", "arch": "resnet34", "epochs": 600, "batch_size": 1024,
                "optimizer": "lars", "lr": 0.3, "final_lr": 0.0, "weight_decay": 1e-4,
                "warmup_epochs": 10, "tcr": (30.0, 0.2), "tau": 0.1, "vicreg": (25, 25, 1),
                "projector": "4096-128"},
    "cifar100": {"section": "C.1", "arch": "resnet34", "epochs": 600, "batch_size": 1024,
                 "optimizer": "lars", "lr": 0.3, "final_lr": 0.0, "weight_decay": 1e-4,
                 "warmup_epochs": 10, "tcr": (30.0, 0.2), "tau": 0.1, "vicreg": (25, 25, 1),
                 "projector": "4096-512"},
    "imagenet100": {"section": "C.2", "arch": "resnet50", "epochs": 400, "batch_size": 1024,
                    "optimizer": "lars", "lr": 0.1, "final_lr": 0.0, "weight_decay": 1e-4,
                    "warmup_epochs": 10, "tcr": (1920.0, 0.2), "tau": 0.1,
                    "vicreg": (25, 25, 1), "projector": "8192-8192-8192"},
    "imagenet": {"section": "C.3", "arch": "resnet50", "epochs": 800, "batch_size": 1024,
                 "optimizer": "lars", "lr": 0.1, "final_lr": 0.0, "weight_decay": 1e-6,
                 "warmup_epochs": 10, "vicreg": (25, 25, 1), "projector": "8192-8192-8192"},
}
SHARED = ("arch", "epochs", "batch_size", "optimizer", "lr", "final_lr", "weight_decay",
          "warmup_epochs", "projector")
CONFIGS = [(f"{d}_{loss}", d, loss) for d in ("cifar10", "cifar100", "imagenet100")
           for loss in ("vicreg", "tcr", "simclr", "spectral")]
CONFIGS.append(("imagenet_vicreg_multiscale", "imagenet", "vicreg"))


def test_every_expected_config_ships():
    assert set(C.known_configs()) == {name for name, _, _ in CONFIGS} | {"smoke", "texture"}


@pytest.mark.parametrize("name, dataset, loss", CONFIGS)
def test_config_equals_appendix_c(name, dataset, loss):
    cfg, paper = C.load_config(name), APPENDIX[dataset]
    assert (cfg.dataset, cfg.loss) == (dataset, loss)
    for key in SHARED:
        assert getattr(cfg, key) == paper[key], f"{name}: {key}"
    if loss == "tcr":
        lam, eps = paper["tcr"]
        assert cfg.loss_coeffs == {"lam": lam, "eps": pytest.approx(math.sqrt(eps), abs=1e-15)}
    elif loss == "simclr":
        assert cfg.loss_coeffs == {"temperature": paper["tau"]}
    elif loss == "spectral":  # not in the appendix: lam = w / 2 with w = 2
        assert cfg.loss_coeffs == {"lam": 1.0}
    elif dataset != "imagenet":  # multi-patch VICReg takes the coefficients as they are
        var, inv, cov = paper["vicreg"]
        assert cfg.loss_coeffs == {"inv_coeff": inv, "var_coeff": var, "cov_coeff": cov}
    assert cfg.cifar_stem is dataset.startswith("cifar")
    assert cfg.patch_size <= cfg.image_size and cfg.n_patches >= 2


@pytest.mark.parametrize("name, dataset, loss", CONFIGS)
def test_the_file_says_which_values_are_the_papers_and_which_are_ours(name, dataset, loss):
    lines = (REPO / "cooc_minimal" / "configs" / f"{name}.toml").read_text().splitlines()
    comment = {line.split("=")[0].strip(): line for line in lines if "=" in line}
    section = APPENDIX[dataset]["section"]
    for key in SHARED:
        assert f"appendix {section}" in comment[key], f"{name}: {key} does not cite {section}"
    ours = ("patch_out",) if dataset == "imagenet" else ("patch_size", "n_patches")
    for key in (*ours, "momentum", "lars_eta"):
        assert "our choice" in comment[key], f"{name}: {key} is not marked as our choice"
    if loss == "tcr":
        text = "\n".join(lines)
        assert "sqrt(0.2)" in text and "eps^2" in text


def _official_vicreg(x, y, inv=25.0, var=25.0, cov=1.0):
    """facebookresearch/vicreg main_vicreg.py's loss, written out (its conventions)."""
    n, d = x.shape
    repr_loss = ((x - y) ** 2).mean()
    x, y = x - x.mean(dim=0), y - y.mean(dim=0)
    std_x, std_y = torch.sqrt(x.var(dim=0) + 1e-4), torch.sqrt(y.var(dim=0) + 1e-4)
    std_loss = torch.relu(1 - std_x).mean() / 2 + torch.relu(1 - std_y).mean() / 2
    cov_x, cov_y = x.T @ x / (n - 1), y.T @ y / (n - 1)
    off = ~torch.eye(d, dtype=torch.bool)
    cov_loss = cov_x[off].pow(2).sum() / d + cov_y[off].pow(2).sum() / d
    return inv * repr_loss + var * std_loss + cov * cov_loss


def test_the_multiscale_vicreg_coefficients_are_the_official_vicreg_loss():
    cfg = C.load_config("imagenet_vicreg_multiscale")
    var, inv, cov = APPENDIX["imagenet"]["vicreg"]
    g = torch.Generator().manual_seed(0)
    z = torch.randn(32, 2, 6, generator=g, dtype=torch.float64) * 0.3  # variance hinge active
    ours = LOSSES["vicreg"](z, **cfg.loss_coeffs)
    official = _official_vicreg(z[:, 0], z[:, 1], inv, var, cov)
    assert cfg.n_patches == 2 and cfg.augment == "byol_crop"
    torch.testing.assert_close(ours, official, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["smoke", *[c[0] for c in CONFIGS]])
def test_toml_round_trip(name, tmp_path):
    cfg = C.load_config(name)
    C.save_config(cfg, tmp_path / "c.toml")
    assert C.load_config(tmp_path / "c.toml") == cfg
    assert C.config_from_dict(C.config_to_dict(cfg)) == cfg


def test_overrides_are_typed_and_a_new_loss_drops_the_old_coefficients():
    cfg = C.load_config("cifar10_tcr", ["epochs=5", "warmup_epochs=1", "lr=1",
                                        "projector=2048-64",
                                        "loss_coeffs.lam=10", "channels_last=false"])
    assert (cfg.epochs, cfg.lr, cfg.projector, cfg.channels_last) == (5, 1.0, "2048-64", False)
    assert cfg.loss_coeffs["lam"] == 10.0 and isinstance(cfg.lr, float)
    assert C.load_config("smoke", ["loss=spectral"]).loss_coeffs == {}
    assert C.load_config("smoke", ["loss=tcr", "loss_coeffs.lam=10"]).loss_coeffs == {"lam": 10.0}


def test_switch_coefficients_round_trip(tmp_path):
    cfg = C.load_config("smoke", ["loss=tcr", "loss_coeffs.normalize=false"])
    assert cfg.loss_coeffs == {"normalize": False}
    C.save_config(cfg, tmp_path / "c.toml")
    assert C.load_config(tmp_path / "c.toml") == cfg


BAD = [
    (["epoch=3"], "Unknown config key 'epoch' (in --set): did you mean 'epochs'?"),
    (["epochs=ten"], "epochs must be an integer, got 'ten' (str)"),
    (["epochs=0"], "epochs = 0 is not allowed: it must be a positive integer"),
    (["epochs=2.5"], "epochs must be an integer, got 2.5 (float)"),
    (["lr=-0.1"], "lr = -0.1 is not allowed: it must be a positive number"),
    (["lr=0"], "lr = 0.0 is not allowed: it must be a positive number"),
    (["lr=nan"], "lr = nan is not allowed"),
    (["patch_size=40"], "patch_size = 40 is not allowed: the patch is larger than the 32x32"),
    (["loss=vicrg"], "loss = 'vicrg' is unknown (did you mean 'vicreg'?)"),
    (["dataset=cifar"], "dataset = 'cifar' is unknown"),
    (["arch=resnet101"], "arch = 'resnet101' is unknown"),
    (["cifar_stem=1"], "cifar_stem must be true or false, got 1 (int)"),
    (["loss_coeffs.lamda=1"], "does not take lamda"),
    (["loss_coeffs.inv_coeff=nan"], "loss_coeffs = {"),
    (["loss_coeffs.var_coeff=-1"], "var_coeff must be a finite number >= 0, got -1.0"),
    (["projector=12-a"], "projector = '12-a' is not allowed"),
    (["n_patches=1"], "n_patches = 1 is not allowed: the multi-patch losses need at least 2"),
    (["warmup_epochs=4"], "warmup_epochs = 4.0 is not allowed: it must not exceed epochs = 3"),
    (["image_size=64"], "image_size = 64 is not allowed: toyworld images are 32x32"),
    (["epochs"], "the override 'epochs' is not key=value"),
    (["precision=fp8"], "precision = 'fp8' is unknown"),
    (["projector=10000000000"], "each width must be at most 65536"),  # not a 5 TB allocation
    (["width=100000"], "width = 100000 is not allowed: it must be at most 4096"),
    (["loss_coeffs=5"], "loss_coeffs is a table of coefficients, not one value"),
    (["grid_share=1.5"], "grid_share = 1.5 is not allowed: it must be a share between 0 and 1"),
    (["grid_share=0.5", "patch_grid=true"], "patch_grid = true already puts every patch on the"),
    (["grid_share=1", "n_patches=20", "patch_size=8", "image_size=32", "dataset=textureworld"],
     "it asks for 20 distinct grid positions of 20 patches, and the grid has only 16"),
]


@pytest.mark.parametrize("overrides, fragment", BAD)
def test_each_bad_value_gets_its_sentence(overrides, fragment):
    with pytest.raises(C.ConfigError) as caught:
        C.load_config("smoke", overrides)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message and message.endswith((".", "?)", ").")), message


@pytest.mark.parametrize("overrides, fragment", BAD[:8] + BAD[15:16])
def test_the_command_line_says_it_in_one_line_and_exits_2(overrides, fragment, tmp_path,
                                                        capsys):
    out = tmp_path / "run"
    argv = ["--config", "smoke", "--out", str(out), "--no-progress"]
    for item in overrides:
        argv += ["--set", item]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()  # refused before any work


def test_batch_not_divisible_by_the_processes():
    cfg = C.load_config("smoke", ["batch_size=100"])
    with pytest.raises(C.ConfigError, match="batch_size = 100 is not allowed: it must be "
                                            "divisible by the 3 processes"):
        C.validate_config(cfg, world_size=3)


def test_unknown_config_names_and_files(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="no config called 'cifar10_vireg': did you "
                                                "mean 'cifar10_vicreg'"):
        C.load_config("cifar10_vireg")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        C.load_config(tmp_path / "none.toml")
    (tmp_path / "bad.toml").write_text("epochs = [\n")
    with pytest.raises(C.ConfigError, match="is not valid TOML"):
        C.load_config(tmp_path / "bad.toml")
    (tmp_path / "typo.toml").write_text("epochz = 3\n")
    with pytest.raises(C.ConfigError, match="'epochz' in typo.toml: did you mean 'epochs'"):
        C.load_config(tmp_path / "typo.toml")
    assert main(["--out", str(tmp_path / "r")]) == 2
    assert "--config is required" in capsys.readouterr().err


def test_a_file_that_is_not_utf8_or_has_a_bad_table_is_named(tmp_path):
    (tmp_path / "latin.toml").write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(C.ConfigError, match="latin.toml is not UTF-8 text .*save it as UTF-8"):
        C.load_config(tmp_path / "latin.toml")
    (tmp_path / "coeffs.toml").write_text("loss_coeffs = 5\n")
    with pytest.raises(C.ConfigError, match="loss_coeffs = 5 in .*coeffs.toml is not allowed"):
        C.load_config(tmp_path / "coeffs.toml")


def test_save_config_replaces_the_file_atomically(tmp_path, monkeypatch):
    path = C.save_config(C.Config(epochs=3), tmp_path / "config.toml")
    before = path.read_text()

    def killed(src, dst):
        raise OSError("killed before the rename")

    monkeypatch.setattr(C.os, "replace", killed)
    with pytest.raises(OSError, match="killed"):
        C.save_config(C.Config(epochs=4), path)
    assert path.read_text() == before and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_bad_value_exits_non_zero_without_traceback_in_a_real_process(tmp_path):
    done = subprocess.run([sys.executable, "-m", "cooc_minimal.train", "--config", "smoke",
                           "--out", str(tmp_path / "r"), "--set", "lr=-1"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == ("cooc-train: lr = -1.0 is not allowed: it must be a "
                                   "positive number.")


def test_help_explains_every_option_and_key(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    for option in ("--config", "--data-root", "--out", "--set", "--resume",
                   "--stop-after-epochs", "torchrun"):
        assert option in text
    for key in C.FIELDS:
        assert f"\n  {key} " in text, key


# ------------------------------------------------- validation returns a new, coerced Config

def test_validate_config_returns_a_coerced_copy_and_leaves_its_argument_alone():
    given = C.Config(lr=1, final_lr=0, loss="tcr", loss_coeffs={"lam": 30, "normalize": True})
    before = copy.deepcopy(given)
    checked = C.validate_config(given, world_size=2)
    assert checked is not given and checked.loss_coeffs is not given.loss_coeffs
    assert given == before and type(given.lr) is int and type(given.loss_coeffs["lam"]) is int
    assert checked == given  # equal values: 1 == 1.0
    assert type(checked.lr) is float and type(checked.final_lr) is float
    assert checked.loss_coeffs == {"lam": 30.0, "normalize": True}
    assert type(checked.loss_coeffs["lam"]) is float
    assert C.validate_config(checked) == checked  # validating twice changes nothing


def test_a_refused_config_is_left_unchanged():
    given = C.Config(lr=2, loss_coeffs={"var_coeff": -1})
    before = copy.deepcopy(given)
    with pytest.raises(C.ConfigError, match="var_coeff must be a finite number >= 0"):
        C.validate_config(given)
    assert given == before and type(given.lr) is int


# ------------------------------------------------------------ config is data: no torch

def test_reading_and_refusing_configs_imports_no_torch():
    script = ("import sys\n"
              "from cooc_minimal import config as C\n"
              "assert 'torch' not in sys.modules, 'importing config imported torch'\n"
              "for name in C.known_configs():\n"
              "    C.load_config(name)\n"
              "for bad in (['loss_coeffs.lamda=1'], ['projector=12-a']):\n"
              "    try:\n"
              "        C.load_config('smoke', bad)\n"
              "    except C.ConfigError as error:\n"
              "        print(error)\n"
              "leaked = sorted(m for m in sys.modules if m.split('.')[0] == 'torch'\n"
              "                or m in ('cooc_minimal.losses', 'cooc_minimal.models'))\n"
              "assert not leaked, leaked\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    refusals = done.stdout.strip().splitlines()
    assert "does not take lamda (did you mean 'gamma'?)" in refusals[0]
    assert refusals[1].startswith("projector = '12-a' is not allowed")


@pytest.mark.parametrize(("dims", "expected"), [
    ("4096-128", [4096, 128]), (" 8192-8192-8192 ", [8192] * 3), ("", []), ("12-a", None),
    ("4096x128", None), ("4096-0", None), ("1--2", None), ("-5", None), ("²", None),
    (128, None), (None, None)])
def test_the_projector_parse_is_the_models_and_refuses_what_is_not_dims(dims, expected):
    from cooc_minimal.models import parse_dims

    assert parse_dims is C.parse_projector_dims  # one parser: the config checks what models build
    if expected is not None:
        assert C.parse_projector_dims(dims) == expected
    else:
        with pytest.raises(ValueError, match="projector dims"):
            C.parse_projector_dims(dims)
