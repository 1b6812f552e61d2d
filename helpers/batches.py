"""From cached uint8 arrays to normalised float batches, with optional paired augmentation.

The whole split already sits in memory as uint8, so a batch is one indexing operation and one
fused convert-and-normalise; no DataLoader worker processes are needed. An ``(N, H, W, 3)``
uint8 array viewed as ``(N, 3, H, W)`` is *already* in PyTorch's channels_last memory format,
which is the fast layout for convolutions on both CPU and GPU.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from helpers.data import SegmentationSet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# normalised = uint8 * _SCALE + _SHIFT, i.e. (x / 255 - mean) / std in one fused operation
_SCALE = torch.tensor([1 / (255 * s) for s in IMAGENET_STD]).view(1, 3, 1, 1)
_SHIFT = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
                      ).view(1, 3, 1, 1)


class TensorSet:
    """A :class:`SegmentationSet` as uint8 torch tensors, ready to be sliced into batches."""

    def __init__(self, data: SegmentationSet) -> None:
        self.data = data
        self.images = torch.from_numpy(np.ascontiguousarray(data.images))  # N,H,W,3 uint8
        self.masks = torch.from_numpy(np.ascontiguousarray(data.masks))  # N,H,W uint8

    def __len__(self) -> int:
        return len(self.data)

    def batch(self, index: Tensor, device: torch.device | str = "cpu",
              channels_last: bool = True) -> tuple[Tensor, Tensor]:
        """Normalised images (B,3,H,W) float32 and masks (B,1,H,W) float32 for ``index``."""
        images = self.images[index].to(device, non_blocking=True).permute(0, 3, 1, 2)
        masks = self.masks[index].to(device, non_blocking=True).unsqueeze(1).float()
        if not channels_last:
            images = images.contiguous()
        return normalise(images), masks


def normalise(images: Tensor) -> Tensor:
    """uint8 RGB (B,3,H,W) -> float32 normalised with the ImageNet mean and std."""
    device = images.device
    return torch.addcmul(_SHIFT.to(device), images.float(), _SCALE.to(device))


def batch_indices(n: int, batch_size: int, shuffle: bool, generator: torch.Generator | None = None
                  ) -> Iterator[Tensor]:
    """Index tensors for one pass over ``n`` samples (the last batch may be smaller)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    yield from order.split(batch_size)


def augment(images: Tensor, masks: Tensor, generator: torch.Generator,
            colour_jitter: float = 0.1) -> tuple[Tensor, Tensor]:
    """Paired random flips and 90° rotations per sample, plus mild brightness/contrast jitter.

    ``images`` are normalised floats (B,3,H,W), ``masks`` (B,1,H,W); geometry is applied to both
    identically, colour only to the image. Masks stay exactly binary.
    """
    out_images, out_masks = [], []
    draws = torch.randint(0, 8, (len(images),), generator=generator).tolist()
    for image, mask, draw in zip(images, masks, draws, strict=True):
        if draw & 4:
            image, mask = image.flip(-1), mask.flip(-1)
        turns = draw & 3
        out_images.append(torch.rot90(image, turns, (-2, -1)))
        out_masks.append(torch.rot90(mask, turns, (-2, -1)))
    images = torch.stack(out_images).contiguous(memory_format=torch.channels_last)
    masks = torch.stack(out_masks)
    if colour_jitter > 0:
        shape = (len(images), 1, 1, 1)
        gain = 1 + colour_jitter * (2 * torch.rand(shape, generator=generator) - 1)
        bias = colour_jitter * (2 * torch.rand(shape, generator=generator) - 1)
        images = images * gain.to(images.device) + bias.to(images.device)
    return images, masks
