"""Architecture, parameter counts, and a frozen encoder that really stays frozen."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers.config import TrainConfig
from helpers.isic2016 import load_isic2016
from helpers.model import MobileNetV2UNet, build_model, count_parameters, parameter_summary
from helpers.train import fit, make_optimizer


def test_parameter_counts_match_report_a() -> None:
    frozen = MobileNetV2UNet(pretrained=False, freeze_encoder=True)
    assert count_parameters(frozen) == {"trainable": 1_594_314, "non_trainable": 2_223_872,
                                        "total": 3_818_186}
    assert "Number of trainable parameters: 1594314" in parameter_summary(frozen)
    tuned = MobileNetV2UNet(pretrained=False)
    assert count_parameters(tuned)["trainable"] == 3_818_186
    assert count_parameters(tuned)["non_trainable"] == 0


def test_skip_shapes_and_logit_output() -> None:
    model = MobileNetV2UNet(pretrained=False).eval()
    image = torch.randn(2, 3, 128, 128)
    features = model.encoder(image)
    assert [tuple(f.shape[1:]) for f in features] == [
        (32, 64, 64), (16, 64, 64), (24, 32, 32), (32, 16, 16), (64, 8, 8), (96, 8, 8),
        (160, 4, 4), (320, 4, 4), (1280, 4, 4)]
    logits = model(image)
    assert logits.shape == (2, 1, 128, 128)
    assert logits.min() < 0 < logits.max()  # logits, not probabilities


@pytest.mark.parametrize("height, width", [(64, 96), (224, 160)])
def test_any_multiple_of_32_works(height: int, width: int) -> None:
    model = MobileNetV2UNet(pretrained=False).eval()
    assert model(torch.randn(1, 3, height, width)).shape == (1, 1, height, width)


def test_pretrained_encoder_has_imagenet_weights() -> None:
    from torchvision.models import mobilenet_v2

    from helpers.system.weights import WEIGHTS
    reference = mobilenet_v2(weights=WEIGHTS).features.state_dict()
    encoder = MobileNetV2UNet(pretrained=True).encoder.features.state_dict()
    assert all(torch.equal(reference[k], encoder[k]) for k in reference)


@pytest.mark.parametrize("cache_features", [True, False])
def test_frozen_encoder_is_bit_identical_after_an_epoch(
        synthetic_root: Path, tmp_path: Path, cache_features: bool) -> None:
    data = load_isic2016(synthetic_root, size=64, val_fraction=0.25)
    config = TrainConfig(epochs=1, batch_size=6, freeze_encoder=True, decoder_lr=1e-2,
                         cache_encoder_features=cache_features)
    model = build_model(config)
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    decoder_before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    fit(model, data.train, data.val, config, tmp_path / "run", progress=False)
    after = model.encoder.state_dict()
    assert before.keys() == after.keys()
    for name, tensor in before.items():  # weights *and* BatchNorm buffers
        assert torch.equal(tensor, after[name]), name
    assert not torch.equal(decoder_before["blocks.0.0.weight"],
                           model.decoder.state_dict()["blocks.0.0.weight"])
    assert all(p.grad is None for p in model.encoder.parameters())


def test_fine_tuning_uses_two_learning_rates() -> None:
    config = TrainConfig(epochs=1, batch_size=2, freeze_encoder=False, encoder_lr=1e-4,
                         decoder_lr=1e-2)
    model = build_model(config, pretrained=False)
    groups = {g["name"]: g for g in make_optimizer(model, config).param_groups}
    assert groups["encoder"]["lr"] == 1e-4 and groups["decoder"]["lr"] == 1e-2
    assert len(groups["encoder"]["params"]) == len(list(model.encoder.parameters()))
    assert model.training and model.encoder.training


def test_frozen_encoder_stays_in_eval_mode() -> None:
    model = MobileNetV2UNet(pretrained=False, freeze_encoder=True).train()
    assert model.decoder.training and not model.encoder.training


def test_few_channel_batchnorm_matches_batchnorm_in_either_layout() -> None:
    from helpers.model import FewChannelBatchNorm2d
    torch.manual_seed(0)
    plain, few = torch.nn.BatchNorm2d(3), FewChannelBatchNorm2d(3)
    x = torch.randn(4, 3, 16, 16)
    for layout in (torch.contiguous_format, torch.channels_last):
        y = few(x.contiguous(memory_format=layout))
        assert torch.allclose(y, plain(x), atol=1e-6)
        assert y.is_contiguous(memory_format=layout)
    assert torch.allclose(few.running_mean, plain.running_mean)


@pytest.mark.parametrize("decoder", ["transposed", "upsample", "report_b"])
def test_every_decoder_gives_full_size_logits(decoder: str) -> None:
    model = MobileNetV2UNet(pretrained=False, decoder=decoder).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 96, 64)).shape == (2, 1, 96, 64)


def test_upsample_decoder_has_no_transposed_convolution_but_the_same_skips() -> None:
    model = MobileNetV2UNet(pretrained=False, decoder="upsample")
    layers = list(model.decoder.blocks.modules())
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in layers)
    assert sum(isinstance(m, torch.nn.Upsample) for m in layers) == 5  # the five stride-2 blocks
    assert len(model.encoder(torch.randn(1, 3, 64, 64))) == 9  # 8 skips and the bottleneck


def test_report_b_model_drops_the_top_four_encoder_stages_and_uses_no_skips() -> None:
    model = MobileNetV2UNet(pretrained=False, decoder="report_b")
    assert len(model.encoder.features) == 15  # stages 0-14 of MobileNetV2's 19
    features = model.encoder(torch.randn(1, 3, 64, 64))
    assert features[-1].shape == (1, 160, 2, 2)  # 1/32 of the input
    assert not any(isinstance(m, torch.nn.BatchNorm2d | torch.nn.Dropout2d)
                   for m in model.decoder.modules())
    with torch.no_grad():  # the decoder sees the deepest features only
        deepest_only = model.decoder([features[-1]], torch.zeros(1, 3, 64, 64))
        assert torch.equal(deepest_only, model.decoder(features, torch.zeros(1, 3, 64, 64)))


def test_report_b_encoder_keeps_the_imagenet_weights_of_its_stages() -> None:
    full = MobileNetV2UNet(pretrained=True).encoder.features.state_dict()
    truncated = MobileNetV2UNet(pretrained=True, decoder="report_b").encoder.features
    for key, value in truncated.state_dict().items():
        assert torch.equal(value, full[key]), key


def test_unknown_decoder_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="decoder must be one of"):
        MobileNetV2UNet(pretrained=False, decoder="deconv")
