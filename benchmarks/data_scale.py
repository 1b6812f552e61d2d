"""Scale benchmark: decode rate, cache size and peak memory as the data set grows.

    python benchmarks/data_scale.py --counts 1000,5000,10000 --json scale.json

For each count N, SYNTHETIC training sets of N images (512×512 JPEGs, written once under
``data/bench_scale/``; the smaller sets are hard links to the first files of the largest) are
measured, each step in a fresh process so that its peak resident memory is its own:

* ``decode``: :func:`helpers.decode.load_split` at 256² into an empty cache, a thread per core
  (images/s, cache size on disk, peak RSS);
* ``epoch``: one fine-tuned training epoch (batch 45) with the split read from the disk cache
  batch by batch, as it is for a split over ``in_memory_gb`` (seconds, images/s, peak RSS);
* ``in_memory``: the same split loaded into RAM instead (peak RSS), for contrast.

The decoding and the epoch should cost time in proportion to N and the epoch's memory should
not grow with N; the in-memory load grows by the size of the arrays.

``train_speed.py --scale`` runs this and puts the results in its JSON as ``scale``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers.isic2016 import isic2016_split  # noqa: E402
from helpers.paths import ISIC2016_FOLDERS, SYNTHETIC_MARKER  # noqa: E402
from helpers.synthetic import synthetic_lesion  # noqa: E402
from helpers.system.atomic import atomic_path, write_text  # noqa: E402

DATA = ROOT / "data" / "bench_scale"
SIZE = 256
SOURCE_SIZE = 512
BATCH = 45


def _write_block(folder: str, first: int, count: int) -> None:
    images, masks = (Path(folder) / name for name in ISIC2016_FOLDERS["train"])
    for number in range(first, first + count):
        image_path = images / f"SCALE_{number:05d}.jpg"
        if image_path.exists():
            continue
        image, mask = synthetic_lesion(np.random.default_rng(number), SOURCE_SIZE, SOURCE_SIZE)
        with atomic_path(masks / f"SCALE_{number:05d}_Segmentation.png") as tmp:
            Image.fromarray(mask).save(tmp)
        with atomic_path(image_path) as tmp:
            Image.fromarray(image).save(tmp, quality=92)


def write_sets(counts: list[int]) -> dict[int, Path]:
    """The SYNTHETIC sets (written with all cores the first time; then reused)."""
    largest = DATA / f"n{max(counts)}"
    for name in ISIC2016_FOLDERS["train"]:
        (largest / name).mkdir(parents=True, exist_ok=True)
    write_text(largest / SYNTHETIC_MARKER, "SYNTHETIC lesions for the scale benchmark.\n")
    block = 250
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_write_block, [str(largest)] * (max(counts) // block + 1),
                      range(0, max(counts), block),
                      [min(block, max(counts) - s) for s in range(0, max(counts), block)]))
    sets = {}
    for count in counts:
        folder = DATA / f"n{count}"
        if count != max(counts):
            for name in ISIC2016_FOLDERS["train"]:
                (folder / name).mkdir(parents=True, exist_ok=True)
                for source in sorted((largest / name).iterdir())[:count]:
                    if not (folder / name / source.name).exists():
                        os.link(source, folder / name / source.name)
            write_text(folder / SYNTHETIC_MARKER, "SYNTHETIC lesions for the scale benchmark.\n")
        sets[count] = folder
    return sets


def _peak_mib() -> float:
    """This process's peak resident memory. On Linux from /proc (``ru_maxrss`` would keep the
    peak of the parent it was started from)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(step: str, root: Path, cache: Path) -> dict:
    """One step, in this process (see the module docstring)."""
    from helpers.batches import TensorSet
    from helpers.config import TrainConfig
    from helpers.decode import load_split
    from helpers.model import build_model
    from helpers.train import make_optimizer, make_scaler, train_one_epoch

    layout = isic2016_split(root, "train")
    began = time.perf_counter()
    if step == "decode":
        data = load_split(layout, SIZE, cache, progress=False, in_memory_gb=0)
        seconds = time.perf_counter() - began
        size = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
        return {"seconds": seconds, "images_per_s": len(data) / seconds, "cache_bytes": size,
                "peak_rss_mib": _peak_mib()}
    if step == "in_memory":
        data = load_split(layout, SIZE, cache, progress=False, in_memory_gb=float("inf"))
        return {"seconds": time.perf_counter() - began, "array_bytes":
                data.images.nbytes + data.masks.nbytes, "peak_rss_mib": _peak_mib()}
    data = load_split(layout, SIZE, cache, progress=False, in_memory_gb=0)
    config = TrainConfig(epochs=1, batch_size=BATCH, freeze_encoder=False, encoder_lr=1e-4,
                         decoder_lr=1e-2, device="cpu")
    model = build_model(config)
    optimizer = make_optimizer(model, config)
    import torch

    from helpers.system.device import reusing_freed_memory

    scaler = make_scaler(config)
    began = time.perf_counter()
    with reusing_freed_memory(torch.device("cpu")):  # as fit trains
        train_one_epoch(model, TensorSet(data), optimizer, config, 1, None, scaler,
                        progress=False)
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "images_per_s": len(data) / seconds,
            "peak_rss_mib": _peak_mib()}


