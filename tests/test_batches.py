"""Batches: ImageNet normalisation, channels_last layout, paired augmentation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers.batches import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TensorSet,
    augment,
    batch_indices,
    scale_augment,
    zoom,
)
from helpers.isic2016 import load_isic2016


@pytest.fixture(scope="module")
def tensors(synthetic_root: Path) -> TensorSet:
    return TensorSet(load_isic2016(synthetic_root, size=64, val_fraction=0.25).train)


def test_batches_are_normalised_channels_last_floats(tensors: TensorSet) -> None:
    images, masks = tensors.batch(torch.arange(4))
    assert images.shape == (4, 3, 64, 64) and masks.shape == (4, 1, 64, 64)
    assert images.is_contiguous(memory_format=torch.channels_last)
    raw = tensors.images[:4].permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(images, (raw - mean) / std, rtol=1e-5, atol=1e-5)


def test_batch_indices_cover_every_sample_once() -> None:
    batches = list(batch_indices(10, 4, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))


def test_augmentation_keeps_pairs_aligned_and_masks_binary(tensors: TensorSet) -> None:
    images, masks = tensors.batch(torch.arange(6))
    marked = images.clone()
    marked[:, 0] = masks[:, 0] * 5  # channel 0 now carries the mask
    aug_images, aug_masks = augment(marked, masks, torch.Generator().manual_seed(0),
                                    colour_jitter=0)
    assert torch.equal(aug_images[:, 0], aug_masks[:, 0] * 5)
    assert set(aug_masks.unique().tolist()) <= {0.0, 1.0}
    assert aug_images.shape == images.shape


def _lesion_batch(n: int = 4, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.full((n, 3, size, size), 0.8)  # bright "skin"
    masks = torch.zeros(n, 1, size, size)
    masks[..., size // 4:3 * size // 4, size // 4:3 * size // 4] = 1
    images = torch.where(masks.bool(), torch.tensor(-1.0), images)  # dark lesion
    return images, masks


def test_scale_augment_keeps_masks_binary_and_paired_with_the_lesion() -> None:
    images, masks = _lesion_batch(8)
    out_images, out_masks = scale_augment(images, masks, torch.Generator().manual_seed(1))
    assert set(out_masks.unique().tolist()) <= {0.0, 1.0}
    lesion = out_images[:, :1][out_masks.bool()]
    assert (lesion < 0).float().mean() > 0.95  # where the mask says lesion, the image is dark


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format],
                         ids=["channels_last", "nchw"])
def test_augmentations_keep_the_layout_of_their_input(layout: torch.memory_format) -> None:
    # channels_last on the CPU, NCHW on a CUDA GPU (helpers.system.device.uses_channels_last)
    images, masks = _lesion_batch(4)
    images = images.contiguous(memory_format=layout)
    for out_images, _ in (augment(images, masks, torch.Generator().manual_seed(0)),
                          scale_augment(images, masks, torch.Generator().manual_seed(0))):
        assert out_images.is_contiguous(memory_format=layout)
        assert out_images.is_contiguous() == (layout == torch.contiguous_format)


def test_scale_augment_is_deterministic_for_a_seed() -> None:
    images, masks = _lesion_batch()
    first = scale_augment(images, masks, torch.Generator().manual_seed(5))
    second = scale_augment(images, masks, torch.Generator().manual_seed(5))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_zoom_out_fills_with_the_border_colour_and_draws_the_dark_ring() -> None:
    images, masks = _lesion_batch(1)
    ring = torch.tensor([-2.0, -2.0, -2.0])
    out, out_masks = zoom(images, masks, torch.tensor([0.5]), torch.zeros(1, 2),
                          torch.tensor([1.0]), ring)
    assert out_masks.sum().item() == pytest.approx(masks.sum().item() / 4, rel=0.15)  # half width
    assert torch.allclose(out[0, :, 0, 0], ring)  # a corner: outside the inscribed circle
    assert torch.allclose(out[0, :, 32, 3], torch.full((3,), 0.8))  # edge, inside: skin
    assert out_masks[0, 0, 0, 0] == 0
