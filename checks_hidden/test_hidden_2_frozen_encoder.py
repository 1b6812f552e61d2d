"""Hidden checks of exercise 2 (instructor only): an optimiser step leaves a frozen encoder
exactly as it was, and eval/train switches keep it frozen (report B's decoder: these
checks need no working answer to exercise 1)."""

from __future__ import annotations

import torch

from helpers.config import TrainConfig
from helpers.model import MobileNetV2UNet
from helpers.train import make_optimizer


def test_training_steps_leave_a_frozen_encoder_unchanged() -> None:
    torch.manual_seed(0)
    config = TrainConfig(epochs=1, batch_size=2, freeze_encoder=True, encoder_lr=0.0,
                         decoder_lr=1e-2)
    model = MobileNetV2UNet(pretrained=False, freeze_encoder=True, decoder="report_b")
    optimizer = make_optimizer(model, config)
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    decoder_before = next(model.decoder.parameters()).clone()
    for _ in range(2):
        model.eval().train()
        loss = model(torch.randn(2, 3, 32, 32)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for name, tensor in model.encoder.state_dict().items():
        assert torch.equal(tensor, before[name]), f"encoder.{name} changed"
    assert not torch.equal(decoder_before, next(model.decoder.parameters()))


def test_freezing_after_construction_also_works() -> None:
    model = MobileNetV2UNet(pretrained=False, decoder="report_b")
    model.train()
    model.freeze_encoder()
    assert not model.encoder.training
    assert not any(p.requires_grad for p in model.encoder.parameters())
