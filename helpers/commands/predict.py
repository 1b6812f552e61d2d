"""Masks and overlays for your own images from a trained model.

    python -m helpers predict --run reports/report_a/runs/fine_tuned --images DIR --out DIR

Writes ``<id>_mask.png`` (0 or 255, at the image's original size) and ``<id>_overlay.png``
(the mask's outline on the image) for every image the loader accepts
(:func:`helpers.predict.predict_folder`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from helpers.commands.cli import run_command
from helpers.predict import predict_folder


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="a trained model's run folder "
                        "(e.g. reports/report_a/runs/fine_tuned)")
    parser.add_argument("--images", required=True, help="folder of .jpg/.jpeg/.png images")
    parser.add_argument("--out", required=True, help="folder for the masks and overlays")
    parser.add_argument("--checkpoint", choices=("last", "best"), default=None,
                        help="default: the one notebook 04 scored, else last")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default=None, help="default: the run's (auto)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="default: the one notebook 04 scored the model with, else 0.5")
    parser.add_argument("--flips", action=argparse.BooleanOptionalAction, default=None,
                        help="average over the four flips (default: as notebook 04 scored "
                             "the model, else none)")
    return parser


def predict(args: argparse.Namespace) -> int:
    written = predict_folder(Path(args.run).resolve(), Path(args.images).resolve(),
                             Path(args.out).resolve(), args.checkpoint, args.batch_size,
                             args.device, args.threshold, flips=args.flips)
    print(f"{len(written)} masks and overlays in {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(parser(), predict, argv)


if __name__ == "__main__":
    sys.exit(main())
