"""Seed A's training loop, rebuilt as its author wrote it, as a contender for the benchmark.

What report A's notebook does, step by step (the kit does each differently; docs/speed.md):

* each split is decoded one file at a time (PIL, resize to 128², ``ToTensor``: floats in
  [0, 1], no ImageNet normalisation) into a tensor grown by ``torch.cat`` per image, so
  every image copies all the ones before it (O(n²));
* the model ends in a sigmoid and the loss is ``BCELoss``;
* batches come from ``DataLoader(TensorDataset(...), batch_size=45, shuffle=True,
  num_workers=2)``;
* the "frozen" encoder only has ``requires_grad=False``: it stays in training mode, runs
  forward every step and its BatchNorm statistics drift;
* after every epoch the whole test set goes through the model in one forward pass for the
  validation loss, IoU and Dice.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms import functional as TF

from helpers.data import SplitLayout, find_pairs
from helpers.isic2016 import isic2016_split
from helpers.model import MobileNetV2UNet


def decode_split(layout: SplitLayout, size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N,3,S,S) float in [0,1] and masks (N,1,S,S), grown one ``torch.cat`` at a time."""
    images = torch.empty(0, 3, size, size)
    masks = torch.empty(0, 1, size, size)
    for pair in find_pairs(layout):
        image = Image.open(pair.image_path).convert("RGB").resize((size, size))
        mask = Image.open(pair.mask_path).convert("L").resize((size, size))
        images = torch.cat([images, TF.to_tensor(image).unsqueeze(0)])
        masks = torch.cat([masks, TF.to_tensor(mask).unsqueeze(0)])
    return images, masks


def seed_a_epoch(train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                 frozen: bool, batch_size: int = 45, seed: int = 0) -> Callable[[], None]:
    """One epoch of seed A's loop (training, then the whole test set in one pass)."""
    torch.manual_seed(seed)
    model = nn.Sequential(MobileNetV2UNet(pretrained=True), nn.Sigmoid())
    if frozen:
        for parameter in model[0].encoder.parameters():
            parameter.requires_grad = False
    groups = [{"params": model[0].decoder.parameters(), "lr": 1e-2}]
    if not frozen:
        groups.append({"params": model[0].encoder.parameters(), "lr": 1e-4})
    optimizer = torch.optim.Adam(groups)
    loss_fn = nn.BCELoss()
    loader = DataLoader(TensorDataset(*train), batch_size=batch_size, shuffle=True,
                        num_workers=2)

    def epoch() -> None:
        model.train()
        for images, masks in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(images), masks)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            probs = model(test[0])
            loss_fn(probs, test[1]).item()
            predicted = probs > 0.5
            truth = test[1] > 0.5
            inter = (predicted & truth).sum((1, 2, 3)).float()
            union = (predicted | truth).sum((1, 2, 3)).float()
            (inter / union.clamp(min=1)).mean().item()
            (2 * inter / (predicted.sum((1, 2, 3)) + truth.sum((1, 2, 3))).clamp(min=1)).mean()
    return epoch


def seed_a_data(root: Path, size: int = 128) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Both splits decoded seed A's way."""
    return {split: decode_split(isic2016_split(root, split), size) for split in ("train", "test")}
