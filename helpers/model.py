"""The U-Net of report A: an ImageNet MobileNetV2 encoder and a transposed-convolution decoder,
plus two other decoders (``DECODERS``): the same U-Net with upsample + convolution blocks, and
a reconstruction of report B's plain decoder.

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

``decoder="upsample"`` keeps every shape and skip of the table but replaces each k2 s2
transposed convolution by a bilinear ×2 upsample followed by a 3×3 convolution (and the k1/k3
transposed convolutions by ordinary convolutions of the same size). A k2 s2 transposed
convolution paints each input pixel as its own 2×2 block with the same four weights, and
after four of them the soft masks show a checkerboard; interpolation first gives smooth
masks (Odena et al., "Deconvolution and checkerboard artifacts", Distill 2016).

``decoder="report_b"`` is report B's model as its text describes it (docs/model.md, "Report B's
decoder"): the encoder without its top four stages (stages 0-14, 160 channels at 1/32 of the
input), then five blocks of a 3×3 convolution + ReLU and a k2 s2 transposed convolution + ReLU,
no skip connections, no BatchNorm, no dropout, and a 1×1 convolution to one grey channel.

The model returns *logits*: the sigmoid lives in the loss (``BCEWithLogitsLoss``) and in
prediction, which keeps mixed precision numerically safe.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models import mobilenet_v2

from helpers.config import DECODERS, TrainConfig
from helpers.system.device import memory_format_of, resolve_device, uses_channels_last
from helpers.system.weights import WEIGHTS, ensure_imagenet_weights

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


#: The decoders :class:`MobileNetV2UNet` can be built with (a ``decoder`` setting).
#: Report B "removes the top four layers": its encoder ends at stage 14 (160 channels, 1/32).
REPORT_B_LAST_STAGE = 14
#: Output channels of report B's five upsampling blocks (the report gives no numbers: each
#: block halves the channels, from the encoder's 160 down to 10 at full resolution).
REPORT_B_CHANNELS = (160, 80, 40, 20, 10)


class MobileNetV2Encoder(nn.Module):
    """torchvision's MobileNetV2 ``features`` up to ``last_stage``; returns the outputs of the
    skip stages (see ``SKIP_STAGES``) it has, then the last stage's output."""

    def __init__(self, pretrained: bool = True, last_stage: int = BOTTLENECK_STAGE) -> None:
        super().__init__()
        if pretrained:
            ensure_imagenet_weights()
        features = mobilenet_v2(weights=WEIGHTS if pretrained else None).features
        self.features = features[:last_stage + 1]
        self.last_stage = last_stage

    def forward(self, image: Tensor) -> list[Tensor]:
        """Outputs of stages 0, 1, 3, 4, 7, 11, 14, 17 and 18 (those up to ``last_stage``),
        shallowest first; the last one is always ``last_stage``'s."""
        outputs = []
        x = image
        for index, stage in enumerate(self.features):
            x = stage(x)
            if index in SKIP_STAGES or index == self.last_stage:
                outputs.append(x)
        return outputs


class FewChannelBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that computes in the default NCHW layout whatever its input's layout.

    Same parameters and results as ``nn.BatchNorm2d``. On CPU, BatchNorm over a handful of
    channels (the decoder's last block has 3) is several times slower in channels_last than
    in NCHW; two copies of the tensor cost far less.
    """

    def forward(self, x: Tensor) -> Tensor:
        layout = memory_format_of(x)
        return super().forward(x.contiguous()).contiguous(memory_format=layout)


def resize_layers(in_ch: int, out_ch: int, kernel: int, stride: int, padding: int,
                  upsample: bool) -> list[nn.Module]:
    """One decoder block's resizing layer: report A's transposed convolution, or with
    ``upsample`` a bilinear ×2 upsample and a 3×3 convolution (same output shape)."""
    if not upsample:
        return [nn.ConvTranspose2d(in_ch, out_ch, kernel, stride=stride, padding=padding)]
    if stride == 2:
        return [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_ch, out_ch, 3, padding=1)]
    return [nn.Conv2d(in_ch, out_ch, kernel, padding=padding)]


class UpBlock(nn.Sequential):
    """Transposed convolution (or upsample + convolution), BatchNorm, ReLU, channel dropout."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, padding: int,
                 dropout: float, upsample: bool = False) -> None:
        norm = FewChannelBatchNorm2d if out_ch < 8 else nn.BatchNorm2d
        super().__init__(
            *resize_layers(in_ch, out_ch, kernel, stride, padding, upsample),
            norm(out_ch),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
        )


