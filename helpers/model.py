"""The U-Net of report A: an ImageNet MobileNetV2 encoder and a transposed-convolution decoder.

Shapes for a 128×128 input (any multiple of 32 works the same way)::

    stage  encoder output             decoder block (in -> out, kernel, stride)   then concat with
    input  3 @ 128                    9: 64 -> 3,   k2 s2    -> 3 @ 128         input     -> 6
    0      32 @ 64                    8: 32 -> 32,  k1       -> 32 @ 64         stage 0   -> 64
    1      16 @ 64                    7: 48 -> 16,  k2 s2    -> 16 @ 64         stage 1   -> 32
    3      24 @ 32                    6: 64 -> 24,  k2 s2    -> 24 @ 32         stage 3   -> 48
    4      32 @ 16                    5: 128 -> 32, k2 s2    -> 32 @ 16         stage 4   -> 64
    7      64 @ 8                     4: 192 -> 64, k3 p1    -> 64 @ 8          stage 7   -> 128
    11     96 @ 8                     3: 320 -> 96, k2 s2    -> 96 @ 8          stage 11  -> 192
    14     160 @ 4                    2: 640 -> 160, k3 p1   -> 160 @ 4         stage 14  -> 320
    17     320 @ 4                    1: 1280 -> 320, k1     -> 320 @ 4         stage 17  -> 640
    18     1280 @ 4  (bottleneck)     head: 6 -> 1, k1, BatchNorm -> logits 1 @ 128

The model returns *logits*: the sigmoid lives in the loss (``BCEWithLogitsLoss``) and in
prediction, which keeps mixed precision numerically safe.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models import mobilenet_v2

from helpers.weights import WEIGHTS, ensure_imagenet_weights

#: Encoder stages (indices into ``mobilenet_v2().features``) whose outputs feed the decoder.
SKIP_STAGES = (0, 1, 3, 4, 7, 11, 14, 17)
BOTTLENECK_STAGE = 18

#: (in_channels, out_channels, kernel, stride, padding) of the nine decoder blocks, deepest first.
DECODER_BLOCKS = (
    (1280, 320, 1, 1, 0),
    (640, 160, 3, 1, 1),
    (320, 96, 2, 2, 0),
    (192, 64, 3, 1, 1),
    (128, 32, 2, 2, 0),
    (64, 24, 2, 2, 0),
    (48, 16, 2, 2, 0),
    (32, 32, 1, 1, 0),
    (64, 3, 2, 2, 0),
)


class MobileNetV2Encoder(nn.Module):
    """torchvision's MobileNetV2 ``features``; returns the skip outputs and the bottleneck."""

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        if pretrained:
            ensure_imagenet_weights()
        self.features = mobilenet_v2(weights=WEIGHTS if pretrained else None).features

    def forward(self, image: Tensor) -> list[Tensor]:
        """Outputs of stages 0, 1, 3, 4, 7, 11, 14, 17 and 18, shallowest first."""
        outputs = []
        x = image
        for index, stage in enumerate(self.features):
            x = stage(x)
            if index in SKIP_STAGES or index == BOTTLENECK_STAGE:
                outputs.append(x)
        return outputs


class FewChannelBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that computes in the default NCHW layout whatever its input's layout.

    Same parameters and results as ``nn.BatchNorm2d``. On CPU, BatchNorm over a handful of
    channels (the decoder's last block has 3) is several times slower in channels_last than
    in NCHW; two copies of the tensor cost far less.
    """

    def forward(self, x: Tensor) -> Tensor:
        layout = torch.channels_last if x.is_contiguous(
            memory_format=torch.channels_last) else torch.contiguous_format
        return super().forward(x.contiguous()).contiguous(memory_format=layout)


class UpBlock(nn.Sequential):
    """Transposed convolution, BatchNorm, ReLU and channel dropout."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, padding: int,
                 dropout: float) -> None:
        norm = FewChannelBatchNorm2d if out_ch < 8 else nn.BatchNorm2d
        super().__init__(
            nn.ConvTranspose2d(in_ch, out_ch, kernel, stride=stride, padding=padding),
            norm(out_ch),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
        )


class UNetDecoder(nn.Module):
    """Nine up-blocks, each followed by concatenation with the matching skip, then a 1×1 head."""

    def __init__(self, dropout: float = 0.4) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(UpBlock(*spec, dropout=dropout) for spec in DECODER_BLOCKS)
        self.head = nn.Sequential(nn.ConvTranspose2d(6, 1, 1), nn.BatchNorm2d(1))

    def forward(self, features: list[Tensor], image: Tensor) -> Tensor:
        """``features`` as returned by :class:`MobileNetV2Encoder`; ``image`` is the input."""
        *skips, x = features
        skips = [image, *skips][::-1]  # deepest first: stage 17, 14, ..., 0, input
        for block, skip in zip(self.blocks, skips, strict=True):
            x = torch.cat([block(x), skip], dim=1)
        return self.head(x)


class MobileNetV2UNet(nn.Module):
    """U-Net with a MobileNetV2 encoder; ``freeze_encoder`` gives report A's model 1.

    A frozen encoder is *really* frozen: no gradients, and it stays in eval mode even when
    the model is put in training mode, so its BatchNorm running statistics do not drift.
    """

    def __init__(self, pretrained: bool = True, freeze_encoder: bool = False,
                 dropout: float = 0.4) -> None:
        super().__init__()
        self.encoder = MobileNetV2Encoder(pretrained=pretrained)
        self.decoder = UNetDecoder(dropout=dropout)
        self.pretrained = pretrained
        self.encoder_frozen = False
        if freeze_encoder:
            self.freeze_encoder()

    def freeze_encoder(self) -> None:
        """Stop all learning in the encoder: weights and BatchNorm statistics."""
        self.encoder_frozen = True
        self.encoder.requires_grad_(False)
        self.encoder.eval()

    def train(self, mode: bool = True) -> MobileNetV2UNet:
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
        return self

    def encode(self, image: Tensor) -> list[Tensor]:
        """Encoder features; without autograd bookkeeping when the encoder is frozen."""
        if self.encoder_frozen:
            with torch.no_grad():
                return self.encoder(image)
        return self.encoder(image)

    def forward(self, image: Tensor) -> Tensor:
        return self.decoder(self.encode(image), image)


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Trainable and non-trainable parameter counts (buffers such as BN statistics excluded)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return {"trainable": trainable, "non_trainable": frozen, "total": trainable + frozen}


def parameter_summary(model: nn.Module) -> str:
    """The reports' two lines: number of trainable and of non-trainable parameters."""
    counts = count_parameters(model)
    return (f"Number of trainable parameters: {counts['trainable']}\n"
            f"Number of non-trainable parameters: {counts['non_trainable']}")
