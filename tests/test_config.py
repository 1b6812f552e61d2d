"""The run configuration: presets as differences from report A, checked before any work."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from helpers.config import (
    PRESET_DIR,
    REPO_ROOT,
    RUN_KEYS,
    TRAIN_KEYS,
    available_presets,
    load_config,
    resolve_data_root,
)
from helpers.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("preset", available_presets())
def test_every_preset_loads(preset: str) -> None:
    config = load_config(preset)
    assert config.preset == preset and config.frozen.freeze_encoder
    assert not config.fine_tuned.freeze_encoder and config.frozen.encoder_lr == 0


def test_report_a_is_the_base_with_the_reports_settings() -> None:
    config = load_config("report_a")
    assert (config.image_size, config.validation, config.seed) == (128, "test", 0)
    for name in ("frozen", "fine_tuned"):
        settings = config.model(name)
        assert (settings.epochs, settings.batch_size, settings.loss) == (50, 45, "bce")
    assert config.frozen.decoder_lr == 0.01
    assert (config.fine_tuned.encoder_lr, config.fine_tuned.decoder_lr) == (1e-4, 1e-2)


def test_other_presets_list_only_their_differences() -> None:
    b = load_config("report_b")
    assert (b.frozen.epochs, b.frozen.batch_size, b.fine_tuned.encoder_lr) == (25, 32, 1e-3)
    assert b.image_size == 128 and b.validation == "test"  # inherited from report_a.yaml
    text = (PRESET_DIR / "report_b.yaml").read_text()
    assert "image_size" not in text and "loss" not in text


def test_a_misspelt_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    preset = write(tmp_path / "mine.yaml", "image_sise: 256\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml: unknown key 'image_sise'"):
        load_config(preset)
    nested = write(tmp_path / "nested.yaml", "frozen:\n  decoder_rl: 0.1\n")
    with pytest.raises(ConfigError, match=r"nested\.yaml: unknown key 'frozen\.decoder_rl'"):
        load_config(nested)


def test_a_misspelt_override_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"overrides: unknown key 'train\.epoch'"):
        load_config("smoke", overrides={"train": {"epoch": 3}})


def test_run_wide_settings_inside_a_model_block_say_where_they_belong(tmp_path) -> None:
    preset = write(tmp_path / "seeded.yaml", "fine_tuned:\n  seed: 3\n")
    with pytest.raises(ConfigError, match="set it at the top level"):
        load_config(preset)


@pytest.mark.parametrize(("text", "message"), [
    ("image_size: 100\n", "image_size must be a multiple of 32 from 32 to 1024"),
    ("image_size: 0\n", "image_size must be a multiple of 32 from 32 to 1024"),
    ("image_size: 32000\n", r"image_size must be a multiple of 32 from 32 to 1024 \(32, 64, "
                            r"\.\.\., 128, 256\), not 32000 \(at 32000x32000 one decoded image "
                            r"with its mask alone takes 3\.81 GiB\)"),
    ("image_size: 1056\n", "image_size must be a multiple of 32 from 32 to 1024"),
    ("seed: -1\n", r"seed must be a whole number from 0 to 2\*\*32 - 1 \(4294967295\), not -1"),
    ("seed: 1000000000000000000000000000000\n", r"seed must be a whole number from 0 to 2\*\*32"),
    ("title: ''\n", "title must be a text of 1 to 200 characters"),
    (f"title: {'x' * 201}\n", "title must be a text of 1 to 200 characters"),
    ("sample_ids: [" + ", ".join(["ISIC_1"] * 21) + "]\n",
     "sample_ids must be a list of at most 20 image ids"),
    ("n_random_samples: 21\n", "n_random_samples must be a whole number from 0 to 20"),
    ("in_memory_gb: 1e6\n", "in_memory_gb must be a number of GiB from 0 to 1024"),
    ("max_images: 2000000\n", "max_images must be null or a whole number from 1 to 1,000,000"),
    ("device: cuda:1000000000000000\n", "device is not one of"),
    ("train:\n  epochs: 100000\n", r"train\.epochs must be a whole number from 1 to 10,000"),
    ("train:\n  eval_batch_size: 5000\n", r"train\.eval_batch_size must be a whole number "
                                          "from 1 to 4096"),
    ("validation: tset\n", "validation must be one of holdout, test, not 'tset'"),
    ("val_fraction: 1.0\n", "val_fraction must be a number between 0 and 1"),
    ("max_images: 0\n", "max_images must be null or a whole number"),
    ("train:\n  batch_size: 0\n", r"train\.batch_size must be a whole number from 1 to 4096"),
    ("frozen:\n  decoder_lr: -1\n", r"frozen\.decoder_lr must be a number from 0 to 1, not -1"),
    ("fine_tuned:\n  encoder_lr: -1e-4\n", r"fine_tuned\.encoder_lr must be a number from 0 to 1"),
    ("frozen:\n  encoder_lr: 0.001\n", r"frozen\.encoder_lr must be 0 when the encoder is"),
    ("fine_tuned:\n  encoder_lr: 1e9\n", r"fine_tuned\.encoder_lr must be a number from 0 to 1"),
    ("train:\n  loss: dice\n", r"train\.loss must be one of bce, bce_dice"),
    ("device: gpu\n", "device is not one of auto, cpu, cuda, cuda:N, mps"),
    ("train:\n  decoder: deconv\n", r"train\.decoder must be one of transposed, upsample"),
    ("train:\n  schedule: step\n", r"train\.schedule must be one of constant, cosine"),
    ("train:\n  scale_augment: 1\n", r"train\.scale_augment must be true or false"),
    ("test_time_flips: yes please\n", "test_time_flips must be true or false"),
    ("threshold: 1.5\n", "threshold must be a number between 0 and 1, or \"validation\""),
    ("threshold: validation\n", "threshold can be chosen on validation images only with "
                                "validation: holdout"),
    ("sample_ids: []\nn_random_samples: 0\n", "n_random_samples must be >= 1 when "
                                              "sample_ids is empty"),
])
def test_invalid_values_are_refused_naming_file_and_key(tmp_path: Path, text: str,
                                                        message: str) -> None:
    preset = write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError, match=r"bad\.yaml: " + message):
        load_config(preset)


def test_unknown_preset_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError, match="Unknown preset 'nope'.*report_a"):
        load_config("nope")


def test_overrides_change_one_model_or_both() -> None:
    config = load_config("report_a", overrides={"train": {"epochs": 3},
                                                "fine_tuned": {"encoder_lr": 1e-3}})
    assert config.frozen.epochs == config.fine_tuned.epochs == 3
    assert config.fine_tuned.encoder_lr == 1e-3 and config.frozen.decoder_lr == 0.01


def test_the_config_is_frozen() -> None:
    config = load_config("smoke")
    with pytest.raises(AttributeError):
        config.seed = 3  # type: ignore[misc]


def test_data_root_explicit_then_environment_then_default(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LESIONKIT_ISIC2016", str(tmp_path / "from_env"))
    assert load_config("report_a", data_root=tmp_path / "given").data_root == tmp_path / "given"
    assert load_config("report_a").data_root == tmp_path / "from_env"
    assert load_config("demo").data_root == REPO_ROOT / "data" / "synthetic"  # its own
    monkeypatch.delenv("LESIONKIT_ISIC2016")
    assert load_config("report_a").data_root == REPO_ROOT / "data" / "isic2016"
    assert resolve_data_root("elsewhere") == REPO_ROOT / "elsewhere"


def test_run_folders_are_spelled_once() -> None:
    config = load_config("smoke", output_dir="reports/x")
    assert config.run_dir("frozen") == REPO_ROOT / "reports" / "x" / "runs" / "frozen"
    with pytest.raises(KeyError):
        config.run_dir("model1")


def test_notebooks_set_no_settings_of_their_own() -> None:
    # Defaults live in presets/ alone: the parameters cell names the preset, the data folder
    # (None: resolved as everywhere else), the output folder and overrides; nothing else.
    # 05 scores a finished run on other images: it has no preset, and its threshold and
    # flips are its own parameters.
    settings = (set(RUN_KEYS) | set(TRAIN_KEYS)) - {"data_root"}
    for path in sorted((REPO_ROOT / "notebooks").glob("0[1-4]_*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            tree = ast.parse(cell.source)
            assigned = {target.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
                        for target in node.targets if isinstance(target, ast.Name)}
            assert not assigned & settings, (path.name, assigned & settings)
            if "parameters" in cell.metadata.get("tags", []):
                assert assigned == {"preset", "data_root", "output_dir", "overrides"}


def test_setting_values_appear_once_in_the_presets() -> None:
    # Each report A value is written in report_a.yaml only; other presets hold differences.
    base = yaml.safe_load((PRESET_DIR / "report_a.yaml").read_text())
    for preset in available_presets():
        if preset == "report_a":
            continue
        values = yaml.safe_load((PRESET_DIR / f"{preset}.yaml").read_text())
        for key, value in values.items():
            if isinstance(value, dict):
                same = {k for k, v in value.items() if base.get(key, {}).get(k) == v}
            else:
                same = {key} if base.get(key) == value else set()
            assert not same, f"{preset}.yaml repeats report_a.yaml's {sorted(same)}"


def test_a_later_train_setting_wins_over_the_bases_model_blocks(tmp_path: Path) -> None:
    # report_a.yaml sets each model's decoder_lr; a later `train` value changes both.
    config = load_config("report_a", overrides={"train": {"decoder_lr": 0.001}})
    assert config.frozen.decoder_lr == config.fine_tuned.decoder_lr == 0.001
    preset = write(tmp_path / "mine.yaml", "train:\n  decoder_lr: 0.002\n  encoder_lr: 0.0002\n")
    mine = load_config(preset)
    assert (mine.frozen.decoder_lr, mine.fine_tuned.decoder_lr) == (0.002, 0.002)
    assert (mine.frozen.encoder_lr, mine.fine_tuned.encoder_lr) == (0.0, 0.0002)


def test_in_one_source_the_model_blocks_win_over_train_wherever_written(tmp_path: Path) -> None:
    overrides = {"fine_tuned": {"epochs": 5}, "train": {"epochs": 10}}  # train written last
    config = load_config("report_a", overrides=overrides)
    assert (config.frozen.epochs, config.fine_tuned.epochs) == (10, 5)
    preset = write(tmp_path / "mine.yaml", "fine_tuned:\n  epochs: 5\ntrain:\n  epochs: 10\n")
    mine = load_config(preset)
    assert (mine.frozen.epochs, mine.fine_tuned.epochs) == (10, 5)


def test_a_key_written_twice_is_refused_naming_it(tmp_path: Path) -> None:
    preset = write(tmp_path / "twice.yaml", "train:\n  epochs: 3\nseed: 1\ntrain:\n  "
                                            "batch_size: 8\n")
    with pytest.raises(ConfigError, match=r"(?s)twice\.yaml is not valid YAML.*key 'train' twice "
                                          r"\(also on line 1\)"):
        load_config(preset)


def test_a_yaml_error_is_one_line_naming_file_line_and_column(tmp_path: Path) -> None:
    preset = write(tmp_path / "twice.yaml", "seed: 1\nseed: 2\n")
    with pytest.raises(ConfigError) as refused:
        load_config(preset)
    assert "\n" not in str(refused.value)
    assert re.search(r"twice\.yaml is not valid YAML: line 2, column 1: found the key 'seed' "
                     r"twice \(also on line 1\)$", str(refused.value))


def test_nested_aliases_are_refused_at_once_and_the_message_stays_short(tmp_path: Path
                                                                        ) -> None:
    # a "billion laughs": nine levels of ten aliases each stand for 10**9 strings
    text = 'sample_ids: [&a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]'
    for level in range(1, 10):
        text += f", &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]"
    preset = write(tmp_path / "laughs.yaml", text + "]\n")
    with pytest.raises(ConfigError, match=r"laughs\.yaml is not valid YAML: line 1, column \d+: "
                                          r"found the alias \*a0: a preset may reuse a block "
                                          r"only as a merge key .*under 'sample_ids\.\[1\]'"
                       ) as refused:
        load_config(preset)
    assert len(str(refused.value)) < 400


def test_merge_keys_cannot_multiply_a_block(tmp_path: Path) -> None:
    preset = write(tmp_path / "merges.yaml", "train: &t {epochs: 3}\nfrozen:\n  <<: *t\n"
                                             "  <<: *t\n")
    with pytest.raises(ConfigError, match=r"line 4, column 3: found the merge key << twice"):
        load_config(preset)


@pytest.mark.parametrize("where", ["title: ", "? "])
def test_values_nested_thousands_deep_are_refused_naming_the_key(tmp_path: Path, where: str
                                                                 ) -> None:
    preset = write(tmp_path / "deep.yaml", where + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match=r"deep\.yaml is not valid YAML: line 1, column \d+: "
                                          r"found values nested deeper than 6 levels"
                       ) as refused:
        load_config(preset)
    if where == "title: ":
        assert "under 'title.[0]" in str(refused.value)


@pytest.mark.parametrize("text", [
    "seed: 0x" + "f" * 5000 + "\n", "image_size: 1" + "0" * 400 + "\n",
    "seed: 1" + "0" * 5000 + "\n", "val_fraction: 1" + "0" * 400 + "\n"])
def test_whole_numbers_too_long_to_print_are_refused_in_one_short_line(tmp_path: Path,
                                                                       text: str) -> None:
    preset = write(tmp_path / "long.yaml", text)
    with pytest.raises(ConfigError, match=r"long\.yaml") as refused:
        load_config(preset)
    assert len(str(refused.value)) < 400 and "\n" not in str(refused.value)


def test_more_merge_keys_than_a_preset_needs_are_refused(tmp_path: Path) -> None:
    chain = "a0: &a0 {x0: 0}\n" + "".join(f"a{i}: &a{i} {{<<: *a{i - 1}, x{i}: 0}}\n"
                                           for i in range(1, 30))
    preset = write(tmp_path / "chain.yaml", chain)
    with pytest.raises(ConfigError, match=r"found more than 16 merge keys"):
        load_config(preset)


def test_a_preset_larger_than_a_preset_can_be_is_refused_unread(tmp_path: Path) -> None:
    preset = write(tmp_path / "huge.yaml", "# " + "x" * (300 * 1024) + "\ntitle: Huge\n")
    with pytest.raises(ConfigError, match=r"huge\.yaml is 307,\d{3} bytes: a preset is a few "
                                          r"kilobytes of settings \(at most 262,144 bytes\)"):
        load_config(preset)


def test_unknown_keys_and_blocks_are_quoted_short(tmp_path: Path) -> None:
    preset = write(tmp_path / "long.yaml", f"{'k' * 1000}: 1\n")
    with pytest.raises(ConfigError, match=r"long\.yaml: unknown key 'k{10,}\.\.\.k+'") as refused:
        load_config(preset)
    assert len(str(refused.value)) < 400
    block = write(tmp_path / "block.yaml", f"train: [{', '.join(['1'] * 5000)}]\n")
    with pytest.raises(ConfigError, match=r"'train' must be a block of settings, not \[1, 1, "
                                          r"1, 1, 1, 1, \.\.\.\]$"):
        load_config(block)


def test_yaml_anchors_and_merge_keys_still_work(tmp_path: Path) -> None:
    preset = write(tmp_path / "merged.yaml", "frozen: &common\n  epochs: 3\nfine_tuned:\n"
                                             "  <<: *common\n  encoder_lr: 0.001\n")
    config = load_config(preset)
    assert (config.frozen.epochs, config.fine_tuned.epochs) == (3, 3)
    assert config.fine_tuned.encoder_lr == 0.001


def test_numbers_in_exponent_notation_are_numbers(tmp_path: Path) -> None:
    preset = write(tmp_path / "exp.yaml", "fine_tuned:\n  encoder_lr: 1e-3\n  decoder_lr: 2E-2\n")
    config = load_config(preset)
    assert (config.fine_tuned.encoder_lr, config.fine_tuned.decoder_lr) == (1e-3, 2e-2)
