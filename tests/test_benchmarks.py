"""The speed benchmark runs end to end on tiny settings and its README tables render from
what it wrote. No timing is asserted: speed is judged from the benchmark's own ratios,
measured side by side, never in a test."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.system.kernels import cpu_model, describe_cpu_kind

REPO = Path(__file__).resolve().parent.parent


def test_speed_benchmark_writes_its_sections_and_the_tables_render(synthetic_root: Path,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "cpu.json"
    subprocess.run([sys.executable, "benchmarks/train_speed.py", "--data-root",
                    str(synthetic_root), "--sizes", "64", "--images", "12", "--repeats", "1",
                    "--batch-size", "6", "--seed-a", "--limits", "--malloc",
                    "--malloc-images", "0", "--json", str(out)],
                   cwd=REPO, check=True, capture_output=True)
    results = json.loads(out.read_text())
    assert [(r["size"], r["mode"]) for r in results["rows"]] == [(64, "frozen"),
                                                                  (64, "fine-tuned")]
    seed_a = results["seed_a"]
    assert seed_a["images"] == {"train": 24, "test": 8}
    assert "fresh process" in seed_a["processes"]
    ratios = [r["kit_vs_seed_a"] for r in seed_a["rows"]] + [
        seed_a["whole_run_kit_vs_seed_a"]] + [r["kit_vs_reference"] for r in results["rows"]]
    assert all(math.isfinite(x) and x > 0 for x in ratios)
    assert 0 < results["limits"]["rows"][0]["kit_fraction"] < 1
    malloc = results["malloc"]
    assert "fresh process" in malloc["processes"] and malloc["images"] == seed_a["images"]
    assert [(r["size"], r["mode"]) for r in malloc["rows"]] == [(64, "frozen"),
                                                                 (64, "fine-tuned")]
    assert all(math.isfinite(r["speedup"]) and r["speedup"] > 0 for r in malloc["rows"])
    tables = subprocess.run([sys.executable, "benchmarks/speed_tables.py", str(out)], cwd=REPO,
                            check=True, capture_output=True, text=True).stdout
    assert "**Against seed A's own loop**" in tables and "The machine's limit" in tables
    assert "**Freed memory kept for reuse**" in tables
    assert f"{seed_a['rows'][0]['kit_vs_seed_a']:.2f}×" in tables
    # the kit in both kernel modes; every other contender with the CPU's fastest kernels
    native, capped = kernels_of_a_process(), kernels_of_a_process(capped=True)
    for row in results["rows"]:
        assert row["cpu_kernels"] == {"kit": native, "kit_avx2": capped, "compute": native,
                                      "reference": native, "smp": native}
        assert math.isfinite(row["cap_costs"]) and row["cap_costs"] > 0
    assert all(row["cpu_kernels"] == {"kit": native, "kit_avx2": capped, "seed_a": native}
               for row in seed_a["rows"])
    assert seed_a["whole_run_kit_avx2_vs_seed_a"] > 0
    assert "CPU kernels: " in tables and "AVX2 cap costs" in tables
    # every section names the machine it was measured on, and the tables say it
    assert results["cpu_model"] == cpu_model() and results["cpu"] == describe_cpu_kind()
    for section in ("seed_a", "limits", "malloc"):
        assert results[section]["machine"]["cpu_model"] == cpu_model()
    assert f"_Machine: {cpu_model()} ({describe_cpu_kind()})" in tables


def kernels_of_a_process(capped: bool = False) -> str:
    """The kernels a fresh process that imports helpers computes with (``capped``: with
    ``LESIONKIT_CPU_KERNELS=avx2``; no kernel setting inherited from this process)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")}
    env["LESIONKIT_CPU_KERNELS"] = "avx2" if capped else "native"
    return subprocess.run(
        [sys.executable, "-c", "import helpers, torch; "
         "print(torch.backends.cpu.get_cpu_capability())"],
        cwd=REPO, env=env, check=True, capture_output=True, text=True).stdout.strip()


def test_an_update_measures_the_rows_again_and_keeps_the_other_sections(synthetic_root: Path,
                                                                        tmp_path: Path) -> None:
    out = tmp_path / "cpu.json"
    before = {"rows": [], "wall_s": 1.0, "seed_a": {"kept": "as it was"},  # an earlier run's
              "processor": "x86_64", "threads": 2, "torch": "2.0",  # its machine, no model
              "peak_memory_mib": 10755.0}  # a figure the benchmark no longer measures
    out.write_text(json.dumps(before))
    subprocess.run([sys.executable, "benchmarks/train_speed.py", "--data-root",
                    str(synthetic_root), "--sizes", "64", "--images", "6", "--repeats", "1",
                    "--batch-size", "6", "--json", str(out), "--update", "--rows", "--limits"],
                   cwd=REPO, check=True, capture_output=True)
    after = json.loads(out.read_text())
    # a section this update did not measure, now naming the machine it was measured on
    assert after["seed_a"] == {"kept": "as it was",
                               "machine": {"processor": "x86_64", "threads": 2, "torch": "2.0"}}
    assert "processor" not in after and after["cpu_model"] == cpu_model()
    assert after["measured_again"][-1]["sections"] == ["rows", "limits"]
    assert after["measured_again"][-1]["cpu_kernels"] == after["cpu_kernels"]  # as measured
    assert [(r["size"], r["mode"]) for r in after["rows"]] == [(64, "frozen"),
                                                                (64, "fine-tuned")]
    assert len(after["limits"]["rows"]) == 2
    assert after["wall_s"] == 1.0 and after["measured_again"][-1]["wall_s"] > 0
    assert "peak_memory_mib" not in after


def test_a_failed_measuring_process_names_its_command_and_shows_its_error() -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from data_scale import json_from_child
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    with pytest.raises(RuntimeError, match=r"(?s)-c raise SystemExit\('no such image'\) "
                                           r"failed \(exit code 1\):.*no such image"):
        json_from_child(["-c", "raise SystemExit('no such image')"])


def test_photo_benchmark_times_every_step_at_each_size(tmp_path: Path) -> None:
    out = tmp_path / "photo.json"
    printed = subprocess.run([sys.executable, "benchmarks/predict_photo.py", "--sizes",
                              "60x40,120x80", "--repeats", "1", "--json", str(out)],
                             cwd=REPO, check=True, capture_output=True, text=True).stdout
    rows = json.loads(out.read_text())["rows"]
    assert [(r["width"], r["height"]) for r in rows] == [(60, 40), (120, 80)]
    for row in rows:
        assert set(row["seconds"]) == {"decode", "model and full-size mask", "outline",
                                       "write PNGs", "predict_folder, whole"}
        assert all(math.isfinite(s) and s >= 0 for s in row["seconds"].values())
    assert "The 120x80 photo takes" in printed and "for 4x its pixels" in printed
