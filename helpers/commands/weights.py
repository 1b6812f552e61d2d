"""Fetch and verify the ImageNet MobileNetV2 weights (set-up runs this): where they are,
or the steps to put them there by hand.

    python -m helpers weights
"""

from __future__ import annotations

import argparse
import sys

from helpers.commands.cli import run_command
from helpers.system.weights import ensure_imagenet_weights


def parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=__doc__.split("\n")[0])


def fetch_weights(args: argparse.Namespace) -> int:
    print(ensure_imagenet_weights())
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(parser(), fetch_weights, argv)


if __name__ == "__main__":
    sys.exit(main())
