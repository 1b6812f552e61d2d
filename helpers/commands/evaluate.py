"""Score a trained model on any folder of dermoscopy images and masks with the official ISIC
scorer, at the images' original size.

    python -m helpers evaluate --run reports/best/runs/fine_tuned \
        --images DIR --masks DIR [--out DIR]

The checkpoint, threshold and test-time flips are those notebook 04 scored the model with
(the run's ``scoring.json``) unless given; ``--out`` writes ``per_image.csv``,
``summary.csv`` and ``scored_with.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from helpers.commands.cli import run_command
from helpers.evaluate import evaluate_folder
from helpers.system.atomic import write_text
from helpers.system.writable import output_folder


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--run", required=True, help="run folder, e.g. "
                        "reports/best/runs/fine_tuned")
    parser.add_argument("--images", required=True, help="folder of .jpg/.jpeg/.png images")
    parser.add_argument("--masks", required=True, help="folder of their masks")
    parser.add_argument("--mask-pattern", default="{id}_Segmentation.png",
                        help="mask file name for image id {id} (default: %(default)s)")
    parser.add_argument("--checkpoint", choices=("last", "best"), default=None,
                        help="default: the one notebook 04 scored, else last")
    parser.add_argument("--flips", action=argparse.BooleanOptionalAction, default=None,
                        help="test-time flip averaging (default: as notebook 04 scored the "
                             "model, else none)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="default: the one notebook 04 scored the model with, else 0.5")
    parser.add_argument("--device", default=None, help="default: the run's (auto)")
    parser.add_argument("--out", default=None,
                        help="write per_image.csv, summary.csv and scored_with.json here")
    return parser


def evaluate(args: argparse.Namespace) -> int:
    if args.out:
        output_folder(args.out, inputs=[args.images, args.masks])
    per_image, macro, _, data, scoring = evaluate_folder(
        args.run, args.images, args.masks, args.mask_pattern, args.checkpoint, args.flips,
        args.threshold, args.device)
    if args.out:
        out = Path(args.out)
        write_text(out / "per_image.csv", per_image.to_csv())
        write_text(out / "summary.csv", macro.to_frame("value").to_csv())
        write_text(out / "scored_with.json", json.dumps(dataclasses.asdict(scoring), indent=2))
    print(f"{len(data)} images, official ISIC scores:")
    print(macro.to_string(float_format="%.4f"))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(parser(), evaluate, argv)


if __name__ == "__main__":
    sys.exit(main())