class UNetDecoder(nn.Module):
    """Nine up-blocks, each followed by concatenation with the matching skip, then a 1×1 head."""

    def __init__(self, dropout: float = 0.4, upsample: bool = False) -> None:
        super().__init__()
        # BEGIN SOLUTION exercise 1: the U-Net decoder's blocks and skip connections
        # HINT: self.blocks, an nn.ModuleList of one UpBlock per row of DECODER_BLOCKS
        self.blocks = nn.ModuleList(UpBlock(*spec, dropout=dropout, upsample=upsample)
                                    for spec in DECODER_BLOCKS)
        # END SOLUTION
        self.head = nn.Sequential(nn.ConvTranspose2d(6, 1, 1), nn.BatchNorm2d(1))

    def forward(self, features: list[Tensor], image: Tensor) -> Tensor:
        """``features`` as returned by :class:`MobileNetV2Encoder`; ``image`` is the input."""
        # BEGIN SOLUTION exercise 1: the U-Net decoder's blocks and skip connections
        # HINT: from features[-1], concatenate each block's output with its skip (dim 1); self.head
        *skips, x = features
        skips = [image, *skips][::-1]  # deepest first: stage 17, 14, ..., 0, input
        for block, skip in zip(self.blocks, skips, strict=True):
            x = torch.cat([block(x), skip], dim=1)
        return self.head(x)
        # END SOLUTION


class ReportBDecoder(nn.Module):
    """Report B's decoder: five (3×3 convolution, ReLU, k2 s2 transposed convolution, ReLU)
    blocks from the truncated encoder's 1/32 features to full size, then a 1×1 convolution to
    one channel. No skips: it sees only the deepest features."""

    def __init__(self, in_channels: int = 160, channels: tuple[int, ...] = REPORT_B_CHANNELS
                 ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for out_ch in channels:
            layers += [nn.Conv2d(in_channels, out_ch, 3, padding=1), nn.ReLU(inplace=True),
                       nn.ConvTranspose2d(out_ch, out_ch, 2, stride=2), nn.ReLU(inplace=True)]
            in_channels = out_ch
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Conv2d(in_channels, 1, 1)

    def forward(self, features: list[Tensor], image: Tensor) -> Tensor:
        """Uses the deepest of ``features`` only; ``image`` is accepted for symmetry."""
        return self.head(self.blocks(features[-1]))


class MobileNetV2UNet(nn.Module):
    """U-Net with a MobileNetV2 encoder; ``freeze_encoder`` gives report A's model 1.

    ``decoder`` is one of ``DECODERS`` (module docstring). A frozen encoder is *really*
    frozen: no gradients, and it stays in eval mode even when the model is put in training
    mode, so its BatchNorm running statistics do not drift.
    """

    def __init__(self, pretrained: bool = True, freeze_encoder: bool = False,
                 dropout: float = 0.4, decoder: str = "transposed") -> None:
        super().__init__()
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, not {decoder!r}")
        if decoder == "report_b":
            self.encoder = MobileNetV2Encoder(pretrained, last_stage=REPORT_B_LAST_STAGE)
            self.decoder: nn.Module = ReportBDecoder()
        else:
            self.encoder = MobileNetV2Encoder(pretrained)
            self.decoder = UNetDecoder(dropout=dropout, upsample=decoder == "upsample")
        self.pretrained = pretrained
        self.decoder_kind = decoder
        self.encoder_frozen = False
        if freeze_encoder:
            self.freeze_encoder()

    def freeze_encoder(self) -> None:
        """Stop all learning in the encoder: weights and BatchNorm statistics."""
        self.encoder_frozen = True
        # BEGIN SOLUTION exercise 2: a truly frozen encoder and per-group learning rates
        # HINT: no gradients for any encoder parameter, and BatchNorm layers that stop updating
        self.encoder.requires_grad_(False)
        self.encoder.eval()
        # END SOLUTION

    def train(self, mode: bool = True) -> MobileNetV2UNet:
        super().train(mode)
        if self.encoder_frozen:
            # BEGIN SOLUTION exercise 2: a truly frozen encoder and per-group learning rates
            # HINT: model.train() must not set a frozen encoder's BatchNorm back to training
            self.encoder.eval()
            # END SOLUTION
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


def build_model(config: TrainConfig, pretrained: bool = True) -> MobileNetV2UNet:
    """A seeded U-Net (same seed, same decoder initialisation) set up for ``config``."""
    torch.manual_seed(config.seed)
    model = MobileNetV2UNet(pretrained=pretrained, freeze_encoder=config.freeze_encoder,
                            decoder=config.decoder)
    device = resolve_device(config.device)
    model = model.to(device)
    if uses_channels_last(device, config.channels_last):
        model = model.to(memory_format=torch.channels_last)
    return model
