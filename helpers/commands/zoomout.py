"""Zoomed-out copies of a folder of images and masks (a skin margin and the dermatoscope's
ring around each image), ready for ``python -m helpers evaluate``.

    python -m helpers zoomout --images DIR --masks DIR --factor 0.6 --out DIR
"""

from __future__ import annotations

import argparse
import sys

from helpers.commands.cli import run_command
from helpers.zoomout import write_zoomed_folder


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", required=True, help="folder of images")
    parser.add_argument("--masks", required=True, help="folder of their masks")
    parser.add_argument("--out", required=True, help="gets images/ and masks/")
    parser.add_argument("--factor", type=float, required=True,
                        help="the image's new width as a share of the canvas, e.g. 0.6")
    parser.add_argument("--mask-suffix", default="_Segmentation")
    parser.add_argument("--no-ring", action="store_true", help="no dermatoscope ring")
    return parser


def zoom_out(args: argparse.Namespace) -> int:
    count = write_zoomed_folder(args.images, args.masks, args.out, args.factor,
                                args.mask_suffix, not args.no_ring)
    print(f"{count} zoomed-out images and masks in {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(parser(), zoom_out, argv)


if __name__ == "__main__":
    sys.exit(main())
