"""Photo-size benchmark: how predicting one image's mask and overlay grows with its size.

    python benchmarks/predict_photo.py [--sizes 600x400,6000x4000] [--repeats 3] [--json out.json]

A phone photo is about 24 megapixels; the model sees it at its training size, so only the
full-resolution steps should grow with the photo: decoding it, scaling the mask up to it,
drawing the overlay's outline, and writing the two PNG files. For each size, a SYNTHETIC
lesion photo (a JPEG) is predicted with :func:`helpers.predict.predict_folder` by a model
trained for one epoch on a small SYNTHETIC set (the weights do not change the time), and
each step is timed on its own. The table gives the median seconds of each step and the whole,
and how many times the largest photo's whole takes the smallest one's, beside how many
times more pixels it has. No timing is asserted anywhere: read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers import predict  # noqa: E402
from helpers.config import TrainConfig  # noqa: E402
from helpers.data import read_image  # noqa: E402
from helpers.isic2016 import load_isic2016  # noqa: E402
from helpers.model import build_model  # noqa: E402
from helpers.runs import load_run  # noqa: E402
from helpers.synthetic import synthetic_lesion, write_synthetic_isic2016  # noqa: E402
from helpers.system.device import describe_cpu  # noqa: E402
from helpers.train import fit  # noqa: E402


def _size(text: str) -> tuple[int, int]:
    width, height = (int(part) for part in text.lower().split("x"))
    return width, height


def _tiny_run(folder: Path) -> Path:
    """A run folder with a model trained one epoch at 64² on SYNTHETIC data."""
    data = write_synthetic_isic2016(folder / "data", n_train=16, n_test=4)
    splits = load_isic2016(data, size=64, val_fraction=0.25)
    config = TrainConfig(epochs=1, batch_size=6, freeze_encoder=True, decoder_lr=1e-2)
    run = folder / "run"
    fit(build_model(config), splits.train, splits.val, config, run, progress=False)
    return run


def _photo(path: Path, width: int, height: int) -> None:
    """A SYNTHETIC lesion drawn at a small size and scaled up to ``width`` x ``height``."""
    image, _ = synthetic_lesion(np.random.default_rng(0), height=160, width=240)
    Image.fromarray(image).resize((width, height), Image.BILINEAR).save(path, quality=90)


def time_steps(run: Path, photo: Path, out: Path) -> dict[str, float]:
    """Seconds of each step of predicting ``photo`` and writing its mask and overlay."""
    model, config, size = load_run(run)
    seconds = {}
    start = time.perf_counter()
    image = read_image(photo)
    seconds["decode"] = time.perf_counter() - start
    start = time.perf_counter()
    mask = predict.predict_masks(model, config, [image], size)[0]
    seconds["model and full-size mask"] = time.perf_counter() - start
    start = time.perf_counter()
    drawn = predict.overlay(image, mask)
    seconds["outline"] = time.perf_counter() - start
    start = time.perf_counter()
    Image.fromarray(mask).save(out / "mask.png")
    drawn.save(out / "overlay.png")
    seconds["write PNGs"] = time.perf_counter() - start
    start = time.perf_counter()
    predict.predict_folder(run, photo.parent, out / "folder", progress=False)
    seconds["predict_folder, whole"] = time.perf_counter() - start
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="600x400,6000x4000", help="WIDTHxHEIGHT,...")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    sizes = [_size(text) for text in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        run = _tiny_run(folder)
        for width, height in sizes:
            photos = folder / f"photo_{width}x{height}"
            photos.mkdir()
            _photo(photos / "photo.jpg", width, height)
            out = folder / f"out_{width}x{height}"
            out.mkdir()
            times = [time_steps(run, photos / "photo.jpg", out) for _ in range(args.repeats)]
            steps = {step: statistics.median(t[step] for t in times) for step in times[0]}
            rows.append({"width": width, "height": height, "megapixels": width * height / 1e6,
                         "seconds": steps})
    print(f"CPU: {describe_cpu()} ({platform.machine()}), {os.cpu_count()} cores, "
          f"median of {args.repeats}")
    steps = list(rows[0]["seconds"])
    print("| photo | megapixels | " + " | ".join(steps) + " |")
    print("|---|---:|" + "---:|" * len(steps))
    for row in rows:
        cells = " | ".join(f"{row['seconds'][step]:.3f}" for step in steps)
        print(f"| {row['width']}x{row['height']} | {row['megapixels']:.2f} | {cells} |")
    whole = "predict_folder, whole"
    ratio = rows[-1]["seconds"][whole] / rows[0]["seconds"][whole]
    pixels = rows[-1]["megapixels"] / rows[0]["megapixels"]
    print(f"\nThe {rows[-1]['width']}x{rows[-1]['height']} photo takes {ratio:.1f}x the "
          f"{rows[0]['width']}x{rows[0]['height']} one's time, for {pixels:.0f}x its pixels.")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": describe_cpu(), "repeats": args.repeats,
                                               "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
