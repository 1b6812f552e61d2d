"""Does a model trained on tight crops still work on wider views? Official test scores of
trained runs on the test images as they are and on zoomed-out copies of them.

    python -m helpers robustness --data-root ../shared/data/isic2016 --out reports/best \\
        --run "report A's model 2=reports/report_a/runs/fine_tuned" \\
        --run "best recipe's model 2=reports/best/runs/fine_tuned"

For each factor (1: the images as they are) the test images and masks are zoomed out by
:mod:`helpers.zoomout` into a temporary folder, at each file's original size, and every run is
scored there by :func:`helpers.evaluate.evaluate_folder` the way notebook 04 scored it (its
checkpoint, threshold and test-time flips, from the run's ``scoring.json``). The table goes to
``OUT/tables/zoom_out_robustness.csv`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd

from helpers.commands.cli import run_command
from helpers.errors import UsageError
from helpers.evaluate import evaluate_folder
from helpers.isic2016 import isic2016_split
from helpers.outputs import Outputs
from helpers.runs.scoring import Scoring
from helpers.system.writable import output_folder
from helpers.zoomout import write_zoomed_folder

#: The zoom factors of docs/results.md's table: the images as they are, then ×0.75 and ×0.5.
FACTORS = (1.0, 0.75, 0.5)
#: The official scores the table keeps, in its order.
SCORES = ("jaccard", "threshold_jaccard", "dice", "sensitivity", "specificity")
TABLE = "zoom_out_robustness"


def scored_with(scoring: Scoring) -> str:
    """E.g. ``best checkpoint (epoch 22), flips, threshold 0.5``."""
    flips = ", flips" if scoring.flips else ""
    return f"{scoring.checkpoint} checkpoint (epoch {scoring.epoch}){flips}, " \
           f"threshold {scoring.threshold:g}"


def zoom_out_robustness(runs: dict[str, Path], data_root: str | Path,
                        factors: tuple[float, ...] = FACTORS, progress: bool = True
                        ) -> pd.DataFrame:
    """One row per factor and run (``runs``: a name for the table -> its run folder): the
    official macro-averaged scores of that run on the test images zoomed out by the factor."""
    test = isic2016_split(data_root, "test")
    suffix = test.mask_pattern.removeprefix("{id}").removesuffix(".png")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for factor in factors:
            images, masks = test.images_dir, test.masks_dir
            if factor != 1:
                folder = Path(work) / f"x{factor:g}"
                write_zoomed_folder(images, masks, folder, factor, suffix, progress=progress)
                images, masks = folder / "images", folder / "masks"
            for name, run_dir in runs.items():
                _, macro, _, _, scoring = evaluate_folder(run_dir, images, masks,
                                                          test.mask_pattern, progress=progress)
                rows.append({"test images": "original" if factor == 1
                             else f"zoomed out x{factor:g}", "zoom factor": factor,
                             "model": name, "evaluated with": scored_with(scoring),
                             **{score: float(macro[score]) for score in SCORES}})
    return pd.DataFrame(rows)


def _named_run(text: str) -> tuple[str, Path]:
    name, separator, folder = text.rpartition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: give NAME=RUN_FOLDER")
    return name, Path(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", type=_named_run, required=True,
                        metavar="NAME=RUN_FOLDER", help="a trained run and its name in the "
                        "table (repeat for each run)")
    parser.add_argument("--data-root", required=True, help="the ISIC 2016 folder")
    parser.add_argument("--out", required=True, help="the table goes to OUT/tables/")
    parser.add_argument("--factors", default=",".join(f"{f:g}" for f in FACTORS),
                        help="zoom factors, 1 for the images as they are (default: %(default)s)")
    return run_command(parser, score_zoomed_out, argv)


def score_zoomed_out(args: argparse.Namespace) -> int:
    try:
        factors = tuple(float(f) for f in args.factors.split(","))
    except ValueError as error:
        raise UsageError(f"--factors {args.factors!r}: give numbers separated by commas "
                         f"({error})") from error
    output_folder(args.out)
    table = zoom_out_robustness(dict(args.run), args.data_root, factors)
    print(table.to_string(index=False))
    print(f"Written: {Outputs(args.out).table(table, TABLE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
