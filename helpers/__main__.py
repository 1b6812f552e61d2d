"""``python -m helpers COMMAND [ARGS]``: the kit's command-line programs in one place.

    python -m helpers                  lists the commands
    python -m helpers predict --help   one command's options
"""

from __future__ import annotations

import importlib
import sys

#: Every command: its name and the module whose ``main(argv)`` runs it.
COMMANDS = {
    "train": "helpers.commands.train",
    "predict": "helpers.commands.predict",
    "evaluate": "helpers.commands.evaluate",
    "export": "helpers.commands.export",
    "download": "helpers.commands.download",
    "zoomout": "helpers.commands.zoomout",
    "robustness": "helpers.commands.robustness",
    "ablation": "helpers.commands.ablation",
    "weights": "helpers.commands.weights",
    "colab": "helpers.commands.colab",
    "report": "helpers.report.make",
    "assignment": "helpers.assignment.__main__",
}

SUMMARIES = {
    "train": "train one model of a preset (also under torchrun)",
    "predict": "masks and overlays for your own images",
    "evaluate": "official ISIC scores of a trained model on a folder of images and masks",
    "export": "a trained model as ONNX, checked against PyTorch",
    "download": "the ISIC 2016 Part 1 data, checked",
    "zoomout": "zoomed-out copies of images and masks",
    "robustness": "score trained runs on zoomed-out test images",
    "ablation": "the best recipe's ablation, one ingredient at a time",
    "weights": "fetch and verify the ImageNet MobileNetV2 weights",
    "colab": "set the kit's public address: Colab badges and the notebooks' clone",
    "report": "run the notebooks of a preset and export the report",
    "assignment": "the instructor's side: the student version, grading (runs student code)",
}


def usage() -> str:
    lines = ["usage: python -m helpers COMMAND [--help | ARGS]", "", "commands:"]
    lines += [f"  {name:<11} {SUMMARIES[name]}" for name in COMMANDS]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"ERROR: unknown command {name!r}.\n{usage()}", file=sys.stderr)
        return 2
    command = importlib.import_module(COMMANDS[name])  # only the command asked for is loaded
    sys.argv[0] = f"python -m helpers {name}"  # argparse's usage line names the command so
    return command.main(rest)


if __name__ == "__main__":
    sys.exit(main())
