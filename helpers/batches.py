"""From cached uint8 arrays to normalised float batches, with optional paired augmentation.

The whole split usually sits in memory as uint8, so a batch is one indexing operation and one
fused convert-and-normalise; no DataLoader worker processes are needed. (A split too large
for the RAM is read from the disk cache one batch at a time.) An ``(N, H, W, 3)``
uint8 array viewed as ``(N, 3, H, W)`` is *already* in PyTorch's channels_last memory format,
which is the fast layout for convolutions on both CPU and GPU.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from helpers.data import SegmentationSet
from helpers.system.cache import DiskArray
from helpers.system.device import memory_format_of

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# normalised = uint8 * _SCALE + _SHIFT, i.e. (x / 255 - mean) / std in one fused operation
_SCALE = torch.tensor([1 / (255 * s) for s in IMAGENET_STD]).view(1, 3, 1, 1)
_SHIFT = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
                      ).view(1, 3, 1, 1)


class TensorSet:
    """A :class:`SegmentationSet` as uint8 torch tensors, ready to be sliced into batches.

    A set held on disk (:class:`~helpers.system.cache.DiskArray`) stays there: each batch reads its
    rows, so memory does not grow with the data.
    """

    def __init__(self, data: SegmentationSet) -> None:
        self.data = data
        self.on_disk = isinstance(data.images, DiskArray)
        if not self.on_disk:
            self.images = torch.from_numpy(np.ascontiguousarray(data.images))  # N,H,W,3 uint8
            self.masks = torch.from_numpy(np.ascontiguousarray(data.masks))  # N,H,W uint8

    def __len__(self) -> int:
        return len(self.data)

    def rows(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """The uint8 images (B,H,W,3) and masks (B,H,W) at ``index``."""
        if self.on_disk:
            rows = index.numpy()
            return (torch.from_numpy(self.data.images[rows]),
                    torch.from_numpy(self.data.masks[rows]))
        return self.images[index], self.masks[index]

    def batch(self, index: Tensor, device: torch.device | str = "cpu",
              channels_last: bool = True) -> tuple[Tensor, Tensor]:
        """Normalised images (B,3,H,W) float32 and masks (B,1,H,W) float32 for ``index``."""
        images, masks = self.rows(index)
        images = images.to(device, non_blocking=True).permute(0, 3, 1, 2)
        masks = masks.to(device, non_blocking=True).unsqueeze(1).float()
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
    layout = memory_format_of(images)
    out_images, out_masks = [], []
    draws = torch.randint(0, 8, (len(images),), generator=generator).tolist()
    for image, mask, draw in zip(images, masks, draws, strict=True):
        if draw & 4:
            image, mask = image.flip(-1), mask.flip(-1)
        turns = draw & 3
        out_images.append(torch.rot90(image, turns, (-2, -1)))
        out_masks.append(torch.rot90(mask, turns, (-2, -1)))
    images = torch.stack(out_images).contiguous(memory_format=layout)
    masks = torch.stack(out_masks)
    if colour_jitter > 0:
        shape = (len(images), 1, 1, 1)
        gain = 1 + colour_jitter * (2 * torch.rand(shape, generator=generator) - 1)
        bias = colour_jitter * (2 * torch.rand(shape, generator=generator) - 1)
        images = images * gain.to(images.device) + bias.to(images.device)
    return images, masks


#: Colour of the dermatoscope's dark ring in zoomed-out images (uint8 RGB).
RING_COLOUR = (12, 10, 10)


def zoom(images: Tensor, masks: Tensor, factors: Tensor, shifts: Tensor,
         ring_radii: Tensor, ring_colour: Tensor) -> tuple[Tensor, Tensor]:
    """Scale each image's content by ``factors`` (B,) about its centre shifted by ``shifts``
    (B, 2; in [-1, 1] units), pairing image and mask.

    A factor below 1 zooms *out*: the image shrinks onto a canvas filled with its own border
    colour (the mean of its outermost pixels: skin), as a wider field of view would show. A
    factor above 1 zooms in (a crop, no filling). Where ``ring_radii`` (B,) is finite, every
    pixel farther than that from the centre (1 = half the width) becomes ``ring_colour``
    (3,): the dark ring of a dermatoscope, where there is no lesion. Masks stay binary.
    """
    layout, batch = memory_format_of(images), len(images)
    theta = torch.zeros(batch, 2, 3, device=images.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / factors
    theta[:, :, 2] = -shifts / factors[:, None]
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    border = torch.cat([images[..., :4, :].flatten(2), images[..., -4:, :].flatten(2),
                        images[..., :, :4].flatten(2), images[..., :, -4:].flatten(2)], dim=2)
    fill = border.mean(dim=2)[:, :, None, None]
    images = F.grid_sample(images - fill, grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False) + fill
    masks = (F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False) > 0.5).float()
    height, width = images.shape[-2:]
    y = torch.linspace(-1, 1, height, device=images.device)[:, None]
    x = torch.linspace(-1, 1, width, device=images.device)[None, :]
    outside = (x ** 2 + y ** 2).sqrt()[None, None] > ring_radii[:, None, None, None]
    images = torch.where(outside, ring_colour.view(1, -1, 1, 1), images)
    masks = masks.masked_fill(outside, 0.0)
    return images.contiguous(memory_format=layout), masks


def scale_augment(images: Tensor, masks: Tensor, generator: torch.Generator,
                  smallest: float = 0.5, largest: float = 1.3, ring_chance: float = 0.5
                  ) -> tuple[Tensor, Tensor]:
    """Random paired zoom for training on normalised batches (see :func:`zoom`).

    Each image's scale is drawn uniformly from ``[smallest, largest]`` and its position
    anywhere the content still covers (zoom-in) or fits in (zoom-out) the canvas; zoomed-out
    images get the dermatoscope's dark ring with probability ``ring_chance``. The training
    images are tight centre crops; this shows the model the wider views real images have.
    """
    batch = len(images)
    factors = smallest + (largest - smallest) * torch.rand(batch, generator=generator)
    room = (1 - factors).abs()[:, None]
    shifts = room * (2 * torch.rand(batch, 2, generator=generator) - 1)
    radii = 0.8 + 0.35 * torch.rand(batch, generator=generator)
    ringed = (torch.rand(batch, generator=generator) < ring_chance) & (factors < 1)
    radii = torch.where(ringed, radii, torch.full_like(radii, float("inf")))
    dark = normalise(torch.tensor(RING_COLOUR, dtype=torch.uint8).view(1, 3, 1, 1))[0, :, 0, 0]
    device = images.device
    return zoom(images, masks, factors.to(device), shifts.to(device), radii.to(device),
                dark.to(device))
