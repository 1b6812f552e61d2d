"""Train one model of a preset from the command line, on one process or many.

    python -m helpers train --preset best --model fine_tuned
    torchrun --nproc_per_node 2 -m helpers train --preset best --model fine_tuned

The model is trained exactly as notebook 02 or 03 trains it (same settings, same data, same
run folder ``<output>/runs/<model>``), and a stopped run resumes where it stopped. Under
``torchrun`` each machine's first process decodes the data into the cache while the others
wait and then read it, and each process trains on its share of every batch
(:mod:`helpers.system.distributed`); the processes of a machine share its ``in_memory_gb``. The
notebooks then find the finished run and go straight on.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from helpers.commands.cli import run_command
from helpers.config import MODEL_NAMES, load_config
from helpers.isic2016 import load_splits
from helpers.model import build_model
from helpers.system import distributed
from helpers.system.device import resolve_device
from helpers.system.writable import output_folder
from helpers.train import check_batch_for_processes, fit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="report_a")
    parser.add_argument("--model", choices=MODEL_NAMES, required=True)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--output-dir", default=None, help="default: reports/<preset>")
    parser.add_argument("--overrides", default=None, type=json.loads,
                        help='settings to change as JSON, e.g. \'{"train": {"epochs": 5}}\'')
    return run_command(parser, train, argv)


def train(args: argparse.Namespace) -> int:
    config = load_config(args.preset, data_root=args.data_root,
                         output_dir=args.output_dir, overrides=args.overrides)
    settings = config.model(args.model)
    rank = distributed.start(resolve_device(settings.device))
    # what can be checked without the data is checked before decoding it
    check_batch_for_processes(rank, settings.batch_size)
    problem = None
    if rank.is_main:  # the main process alone writes the run folder
        _, problem = distributed.attempt(
            lambda: output_folder(config.run_dir(args.model), what="run folder"))
    distributed.raise_everywhere(rank, problem)
    # Every process holds its own copy of a split in RAM: the machine's processes share
    # the RAM limit, and a split too large for a share is read from the disk cache.
    config = dataclasses.replace(config, in_memory_gb=config.in_memory_gb / rank.local_size)
    splits = distributed.local_main_first(rank, lambda: load_splits(config, progress=False))
    history = fit(build_model(settings), splits.train, splits.val, settings,
                  config.run_dir(args.model), resume=True)
    last = history.iloc[-1]
    print(f"{args.model}: {int(last['epoch'])} epochs, training loss {last['train_loss']:.4f}, "
          f"validation Dice {last['val_dice']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
