"""Exercise 2: a truly frozen encoder (weights and BatchNorm statistics) and per-group
learning rates (helpers/model.py, helpers/train.py)."""

from __future__ import annotations

import torch

from helpers.config import TrainConfig
from helpers.model import MobileNetV2UNet
from helpers.train import make_optimizer


def test_a_frozen_encoder_has_no_trainable_parameter() -> None:
    model = MobileNetV2UNet(pretrained=False, freeze_encoder=True, decoder="report_b")
    trainable = [name for name, p in model.encoder.named_parameters() if p.requires_grad]
    assert not trainable, (f"{len(trainable)} encoder parameters still require gradients, "
                           f"e.g. encoder.{trainable[0] if trainable else ''}")
    assert all(p.requires_grad for p in model.decoder.parameters()), \
        "freezing the encoder froze decoder parameters too"


def test_a_frozen_encoder_keeps_its_batchnorm_statistics_in_training_mode() -> None:
    model = MobileNetV2UNet(pretrained=False, freeze_encoder=True, decoder="report_b")
    model.train()
    before = {name: b.clone() for name, b in model.encoder.named_buffers()}
    model(torch.randn(2, 3, 64, 64))
    moved = [name for name, b in model.encoder.named_buffers() if not torch.equal(b, before[name])]
    assert not moved, (f"BatchNorm buffer encoder.{moved[0] if moved else ''} moved during a "
                       f"forward pass after model.train() ({len(moved)} buffers moved): a frozen "
                       "encoder must stay in eval mode")
    assert model.decoder.training, "model.train() must still put the decoder in training mode"


def _groups(freeze: bool) -> tuple[MobileNetV2UNet, TrainConfig, dict[str, dict]]:
    config = TrainConfig(epochs=1, batch_size=2, freeze_encoder=freeze,
                         encoder_lr=0.0 if freeze else 1e-4, decoder_lr=1e-2)
    model = MobileNetV2UNet(pretrained=False, freeze_encoder=freeze, decoder="report_b")
    groups = {g.get("name", "?"): g for g in make_optimizer(model, config).param_groups}
    return model, config, groups


def test_fine_tuning_has_one_learning_rate_per_group() -> None:
    model, config, groups = _groups(freeze=False)
    assert sorted(groups) == ["decoder", "encoder"], (
        f"the optimiser's parameter groups are named {sorted(groups)}; expected 'decoder' and "
        "'encoder' (a group's name is its dict's \"name\" key)")
    for name, wanted in (("decoder", config.decoder_lr), ("encoder", config.encoder_lr)):
        assert groups[name]["lr"] == wanted, (
            f"parameter group {name!r} has lr {groups[name]['lr']}, expected {name}_lr = {wanted}")
        expected = {id(p) for p in getattr(model, name).parameters()}
        assert {id(p) for p in groups[name]["params"]} == expected, (
            f"parameter group {name!r} does not hold exactly the {name}'s parameters")


def test_a_frozen_encoder_gets_no_parameter_group() -> None:
    _, config, groups = _groups(freeze=True)
    assert sorted(groups) == ["decoder"], (
        f"with a frozen encoder the optimiser's groups are {sorted(groups)}; expected only "
        "'decoder' (nothing of a frozen encoder is optimised)")
    assert groups["decoder"]["lr"] == config.decoder_lr