def json_from_child(arguments: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``python ARGUMENTS`` in a process of its own; the JSON of its last output line.
    If it fails, the error names the command and ends with what it printed to stderr."""
    done = subprocess.run([sys.executable, *arguments], capture_output=True, text=True,
                          env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(arguments)} failed (exit code {done.returncode}):\n"
                           f"{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(counts: list[int], epoch: bool = True) -> dict:
    """Every step for every count, each in its own process."""
    sets = write_sets(counts)
    results: dict = {"size": SIZE, "source_size": SOURCE_SIZE, "batch_size": BATCH,
                     "workers": len(os.sched_getaffinity(0)), "rows": []}
    steps = ("decode", "in_memory", "epoch") if epoch else ("decode", "in_memory")
    for count in counts:
        row: dict = {"images": count}
        with tempfile.TemporaryDirectory(dir=DATA) as cache:
            for step in steps:
                row[step] = json_from_child([__file__, "--measure", step, "--root",
                                             str(sets[count]), "--cache", cache])
                print(f"{count:>6} images {step:<9} {json.dumps(row[step])}", flush=True)
        results["rows"].append(row)
    first = results["rows"][0]
    for row in results["rows"]:
        scale = row["images"] / first["images"]
        row["decode_time_vs_smallest"] = row["decode"]["seconds"] / first["decode"]["seconds"]
        row["images_vs_smallest"] = scale
        if epoch:
            row["epoch_time_vs_smallest"] = row["epoch"]["seconds"] / first["epoch"]["seconds"]
    return results


def epoch_with_and_without_kept_memory(count: int = 1000) -> dict:
    """A fine-tuned epoch over ``count`` images read from disk, each in its own process: with
    freed memory kept for reuse (as ``fit`` runs) and with glibc's malloc left as it is
    (``LESIONKIT_KEEP_FREED_MEMORY=0``), for the time and peak memory of each."""
    root = write_sets([count])[count]
    rows: dict = {"images": count}
    with tempfile.TemporaryDirectory(dir=DATA) as cache:
        for name, keep in (("kept", "1"), ("glibc", "0")):
            rows[name] = json_from_child(
                [__file__, "--measure", "epoch", "--root", str(root), "--cache", cache],
                env={**os.environ, "LESIONKIT_KEEP_FREED_MEMORY": keep})
            print(f"{count:>6} images epoch, {name:<5} {json.dumps(rows[name])}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="1000,5000,10000")
    parser.add_argument("--no-epoch", action="store_true", help="skip the training epochs")
    parser.add_argument("--json", default=None)
    parser.add_argument("--measure", choices=("decode", "in_memory", "epoch"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, Path(args.root), Path(args.cache))))
        return 0
    results = run([int(c) for c in args.counts.split(",")], epoch=not args.no_epoch)
    if args.json:
        write_text(Path(args.json), json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
