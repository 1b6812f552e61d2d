"""A trained model as an ONNX file, for use outside PyTorch (onnxruntime, other languages).

    python -m helpers export --run reports/report_a/runs/fine_tuned --out model.onnx

The file takes ``image``: float32 (batch, 3, S, S), RGB scaled to [0, 1] then normalised with
the ImageNet mean and standard deviation, S the run's image size; and gives ``probability``:
float32 (batch, 1, S, S), the lesion probability of each pixel. The batch axis is dynamic.
S, the mean and the standard deviation are also stored in the file's metadata
(``image_size``, ``mean``, ``std``), and so is how to turn probabilities into a mask as
notebook 04 scored the model (``threshold``, ``test_time_flips``: average the probabilities
of the image and its three flips first; 0.5 and false without the run's ``scoring.json``).
The checkpoint is the one notebook 04 scored, else the last one, unless given.

Exported with PyTorch's current exporter (``torch.onnx.export(dynamo=True)``) at opset
:data:`OPSET`; every export is checked: the file must pass ``onnx.checker`` and give
PyTorch's probabilities (within 1e-4) in onnxruntime. The exporter's debugging notes on each
node (Python stack traces, which name the folders of the machine that exported it) are left
out of the file.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import onnx
import onnxruntime
import torch
from torch import Tensor, nn

from helpers.batches import IMAGENET_MEAN, IMAGENET_STD
from helpers.commands.cli import run_command
from helpers.errors import ExportError
from helpers.runs.scoring import load_scored_run
from helpers.system.atomic import atomic_path
from helpers.system.writable import output_file

#: The ONNX operator set the file uses (onnxruntime 1.17 and newer run it).
OPSET = 20
#: How far the ONNX file's probabilities may be from PyTorch's on the check's input.
TOLERANCE = 1e-4


class Probabilities(nn.Module):
    """A segmentation model whose output is the lesion probability instead of the logit."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> Tensor:
        return torch.sigmoid(self.model(image))


def export_onnx(run_dir: str | Path, out_path: str | Path, checkpoint: str | None = None,
                threshold: float | None = None, flips: bool | None = None) -> Path:
    """Write the run's model to ``out_path`` as ONNX (dynamic batch); return the path.
    ``checkpoint``, ``threshold`` and ``flips`` not given are those notebook 04 scored the
    model with (:func:`helpers.evaluate.load_scored_run`)."""
    output_file(out_path, what="ONNX file")
    model, _, size, scoring = load_scored_run(run_dir, checkpoint, threshold, flips, "cpu")
    print(f"Exporting the {scoring.describe()}")
    wrapped = Probabilities(model.to(memory_format=torch.contiguous_format)).eval()
    example = torch.zeros(2, 3, size, size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    out_path = Path(out_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(wrapped, (example,), input_names=["image"],
                                    output_names=["probability"], dynamo=True, verbose=False,
                                    dynamic_shapes={"image": {0: batch}},
                                    opset_version=OPSET)
    proto = program.model_proto
    _drop_node_notes(proto)
    for key, value in (("image_size", size), ("mean", list(IMAGENET_MEAN)),
                       ("std", list(IMAGENET_STD)), ("threshold", scoring.threshold),
                       ("test_time_flips", scoring.flips)):
        proto.metadata_props.add(key=key, value=json.dumps(value))
    onnx.checker.check_model(proto)
    _check_against_pytorch(proto, wrapped, size, out_path)
    with atomic_path(out_path) as tmp:
        onnx.save(proto, tmp)
    return out_path


def _drop_node_notes(proto: onnx.ModelProto) -> None:
    """Remove the exporter's notes on every node, in the graph, its subgraphs and functions."""
    def graphs(graph: onnx.GraphProto):
        yield graph
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    yield from graphs(attribute.g)
                for sub in attribute.graphs:
                    yield from graphs(sub)

    nodes = [node for graph in graphs(proto.graph) for node in graph.node]
    nodes += [node for function in proto.functions for node in function.node]
    for node in nodes:
        del node.metadata_props[:]
        node.doc_string = ""


def _check_against_pytorch(proto: onnx.ModelProto, model: nn.Module, size: int,
                           out_path: Path) -> None:
    """Run the file in onnxruntime on a fixed random batch of three and compare."""
    images = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(images).numpy()
    session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": images.numpy()})[0]
    difference = float(abs(got - expected).max())
    if got.shape != expected.shape or not difference <= TOLERANCE:
        raise ExportError(f"The ONNX export for {out_path} gives other probabilities than "
                          f"PyTorch (largest difference {difference:.2g}, allowed {TOLERANCE});"
                          " nothing was written.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="a trained model's run folder")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--checkpoint", choices=("last", "best"), default=None,
                        help="default: the one notebook 04 scored, else last")
    parser.add_argument("--threshold", type=float, default=None,
                        help="stored in the metadata (default: the one notebook 04 scored the "
                             "model with, else 0.5)")
    parser.add_argument("--flips", action=argparse.BooleanOptionalAction, default=None,
                        help="stored in the metadata: average over the four flips (default: as "
                             "notebook 04 scored the model, else none)")
    return run_command(parser, export, argv)


def export(args: argparse.Namespace) -> int:
    path = export_onnx(Path(args.run).resolve(), Path(args.out).resolve(), args.checkpoint,
                       args.threshold, args.flips)
    print(f"Wrote {args.out}")
    return 0 if path.exists() else 1


if __name__ == "__main__":
    sys.exit(main())
