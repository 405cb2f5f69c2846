"""Random and grid patches: shapes, boxes that reproduce the patches, determinism, clear errors."""

import pytest
import torch
import torchvision.transforms.functional as TF

from cooc_minimal.config import load_config
from cooc_minimal.patches import (
    crop_boxes,
    distinct_grid_boxes,
    grid_boxes,
    grid_patches,
    mixed_boxes,
    random_grid_boxes,
    random_patches,
)
from cooc_minimal.views import make_views


def _images(b=3, c=3, h=20, w=24, seed=0):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_random_patches_shapes_and_boxes_reproduce_the_patches():
    images = _images()
    patches, boxes = random_patches(images, 7, 5, generator=torch.Generator().manual_seed(1))
    assert patches.shape == (3, 5, 3, 7, 7) and boxes.shape == (3, 5, 4)
    assert boxes.dtype == torch.int64
    for i in range(3):
        for k in range(5):
            x0, y0, x1, y1 = boxes[i, k].tolist()
            assert x1 - x0 == 7 and y1 - y0 == 7
            assert 0 <= x0 and x1 <= 24 and 0 <= y0 and y1 <= 20
            assert torch.equal(patches[i, k], images[i, :, y0:y1, x0:x1])


def test_patches_are_contiguous_even_from_channels_last_images():
    images = torch.rand(2, 9, 9, 3).permute(0, 3, 1, 2)  # (B, C, H, W) view of HWC memory
    for out_size in (None, 6):
        patches, boxes = random_patches(images, 4, 3, out_size=out_size)
        assert patches.is_contiguous()
    assert torch.equal(random_patches(images, 4, 3, generator=torch.Generator().manual_seed(0))[0],
                       random_patches(images.contiguous(), 4, 3,
                                      generator=torch.Generator().manual_seed(0))[0])


def test_random_patch_corners_cover_every_position():
    images = torch.zeros(1, 1, 6, 5)
    _, boxes = random_patches(images, 3, 2000, generator=torch.Generator().manual_seed(0))
    corners = {tuple(b) for b in boxes[0, :, :2].tolist()}
    assert corners == {(x, y) for x in range(3) for y in range(4)}  # (W-s+1) x (H-s+1)


def test_out_size_matches_torchvision_resize_of_each_crop():
    images = _images(b=2, h=32, w=32)
    for out_size in (32, 10):  # enlarged (EMP-SSL's 16 -> 32) and shrunk (antialiased)
        patches, boxes = random_patches(images, 16, 3, out_size=out_size,
                                        generator=torch.Generator().manual_seed(2))
        assert patches.shape == (2, 3, 3, out_size, out_size)
        for i in range(2):
            for k in range(3):
                x0, y0, x1, y1 = boxes[i, k].tolist()
                expected = TF.resize(images[i, :, y0:y1, x0:x1], [out_size, out_size],
                                     antialias=True)
                torch.testing.assert_close(patches[i, k], expected, atol=1e-5, rtol=0)


