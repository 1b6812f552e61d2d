"""fit: history, checkpoints, resume, determinism, augmentation."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import train
from helpers.config import TrainConfig
from helpers.errors import RunFolderError
from helpers.isic2016 import load_isic2016
from helpers.model import build_model
from helpers.runs import HISTORY_COLUMNS, checkpoints, load_checkpoint, load_trained
from helpers.system import device
from helpers.train import fit

FINE_TUNED = TrainConfig(epochs=1, batch_size=6, freeze_encoder=False, encoder_lr=1e-4,
                         decoder_lr=1e-3)


@pytest.fixture(scope="module")
def splits(synthetic_root: Path):
    return load_isic2016(synthetic_root, size=64, val_fraction=0.25)


def run(splits, out: Path, epochs: int = 2, resume: bool = False, **settings) -> pd.DataFrame:
    config = TrainConfig(epochs=epochs, batch_size=6, freeze_encoder=False, encoder_lr=1e-4,
                         decoder_lr=1e-3, **settings)
    return fit(build_model(config), splits.train, splits.val, config, out, resume=resume,
               progress=False)


def test_history_and_checkpoints_are_written(splits, tmp_path: Path) -> None:
    history = run(splits, tmp_path)
    assert list(history.columns) == HISTORY_COLUMNS
    assert list(history["epoch"]) == [1, 2]
    on_disk = pd.read_csv(tmp_path / "history.csv")
    pd.testing.assert_frame_equal(on_disk, history, check_dtype=False)
    assert (history["lr_encoder"] == 1e-4).all() and (history["lr_decoder"] == 1e-3).all()
    assert (history["seconds"] > 0).all()
    assert history[["val_iou", "val_dice"]].stack().between(0, 1).all()
    state = load_checkpoint(tmp_path / "best.pt", build_model(FINE_TUNED))
    assert state["val_dice"] == history["val_dice"].max()
    assert not list(tmp_path.glob(".*.tmp.*"))  # no temporary file left behind


def test_loading_the_best_model_of_a_run_that_crashed_before_best_pt_takes_last_pt(
        splits, tmp_path: Path, monkeypatch) -> None:
    save = checkpoints.save_checkpoint

    def crash_before_the_best(state: dict, path: Path) -> None:
        if path.name == "best.pt":
            raise KeyboardInterrupt("power cut")
        save(state, path)

    monkeypatch.setattr(checkpoints, "save_checkpoint", crash_before_the_best)
    with pytest.raises(KeyboardInterrupt):
        run(splits, tmp_path, epochs=1)  # epoch 1 is the best so far: best.pt was due
    monkeypatch.setattr(checkpoints, "save_checkpoint", save)
    assert not (tmp_path / "best.pt").exists()
    model, epoch = load_trained(FINE_TUNED, tmp_path, "best")  # the run looks finished
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert epoch == 1 and all(torch.equal(value, last["model"][key])
                              for key, value in model.state_dict().items())
    assert not (tmp_path / "best.pt").exists()  # loading writes nothing (read-only folders)
    torch.save({"model": last["model"], "epoch": 1, "val_dice": 0.5}, tmp_path / "best.pt")
    (tmp_path / "last.pt").unlink()  # a best.pt shared alone still loads
    assert load_trained(FINE_TUNED, tmp_path, "best")[1] == 1


def test_temporary_files_of_a_killed_writer_are_removed_when_training_starts(
        splits, tmp_path: Path) -> None:
    leftover = tmp_path / ".last.k1ll3d.tmp.pt"  # as helpers.system.atomic names them
    tmp_path.mkdir(exist_ok=True)
    leftover.write_bytes(b"half a checkpoint")
    run(splits, tmp_path, epochs=1)
    assert not leftover.exists()


def test_a_model_built_from_other_settings_is_refused(splits, tmp_path: Path) -> None:
    frozen = dataclasses.replace(FINE_TUNED, freeze_encoder=True, encoder_lr=0.0)
    with pytest.raises(ValueError, match="freeze_encoder: True in the model, False in the "
                                         "settings.*build_model"):
        fit(build_model(frozen), splits.train, splits.val, FINE_TUNED, tmp_path,
            progress=False)
    upsample = dataclasses.replace(FINE_TUNED, decoder="upsample")
    with pytest.raises(ValueError, match="decoder: 'upsample' in the model, 'transposed'"):
        fit(build_model(upsample), splits.train, splits.val, FINE_TUNED, tmp_path,
            progress=False)
    assert not (tmp_path / "config.json").exists()


def test_same_seed_same_history(splits, tmp_path: Path) -> None:
    first = run(splits, tmp_path / "a", seed=7)
    second = run(splits, tmp_path / "b", seed=7)
    columns = [c for c in HISTORY_COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(first[columns], second[columns])
    other = run(splits, tmp_path / "c", seed=8)
    assert not first["train_loss"].equals(other["train_loss"])


@pytest.mark.skipif(device._glibc_mallopt() is None, reason="glibc's malloc only (Linux)")
def test_keeping_freed_memory_changes_nothing_in_the_history(splits, tmp_path: Path,
                                                             monkeypatch) -> None:
    kept = run(splits, tmp_path / "kept")
    monkeypatch.setattr(device, "_glibc_mallopt", lambda: None)  # glibc's malloc untouched
    plain = run(splits, tmp_path / "plain")
    columns = [c for c in HISTORY_COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(kept[columns], plain[columns], check_exact=True)


def test_resume_continues_the_same_history(splits, tmp_path: Path) -> None:
    straight = run(splits, tmp_path / "straight", epochs=3)
    run(splits, tmp_path / "resumed", epochs=1)
    resumed = run(splits, tmp_path / "resumed", epochs=3, resume=True)
    columns = [c for c in HISTORY_COLUMNS if c != "seconds"]
    assert list(resumed["epoch"]) == [1, 2, 3]
    pd.testing.assert_frame_equal(straight[columns], resumed[columns], check_dtype=False)
    assert_same_checkpoints(tmp_path / "straight", tmp_path / "resumed")


def assert_same_checkpoints(first: Path, second: Path) -> None:
    """best.pt and last.pt of two runs hold the same epochs and weights."""
    for name in ("best.pt", "last.pt"):
        a, b = (torch.load(folder / name, weights_only=True) for folder in (first, second))
        assert a["epoch"] == b["epoch"], name
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), name


def test_a_crash_between_last_and_best_checkpoint_is_repaired_on_resume(
        splits, tmp_path: Path, monkeypatch) -> None:
    straight = run(splits, tmp_path / "straight", epochs=3)
    best_epoch = int(straight.loc[straight["val_dice"].idxmax(), "epoch"])
    save = checkpoints.save_checkpoint

    def crash_before_the_best(state: dict, path: Path) -> None:
        if path.name == "best.pt" and state["epoch"] == best_epoch:
            raise KeyboardInterrupt("power cut")
        save(state, path)

    monkeypatch.setattr(checkpoints, "save_checkpoint", crash_before_the_best)
    with pytest.raises(KeyboardInterrupt):
        run(splits, tmp_path / "crashed", epochs=3)
    monkeypatch.setattr(checkpoints, "save_checkpoint", save)
    # the crash came after last.pt: that epoch is finished and will not be trained again
    assert torch.load(tmp_path / "crashed" / "last.pt", weights_only=True)["epoch"] == best_epoch
    resumed = run(splits, tmp_path / "crashed", epochs=3, resume=True)
    columns = [c for c in HISTORY_COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(straight[columns], resumed[columns], check_dtype=False)
    assert_same_checkpoints(tmp_path / "straight", tmp_path / "crashed")


def test_a_resumed_run_goes_on_with_the_float16_loss_scale(splits, tmp_path: Path,
                                                            monkeypatch) -> None:
    # float16 autocast (a GPU without bfloat16) scales the loss; here an enabled scaler on
    # the CPU whose scale doubles after every step stands in for it
    monkeypatch.setattr(train, "make_scaler", lambda config: torch.amp.GradScaler(
        "cpu", init_scale=2.0 ** 4, growth_interval=1))
    run(splits, tmp_path / "straight", epochs=3)
    run(splits, tmp_path / "resumed", epochs=1)
    run(splits, tmp_path / "resumed", epochs=3, resume=True)
    straight, resumed = (torch.load(tmp_path / name / "last.pt", weights_only=True)["scaler"]
                         for name in ("straight", "resumed"))
    steps = 3 * -(-len(splits.train) // 6)  # three epochs of batches of 6
    assert straight["scale"] == 2.0 ** (4 + steps)
    assert resumed == straight


def test_the_float16_path_forced_on_the_cpu_trains_and_resumes_its_loss_scale(
        splits, tmp_path: Path, monkeypatch) -> None:
    # the T4's path for real (float16 autocast, GradScaler), on the CPU: LESIONKIT_PRECISION
    monkeypatch.setenv(device.PRECISION_VARIABLE, "float16")
    straight = run(splits, tmp_path / "straight", epochs=2)
    run(splits, tmp_path / "resumed", epochs=1)
    first = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["scaler"]
    resumed = run(splits, tmp_path / "resumed", epochs=2, resume=True)
    scalers = [torch.load(tmp_path / name / "last.pt", weights_only=True)["scaler"]
               for name in ("straight", "resumed")]
    steps = -(-len(splits.train) // 6)  # batches of 6 in an epoch
    assert first["scale"] == 2.0 ** 16 and first["_growth_tracker"] == steps  # no overflow
    assert scalers[0]["_growth_tracker"] == 2 * steps  # counted on from epoch 1's state
    assert scalers[1] == scalers[0]
    columns = [c for c in HISTORY_COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(straight[columns], resumed[columns], check_dtype=False)
    assert_same_checkpoints(tmp_path / "straight", tmp_path / "resumed")
    machine = json.loads((tmp_path / "resumed" / "machine.json").read_text())
    assert [entry["precision"] for entry in machine["trained"]] == [
        "float16 autocast, loss scaling"] * 2  # epoch 1, and epoch 2 on resuming


def test_channels_last_is_used_as_set_except_on_a_cuda_gpu(monkeypatch) -> None:
    config = dataclasses.replace(FINE_TUNED, device="cpu")
    assert train.placement(config) == (torch.device("cpu"), True)
    assert train.placement(dataclasses.replace(config, channels_last=False))[1] is False
    model = build_model(config)
    assert model.decoder.head[0].weight.is_contiguous(memory_format=torch.channels_last)
    monkeypatch.setattr(train, "resolve_device", lambda name: torch.device("cuda"))
    assert train.placement(config) == (torch.device("cuda"), False)  # NCHW: faster there


def test_existing_run_is_never_overwritten(splits, tmp_path: Path) -> None:
    run(splits, tmp_path, epochs=1)
    with pytest.raises(FileExistsError, match="already holds a run"):
        run(splits, tmp_path, epochs=1)
    with pytest.raises(RunFolderError, match="trained with other settings .*seed: 0 there, 5 now"):
        run(splits, tmp_path, epochs=2, resume=True, seed=5)


def test_frozen_feature_cache_matches_the_full_model(splits, tmp_path: Path) -> None:
    config = TrainConfig(epochs=2, batch_size=6, freeze_encoder=True, decoder_lr=1e-2)
    cached = fit(build_model(config), splits.train, splits.val, config, tmp_path / "a",
                 progress=False)
    config = dataclasses.replace(config, cache_encoder_features=False)
    full = fit(build_model(config), splits.train, splits.val, config, tmp_path / "b",
               progress=False)
    pd.testing.assert_series_equal(cached["train_loss"], full["train_loss"], rtol=1e-4)
    # The features agree to float precision, but convolution kernels chosen per batch size
    # and thread count differ in the last bits, and two epochs of training amplify that; a
    # thresholded Dice can flip pixels at 0.5, so compare the continuous validation values.
    for column in ("val_loss", "val_soft_dice"):
        pd.testing.assert_series_equal(cached[column], full[column], rtol=1e-2)


def test_augmented_training_runs(splits, tmp_path: Path) -> None:
    history = run(splits, tmp_path, epochs=1, augment=True, loss="bce_dice")
    assert len(history) == 1 and history["train_loss"].notna().all()


def test_a_crashed_run_loses_nothing_and_resumes(splits, tmp_path: Path, monkeypatch) -> None:
    import helpers.train as training
    straight = run(splits, tmp_path / "straight", epochs=3)
    real_evaluate, calls = training.validate, []

    def crash_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("power cut")
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(training, "validate", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run(splits, tmp_path / "crashed", epochs=3)
    monkeypatch.setattr(training, "validate", real_evaluate)
    assert len(pd.read_csv(tmp_path / "crashed" / "history.csv")) == 1
    resumed = run(splits, tmp_path / "crashed", epochs=3, resume=True)
    columns = [c for c in HISTORY_COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(straight[columns], resumed[columns], check_dtype=False)


def test_nan_pixels_stop_training_naming_epoch_and_batch(splits, tmp_path: Path) -> None:
    from helpers.errors import NonFiniteLossError
    bad = splits.train.subset(range(len(splits.train)))
    bad.images = bad.images.astype(np.float32)
    bad.images[:] = np.nan
    config = TrainConfig(epochs=1, batch_size=6, freeze_encoder=False, encoder_lr=1e-4,
                         decoder_lr=1e-3)
    with pytest.raises(NonFiniteLossError, match=r"Epoch 1, batch 1 of 3: the training loss "
                                                 r"is nan"):
        fit(build_model(config), bad, splits.val, config, tmp_path, progress=False)
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "best.pt").exists()


def test_a_non_finite_loss_never_overwrites_good_checkpoints(splits, tmp_path: Path,
                                                             monkeypatch) -> None:
    import helpers.train as training
    run(splits, tmp_path, epochs=1)
    last, best = (tmp_path / "last.pt").read_bytes(), (tmp_path / "best.pt").read_bytes()
    monkeypatch.setattr(training, "segmentation_loss", lambda logits, *a: logits.sum() * np.inf)
    with pytest.raises(training.NonFiniteLossError, match="Epoch 2, batch 1"):
        run(splits, tmp_path, epochs=2, resume=True)
    assert (tmp_path / "last.pt").read_bytes() == last
    assert (tmp_path / "best.pt").read_bytes() == best
    assert list(pd.read_csv(tmp_path / "history.csv")["epoch"]) == [1]


def test_a_last_batch_of_one_image_trains(synthetic_root: Path, tmp_path: Path) -> None:
    # 32x32 input: the bottleneck is 1x1, so BatchNorm cannot train on a batch of one image.
    data = load_isic2016(synthetic_root, size=32, val_fraction=0.25)  # 18 training images
    config = TrainConfig(epochs=1, batch_size=17, freeze_encoder=False, encoder_lr=1e-4,
                         decoder_lr=1e-3)
    history = fit(build_model(config), data.train, data.val, config, tmp_path, progress=False)
    assert len(history) == 1 and np.isfinite(history["train_loss"]).all()


@pytest.mark.parametrize(("settings", "message"), [
    ({"batch_size": 0}, "batch_size must be a whole number from 1 to 4096, not 0"),
    ({"epochs": 0}, "epochs must be a whole number from 1 to 10,000"),
    ({"epochs": 2.5}, "epochs must be a whole number from 1 to 10,000"),
    ({"seed": 2**32}, "seed must be a whole number from 0 to 2**32 - 1"),
    ({"decoder_lr": -0.1}, "decoder_lr must be a number from 0 to 1"),
    ({"decoder_lr": float("nan")}, "decoder_lr must be a number from 0 to 1"),
    ({"encoder_lr": 1e-4}, "encoder_lr must be 0 when the encoder is frozen"),
    ({"loss": "dice"}, "loss must be one of bce, bce_dice, not 'dice'"),
    ({"device": "gpu"}, "device is not one of auto, cpu, cuda, cuda:N, mps"),
    ({"decoder": "unet"}, "decoder must be one of transposed, upsample, report_b"),
    ({"schedule": "onecycle"}, "schedule must be one of constant, cosine"),
])
def test_invalid_settings_are_refused_before_any_work(settings: dict, message: str) -> None:
    values = {"epochs": 1, "batch_size": 2, "freeze_encoder": True, "decoder_lr": 1e-2,
              **settings}
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig(**values)


def test_cosine_schedule_decays_from_the_set_rates_and_resumes_identically(
        splits, tmp_path: Path, monkeypatch) -> None:
    import helpers.train as training
    straight = run(splits, tmp_path / "straight", epochs=4, schedule="cosine")
    assert straight["lr_decoder"].tolist() == pytest.approx([1e-3, 1e-3 * (1 + 0.5 ** 0.5) / 2,
                                                             5e-4, 1e-3 * (1 - 0.5 ** 0.5) / 2])
    assert (straight["lr_encoder"] / straight["lr_decoder"]).tolist() == pytest.approx([0.1] * 4)
    real_validate, calls = training.validate, []

    def stop_in_epoch_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("stopped")
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(training, "validate", stop_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        run(splits, tmp_path / "stopped", epochs=4, schedule="cosine")
    monkeypatch.setattr(training, "validate", real_validate)
    resumed = run(splits, tmp_path / "stopped", epochs=4, resume=True, schedule="cosine")
    columns = [c for c in HISTORY_COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(resumed[columns], straight[columns])


@pytest.mark.parametrize("decoder", ["upsample", "report_b"])
def test_other_decoders_train_with_zoom_augmentation(splits, tmp_path: Path, decoder: str
                                                     ) -> None:
    history = run(splits, tmp_path, epochs=1, decoder=decoder, scale_augment=True,
                  augment=True)
    assert np.isfinite(history[["train_loss", "val_loss"]]).all().all()


def test_a_run_made_before_a_setting_existed_still_resumes(splits, tmp_path: Path) -> None:
    run(splits, tmp_path, epochs=1)
    config_file = tmp_path / "config.json"
    saved = json.loads(config_file.read_text())
    for newer in ("decoder", "schedule", "scale_augment"):
        del saved[newer]  # as an older kit wrote it
    config_file.write_text(json.dumps(saved))
    history = run(splits, tmp_path, epochs=2, resume=True)
    assert list(history["epoch"]) == [1, 2]


def test_a_cosine_run_cannot_be_extended_to_more_epochs(splits, tmp_path: Path) -> None:
    run(splits, tmp_path, epochs=2, schedule="cosine")
    with pytest.raises(RunFolderError, match="epochs: 2 there, 3 now"):
        run(splits, tmp_path, epochs=3, resume=True, schedule="cosine")


@pytest.mark.parametrize(("frozen", "compiled"), [(True, "decoder"), (False, "model")])
def test_compile_setting_compiles_what_trains(splits, tmp_path: Path, monkeypatch,
                                              frozen: bool, compiled: str) -> None:
    # What torch.compile itself does is measured by the benchmark (minutes of compiling);
    # here: fit compiles the decoder alone when encoder features are cached, else the model.
    seen = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda module, *a, **k: seen.append(module))
    config = TrainConfig(epochs=1, batch_size=6, freeze_encoder=frozen,
                         encoder_lr=0.0 if frozen else 1e-4, decoder_lr=1e-3, compile=True)
    model = build_model(config)
    fit(model, splits.train, splits.val, config, tmp_path, progress=False)
    assert seen == [model.decoder if compiled == "decoder" else model]
    assert json.loads((tmp_path / "config.json").read_text())["compile"] is True
