"""Exercise 1: the U-Net decoder's blocks and skip connections (helpers/model.py)."""

from __future__ import annotations

import torch

from helpers.model import DECODER_BLOCKS, MobileNetV2UNet, UNetDecoder, count_parameters

REPORT_A_DECODER_PARAMETERS = 1_594_314


def test_the_decoder_has_report_a_parameter_count() -> None:
    decoder = UNetDecoder()
    count = count_parameters(decoder)["total"]
    assert len(decoder.blocks) == len(DECODER_BLOCKS), (
        f"the decoder has {len(decoder.blocks)} blocks; expected one UpBlock per row of "
        f"DECODER_BLOCKS ({len(DECODER_BLOCKS)})")
    assert count == REPORT_A_DECODER_PARAMETERS, (
        f"the decoder has {count:,} parameters; report A's has {REPORT_A_DECODER_PARAMETERS:,} "
        "(nine UpBlocks built from DECODER_BLOCKS, then the 1x1 head)")


def test_each_block_gets_its_input_concatenated_with_the_skip() -> None:
    model = MobileNetV2UNet(pretrained=False)
    seen: list[tuple[int, ...]] = []
    hooks = [block.register_forward_pre_hook(lambda _, args: seen.append(tuple(args[0].shape)))
             for block in model.decoder.blocks]
    model(torch.randn(2, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    assert len(seen) == len(DECODER_BLOCKS), (
        f"{len(seen)} of the {len(DECODER_BLOCKS)} decoder blocks ran in forward")
    for number, (shape, spec) in enumerate(zip(seen, DECODER_BLOCKS, strict=True), 1):
        assert shape[1] == spec[0], (
            f"decoder block {number} received {shape[1]} channels, expected {spec[0]}: the "
            "previous block's output concatenated (dim 1) with the skip of the same size")


def test_the_output_is_one_logit_per_pixel() -> None:
    model = MobileNetV2UNet(pretrained=False)
    logits = model(torch.randn(2, 3, 64, 64))
    assert tuple(logits.shape) == (2, 1, 64, 64), (
        f"for a (2, 3, 64, 64) input the model gave {tuple(logits.shape)}; expected "
        "(2, 1, 64, 64): one logit per pixel, at the input's size")