def test_same_generator_seed_same_patches_other_seed_other_patches():
    images = _images()
    a = random_patches(images, 5, 4, generator=torch.Generator().manual_seed(3))
    b = random_patches(images, 5, 4, generator=torch.Generator().manual_seed(3))
    c = random_patches(images, 5, 4, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_grid_patches_against_a_loop():
    images = _images(b=2, h=11, w=9)
    for size, stride in ((3, 3), (4, 2), (5, 4)):
        patches, boxes = grid_patches(images, size, stride)
        expected, expected_boxes = [], []
        for y in range(0, 11 - size + 1, stride):
            for x in range(0, 9 - size + 1, stride):
                expected.append(images[:, :, y:y + size, x:x + size])
                expected_boxes.append([x, y, x + size, y + size])
        assert patches.shape == (2, len(expected), 3, size, size)
        assert torch.equal(patches, torch.stack(expected, dim=1))
        assert torch.equal(boxes, torch.tensor(expected_boxes).expand(2, -1, -1))
        assert torch.equal(crop_boxes(images, boxes, size), patches)


def test_grid_default_stride_tiles_the_image():
    images = _images(b=1, h=32, w=32)
    patches, boxes = grid_patches(images, 8)
    assert patches.shape == (1, 16, 3, 8, 8)
    assert torch.equal(boxes[0], grid_boxes(32, 32, 8, 8))
    assert boxes[0, 1].tolist() == [8, 0, 16, 8]  # row-major: second tile is to the right


@pytest.mark.parametrize("call,match", [
    (lambda x: random_patches(x, 21, 2), r"size=21 is larger than the images \(20x24\)"),
    (lambda x: random_patches(x, 0, 2), r"size must be a positive integer, got 0"),
    (lambda x: random_patches(x, -3, 2), r"size must be a positive integer, got -3"),
    (lambda x: random_patches(x, 4, 0), r"n must be a positive integer, got 0"),
    (lambda x: random_patches(x, 4, 2, out_size=0), r"out_size must be a positive integer"),
    (lambda x: random_patches(x[0], 4, 2), r"images must be a 4-D tensor \(B, C, H, W\)"),
    (lambda x: random_patches((x * 255).byte(), 4, 2, out_size=8), r"must be floating point"),
    (lambda x: grid_patches(x, 25), r"size=25 is larger than the images"),
    (lambda x: grid_patches(x, 4, 0), r"stride must be a positive integer, got 0"),
    (lambda x: grid_patches(x[0], 4), r"images must be a 4-D tensor"),
])
def test_bad_input_is_one_clear_sentence(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call(_images())
    assert str(info.value).count(". ") == 0 and str(info.value).endswith(".")


# ---- added with the training script (issue 9): boxes of a global batch, more bad input ----

def test_random_boxes_are_the_boxes_random_patches_draws():
    from cooc_minimal.patches import random_boxes

    images = torch.rand(5, 3, 20, 24)
    _, boxes = random_patches(images, 7, 3, generator=torch.Generator().manual_seed(4))
    again = random_boxes(5, 20, 24, 7, 3, generator=torch.Generator().manual_seed(4))
    assert torch.equal(boxes, again)
    with pytest.raises(ValueError, match=r"size=30 is larger than the images \(20x24\)"):
        random_boxes(5, 20, 24, 30, 3)


@pytest.mark.parametrize("images, match", [
    (torch.rand(2, 32, 32, 3), r"look channels-last \(B, H, W, C\): pass images.permute"),
    (__import__("numpy").zeros((2, 3, 32, 32), dtype="float32"),
     r"got a ndarray: convert it with torch.from_numpy"),
    (torch.rand(0, 3, 32, 32), r"images is an empty batch \(shape \(0, 3, 32, 32\)\)"),
])
def test_channels_last_numpy_and_empty_batches_are_named(images, match):
    for call in (lambda: random_patches(images, 8, 2), lambda: grid_patches(images, 8)):
        with pytest.raises(ValueError, match=match) as caught:
            call()
        assert "\n" not in str(caught.value)


def test_random_grid_boxes_lie_on_the_grid_and_reach_every_tile():
    boxes = random_grid_boxes(500, 32, 40, 8, 6, torch.Generator().manual_seed(0))
    assert boxes.shape == (500, 6, 4)
    x0, y0, x1, y1 = boxes.unbind(-1)
    assert (x0 % 8 == 0).all() and (y0 % 8 == 0).all()
    assert (x1 - x0 == 8).all() and (y1 - y0 == 8).all()
    assert x1.max() <= 40 and y1.max() <= 32
    # 5 x 4 tiles, each drawn about 3000 / 20 = 150 times: all of them, none far off
    counts = torch.bincount((y0 // 8 * 5 + x0 // 8).flatten(), minlength=20)
    assert counts.shape == (20,) and counts.min() > 100 and counts.max() < 200
    again = random_grid_boxes(500, 32, 40, 8, 6, torch.Generator().manual_seed(0))
    assert torch.equal(boxes, again)


def test_distinct_grid_boxes_never_repeat_a_tile_and_reach_every_tile():
    boxes = distinct_grid_boxes(500, 32, 40, 8, 6, torch.Generator().manual_seed(0))
    x0, y0, x1, y1 = boxes.unbind(-1)
    assert (x0 % 8 == 0).all() and (y0 % 8 == 0).all() and (x1 - x0 == 8).all()
    assert x1.max() <= 40 and y1.max() <= 32
    cells = y0 // 8 * 5 + x0 // 8                                   # (500, 6) of 20 tiles
    assert all(len(set(row.tolist())) == 6 for row in cells)        # no tile twice
    counts = torch.bincount(cells.flatten(), minlength=20)          # about 150 each
    assert counts.min() > 100 and counts.max() < 200
    whole = distinct_grid_boxes(3, 32, 32, 8, 16, torch.Generator().manual_seed(1))
    assert all(sorted((b[:, 1] // 8 * 4 + b[:, 0] // 8).tolist()) == list(range(16))
               for b in whole)                                      # n = 16: every tile
    with pytest.raises(ValueError, match="n=17 distinct grid positions asked of a 4x4 grid"):
        distinct_grid_boxes(1, 32, 32, 8, 17)


def test_mixed_boxes_put_their_share_on_distinct_tiles_in_every_slot():
    boxes = mixed_boxes(2000, 32, 32, 8, 16, grid_share=0.25,
                        generator=torch.Generator().manual_seed(0))
    on_grid = (boxes[..., :2] % 8 == 0).all(-1)                     # (2000, 16)
    # 4 cut on the grid, and a box drawn anywhere lands there with chance (4/25)^2
    assert (on_grid.sum(1) >= 4).all()
    expected = 4 + 12 * (4 / 25) ** 2
    assert abs(on_grid.sum(1).float().mean().item() - expected) < 0.05
    # the grid's four are spread over the 16 slots, so both BYOL views get some
    per_slot = on_grid.float().mean(0)
    assert per_slot.min() > 0.2 and per_slot.max() < 0.33
    same = mixed_boxes(2000, 32, 32, 8, 16, grid_share=0.25,
                       generator=torch.Generator().manual_seed(0))
    assert torch.equal(boxes, same)


def test_grid_share_reaches_the_training_views():
    cfg = load_config("texture", ["grid_share=1.0", "augment=none", "n_patches=16"])
    images = torch.rand(2, 3, 32, 32)
    views = make_views(images, cfg, torch.Generator().manual_seed(1))  # (2, 16, 3, 8, 8)
    tiles = images.unfold(2, 8, 8).unfold(3, 8, 8).permute(0, 2, 3, 1, 4, 5)
    tiles = tiles.reshape(2, 16, 3, 8, 8)
    for b in range(2):  # all 16 tiles of each image, each once
        found = [next(i for i, t in enumerate(tiles[b]) if torch.equal(views[b, k], t))
                 for k in range(16)]
        assert sorted(found) == list(range(16))


def test_patch_grid_makes_every_training_patch_one_tile():
    cfg = load_config("texture", ["patch_grid=true", "grid_share=0", "augment=none",
                                  "n_patches=5"])
    images = torch.rand(3, 3, 32, 32)
    views = make_views(images, cfg, torch.Generator().manual_seed(1))  # (3, 5, 3, 8, 8)
    tiles = images.unfold(2, 8, 8).unfold(3, 8, 8)  # (3, 3, 4, 4, 8, 8): every tile
    tiles = tiles.permute(0, 2, 3, 1, 4, 5).reshape(3, 16, 3, 8, 8)
    for b in range(3):
        for k in range(5):
            assert any(torch.equal(views[b, k], tile) for tile in tiles[b]), (b, k)
    anywhere = load_config("texture", ["grid_share=0", "augment=none", "n_patches=5"])
    off_grid = make_views(images, anywhere, torch.Generator().manual_seed(1))
    assert not all(any(torch.equal(off_grid[b, k], t) for t in tiles[b])
                   for b in range(3) for k in range(5))
