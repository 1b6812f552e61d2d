"""Hidden checks of exercise 1 (instructor only): other sizes, a batch of one, the upsample
decoder's shapes, and the head seeing the input image."""

from __future__ import annotations

import pytest
import torch

from helpers.model import MobileNetV2UNet, UNetDecoder, count_parameters


@pytest.mark.parametrize("height, width", [(32, 32), (96, 160)])
def test_any_multiple_of_32_and_a_batch_of_one(height: int, width: int) -> None:
    model = MobileNetV2UNet(pretrained=False).eval()
    logits = model(torch.randn(1, 3, height, width))
    assert tuple(logits.shape) == (1, 1, height, width), tuple(logits.shape)


def test_the_upsample_decoder_keeps_every_shape() -> None:
    model = MobileNetV2UNet(pretrained=False, decoder="upsample").eval()
    assert tuple(model(torch.randn(2, 3, 64, 96)).shape) == (2, 1, 64, 96)
    assert count_parameters(UNetDecoder(upsample=True))["total"] != 1_594_314


def test_the_last_skip_is_the_input_image() -> None:
    model = MobileNetV2UNet(pretrained=False).eval()
    seen = []
    model.decoder.head.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    image = torch.randn(2, 3, 64, 64)
    model(image)
    assert torch.equal(seen[0][:, 3:], image), "the head's last three channels are not the image"
