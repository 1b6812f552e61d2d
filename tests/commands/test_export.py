"""ONNX export: a dynamic batch axis, and the same probabilities as PyTorch on real images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from helpers.commands.export import export_onnx
from helpers.config import TrainConfig
from helpers.decode import load_split
from helpers.evaluate import predict
from helpers.isic2016 import isic2016_split, load_isic2016
from helpers.model import build_model
from helpers.runs import load_run
from helpers.train import fit


@pytest.fixture(scope="module")
def exported(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[Path, Path]:
    splits = load_isic2016(synthetic_root, size=64, val_fraction=0.25)
    config = TrainConfig(epochs=1, batch_size=6, freeze_encoder=False, encoder_lr=1e-4,
                         decoder_lr=1e-3)
    run_dir = tmp_path_factory.mktemp("run")
    fit(build_model(config), splits.train, splits.val, config, run_dir, progress=False)
    return run_dir, export_onnx(run_dir, run_dir / "model.onnx")


def onnx_probabilities(path: Path, images: np.ndarray) -> np.ndarray:
    """Run the ONNX file on uint8 (N, S, S, 3) images, normalised as its metadata says."""
    meta = {p.key: json.loads(p.value) for p in onnx.load(path).metadata_props}
    mean = np.array(meta["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.array(meta["std"], np.float32).reshape(1, 3, 1, 1)
    batch = (images.transpose(0, 3, 1, 2).astype(np.float32) / 255 - mean) / std
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": batch})[0][:, 0]


def check_parity(run_dir: Path, model_path: Path, data) -> None:
    model, config, _ = load_run(run_dir, device="cpu")
    expected = predict(model, data, config)
    for count in (1, len(data)):  # the batch axis is dynamic
        got = onnx_probabilities(model_path, data.images[:count])
        assert got.shape == expected[:count].shape
        assert np.abs(got - expected[:count]).max() <= 1e-4


def test_onnx_matches_pytorch_on_synthetic_images(exported, synthetic_root: Path) -> None:
    run_dir, model_path = exported
    check_parity(run_dir, model_path, load_split(isic2016_split(synthetic_root, "test"), 64,
                                                 progress=False))


def test_onnx_matches_pytorch_on_real_images(exported, real_root: Path) -> None:
    run_dir, model_path = exported
    data = load_split(isic2016_split(real_root, "test"), 64, progress=False)
    check_parity(run_dir, model_path, data.subset(range(12)))


def test_metadata_names_the_input(exported) -> None:
    _, model_path = exported
    model = onnx.load(model_path)
    meta = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert meta["image_size"] == 64 and len(meta["mean"]) == 3
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["probability"]


def test_the_file_names_no_folder_of_the_machine_that_exported_it(exported) -> None:
    run_dir, model_path = exported
    content = model_path.read_bytes()
    repository = Path(__file__).resolve().parents[2]
    for folder in (repository, run_dir, Path.home()):
        assert str(folder).encode() not in content, folder
    assert b"stack_trace" not in content


def test_an_export_that_differs_from_pytorch_is_not_written(exported, tmp_path: Path,
                                                           monkeypatch) -> None:
    import helpers.commands.export as export

    run_dir, _ = exported
    monkeypatch.setattr(export, "TOLERANCE", -1.0)  # no file can pass: as if it differed
    with pytest.raises(export.ExportError, match="other probabilities than PyTorch.*nothing "
                                                 "was written"):
        export_onnx(run_dir, tmp_path / "model.onnx")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("decoder", ["upsample", "report_b"])
def test_onnx_matches_pytorch_for_the_other_decoders(synthetic_root: Path, tmp_path: Path,
                                                     decoder: str) -> None:
    splits = load_isic2016(synthetic_root, size=64, val_fraction=0.25)
    config = TrainConfig(epochs=1, batch_size=6, freeze_encoder=True, decoder_lr=1e-3,
                         decoder=decoder)
    fit(build_model(config), splits.train, splits.val, config, tmp_path, progress=False)
    check_parity(tmp_path, export_onnx(tmp_path, tmp_path / "model.onnx"), splits.val)
