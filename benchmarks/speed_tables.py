"""The speed tables of docs/speed.md, made from the benchmarks' JSON (no number copied by hand).

    python benchmarks/speed_tables.py reports/benchmarks/cpu.json            # print them
    python benchmarks/speed_tables.py reports/benchmarks/cpu.json \\
        --gpu reports/benchmarks/gpu.json --page docs/speed.md

The first argument is a ``train_speed.py --json`` file; ``--gpu`` adds the table of a
``gpu_report_a.py`` file. With ``--page``, the text between ``<!-- speed tables: begin -->``
and ``<!-- speed tables: end -->`` in that file is replaced by the tables. Each table is
followed by the machine it was measured on, as the JSON records it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers.system.atomic import write_text  # noqa: E402

BEGIN, END = "<!-- speed tables: begin -->", "<!-- speed tables: end -->"


def _table(header: list[str], rows: list[list[str]], right: int = 1) -> list[str]:
    """A Markdown table; columns from ``right`` on are right-aligned."""
    align = ["---" if i < right else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def machine(results: dict, section: str | None = None) -> str:
    """The line under a table: the machine the section was measured on (its own ``machine``
    record, else the top-level one, which the per-epoch rows' run wrote): the CPU's model name
    and kind (or only its ``processor`` in results from before they were recorded), threads
    and torch, and when the section was last measured (``measured_again``; nothing for the
    first run's sections, which carry no date)."""
    record = results.get(section, {}).get("machine") if isinstance(results.get(section), dict) \
        else None
    record = record or results
    if record.get("cpu_model"):
        cpu = record["cpu_model"] + (f" ({record['cpu']})" if record.get("cpu") else "")
    else:
        cpu = f"{record.get('processor') or 'unknown'} CPU (model not recorded)"
    when = [entry["at"].split()[0] for entry in results.get("measured_again", [])
            if section in entry.get("sections", [])]
    measured = f"; measured {when[-1]}" if when else ""
    return (f"_Machine: {cpu}, {record.get('threads') or '?'} threads, torch "
            f"{record.get('torch') or '?'}{measured}._")


def _machine_after(lines: list[str], results: dict, section: str) -> list[str]:
    return lines + [machine(results, section), ""]


def kernels_note(rows: list[dict]) -> str:
    """``; CPU kernels: AVX512 for all but the capped kit's AVX2`` from the rows'
    ``cpu_kernels`` (empty for results measured before the benchmark recorded them)."""
    used = [row["cpu_kernels"] for row in rows if "cpu_kernels" in row]
    if not used:
        return ""
    capped = {row["kit_avx2"] for row in used if "kit_avx2" in row}
    others = {kernels for row in used for name, kernels in row.items() if name != "kit_avx2"}
    if not capped:  # results from when the kit shipped capped: its kernels and the others'
        kit = {row.get("kit") for row in used}
        rest = {k for row in used for name, k in row.items() if name not in ("kit", "compute")}
        return (f"; CPU kernels: the kit's {', '.join(sorted(kit))} (capped), the others' "
                f"{', '.join(sorted(rest))}")
    if capped == others:
        return f"; CPU kernels: {', '.join(sorted(others))} for all"
    return (f"; CPU kernels: {', '.join(sorted(others))} for all but the capped kit's "
            f"{', '.join(sorted(capped))}")


def _capped(row: dict, key: str, form: str) -> list[str]:
    """The capped kit's column, where the row has it."""
    return [format(row[key], form) + ("×" if key == "cap_costs" else "")] if key in row else []


def contenders(results: dict) -> list[str]:
    capped = all("cap_costs" in r for r in results["rows"])
    rows = [[str(r["size"]), r["mode"], f"{r['kit_img_s']:.1f}",
             *(_capped(r, "kit_avx2_img_s", ".1f") if capped else []),
             f"{r['reference_img_s']:.1f}", f"{r['smp_img_s']:.1f}",
             f"{r['kit_vs_reference']:.2f}×", f"{r['kit_vs_smp']:.2f}×",
             *(_capped(r, "cap_costs", ".2f") if capped else []),
             f"{r['epoch_over_compute']:.3f}"] for r in results["rows"]]
    where = f"; {results['processes']}" if "processes" in results else ""
    title = (f"**Per epoch** (first {results['images']} training images, batch "
             f"{results['batch_size']}, fastest of {results['repeats']} taking turns{where}"
             f"{kernels_note(results['rows'])}):")
    return [title, ""] + _table(
        ["size", "mode", "kit img/s", *(["kit, AVX2 cap img/s"] if capped else []),
         "reference img/s", "smp img/s", "kit ÷ reference", "kit ÷ smp",
         *(["AVX2 cap costs"] if capped else []), "epoch ÷ pure compute"], rows, right=2)


def seed_a(section: dict) -> list[str]:
    capped = "whole_run_kit_avx2_vs_seed_a" in section
    rows = [[r["mode"], f"{r['seed_a_epoch_s']:.2f}", f"{r['kit_epoch_s']:.2f}",
             f"{r['kit_vs_seed_a']:.2f}×",
             *([f"{r['kit_avx2_epoch_s']:.2f}", f"{r['kit_avx2_vs_seed_a']:.2f}×"]
               if capped else [])] for r in section["rows"]]
    setup, whole = section["setup_s"], section["whole_run_s"]
    ratio = f"{setup['seed_a'] / setup['kit']:.2f}×"
    rows.append(["set-up (decode both splits)", f"{setup['seed_a']:.1f}", f"{setup['kit']:.1f}",
                 ratio, *([f"{setup['kit']:.1f}", ratio] if capped else [])])
    rows.append([f"whole report-A run (set-up + 2 × {section['epochs']} epochs)",
                 f"{whole['seed_a']:.0f}", f"{whole['kit']:.0f}",
                 f"{section['whole_run_kit_vs_seed_a']:.2f}×",
                 *([f"{whole['kit_avx2']:.0f}", f"{section['whole_run_kit_avx2_vs_seed_a']:.2f}×"]
                   if capped else [])])
    images = section["images"]
    return [f"**Against seed A's own loop** ({images['train']} training and {images['test']} "
            f"test images at {section['size']}², batch {section['batch_size']}; an epoch is "
            "training plus the test-set evaluation both loops do every epoch"
            + (f"; {section['processes']}" if "processes" in section else "")
            + kernels_note(section["rows"]) + "):", ""] + _table(
        ["", "seed A s", "kit s", "kit ÷ seed A",
         *(["kit, AVX2 cap s", "capped kit ÷ seed A"] if capped else [])], rows)


def limits(section: dict) -> list[str]:
    rows = [[str(r["size"]), r["mode"], f"{r['kit_gflop_per_image']:.2f}",
             f"{100 * r['kit_fraction']:.0f}%", f"{100 * r['reference_fraction']:.0f}%"]
            for r in section["rows"]]
    profile = section["profile_fine_tuned"]
    top = [[f"`{e['operator']}`", f"{e['self_ms']:.1f}", f"{100 * e['share']:.1f}%"]
           for e in profile["top"][:10]]
    return [f"**The machine's limit**: fp32 matrix multiply at "
            f"{section['matmul_gflop_s']:.0f} GFLOP/s; each contender's training FLOPs per "
            "second as a share of it:", ""] + _table(
        ["size", "mode", "kit GFLOP per image", "kit", "reference"], rows, right=2) + [
        f"Where a fine-tuned training step ({profile['size']}², batch {profile['batch_size']}) "
        "spends its time (`torch.profiler`, self CPU time):", ""] + _table(
        ["operator", "ms", "share"], top)


def compiled(section: dict) -> list[str]:
    rows = [[r["mode"], f"{r['eager_epoch_s']:.2f}", f"{r['compiled_epoch_s']:.2f}",
             f"{r['epoch_speedup']:.2f}×",
             f"{round(r['compile_s'])} / {round(r['compile_warm_cache_s'])}",
             f"{r['whole_run_speedup']:.2f}× / {r['whole_run_speedup_warm']:.2f}×"]
            for r in section["rows"]]
    return [f"**`compile: true`** ({section['images']} images at {section['size']}²; compile "
            "time the first time, from an empty compile cache / for a second model compiled in "
            f"the same process; whole run = compile time + {section['epochs']} epochs, over "
            "eager):", ""] + _table(
        ["mode", "epoch s", "compiled epoch s", "per epoch", "compile s", "whole run"], rows)


def kept_memory(section: dict) -> list[str]:
    rows = [[str(r["size"]), r["mode"], f"{r['glibc_epoch_s']:.2f}", f"{r['kept_epoch_s']:.2f}",
             f"{r['speedup']:.2f}×"] for r in section["rows"]]
    images, memory = section["images"], section.get("memory")
    peak = ""
    if memory:
        rows.append([f"{memory['images']:,} SYNTHETIC, 256², from disk", "fine-tuned",
                     f"{memory['glibc']['seconds']:.0f}", f"{memory['kept']['seconds']:.0f}",
                     f"{memory['glibc']['seconds'] / memory['kept']['seconds']:.2f}×"])
        peak = (f"; the last row a training epoch alone, with its peak RSS: "
                f"{memory['glibc']['peak_rss_mib']:.0f} MiB left alone, "
                f"{memory['kept']['peak_rss_mib']:.0f} MiB kept")
    return [f"**Freed memory kept for reuse** (as `fit` runs) against glibc's malloc left "
            f"alone (an epoch: the {images['train']} training images, batch "
            f"{section['batch_size']}, then the {images['test']} test images evaluated; "
            f"{section['processes']}, fastest of {section.get('repeats', 3)} taking turns"
            f"{peak}):", ""] + _table(
        ["size", "mode", "left alone s", "kept s", "speed-up"], rows, right=2)


def scale(section: dict) -> list[str]:
    rows = []
    for r in section["rows"]:
        decode, memory, epoch = r["decode"], r["in_memory"], r.get("epoch")
        rows.append([
            f"{r['images']:,}", f"{decode['images_per_s']:.0f}", f"{decode['seconds']:.0f}",
            f"{decode['cache_bytes'] / 2**30:.2f}", f"{decode['peak_rss_mib']:.0f}",
            f"{memory['peak_rss_mib']:.0f}",
            f"{epoch['seconds']:.0f}" if epoch else "—",
            f"{epoch['images_per_s']:.1f}" if epoch else "—",
            f"{epoch['peak_rss_mib']:.0f}" if epoch else "—"])
    return [f"**Scale** (SYNTHETIC {section['source_size']}² JPEGs decoded to "
            f"{section['size']}², {section['workers']} decoding threads; a fine-tuned epoch, "
            f"batch {section['batch_size']}, reading the split from the disk cache; peak RSS "
            "in MiB, each step in its own process):", ""] + _table(
        ["images", "decode img/s", "decode s", "cache GiB", "decode peak RSS",
         "loaded into RAM: peak RSS", "epoch s", "epoch img/s", "epoch peak RSS"], rows)


def gpu(results: dict) -> list[str]:
    """Report A's whole run on a GPU, from a ``gpu_report_a.py`` JSON file."""
    models = results["models"]
    labels = {"frozen": "model 1 (frozen encoder)", "fine_tuned": "model 2 (fine-tuned)"}
    rows = [["decode both splits", f"{results['decode_s']:.1f}", "", ""]]
    rows += [[f"{labels.get(name, name)}, {m['epochs']} epochs", f"{m['seconds']:.1f}",
              f"{m['median_epoch_s']:.2f}", f"{m['first_epoch_s']:.2f}"]
             for name, m in models.items()]
    rows.append(["whole run", f"{results['whole_run_s']:.1f}", "", ""])
    images = results["images"]
    return [f"**Report A's whole run on a GPU** ({images['train']} training and "
            f"{images['test']} test images at {results['image_size']}², both models as "
            "the notebooks train them):", ""] + _table(
        ["", "seconds", "median epoch s", "first epoch s"], rows) + [
        f"_Machine: {results['device']}, torch {results['torch']}, CUDA {results['cuda']}; "
        f"data: {results['data']}._", ""]


def tables(results: dict, gpu_results: dict | None = None) -> str:
    lines = _machine_after(contenders(results), results, "rows")
    for key, render in (("seed_a", seed_a), ("limits", limits), ("compile", compiled),
                        ("malloc", kept_memory), ("scale", scale)):
        if key in results:
            lines += _machine_after(render(results[key]), results, key)
    if gpu_results:
        lines += gpu(gpu_results)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("json", help="a train_speed.py --json file")
    parser.add_argument("--gpu", help="a gpu_report_a.py JSON file: adds its table")
    parser.add_argument("--page", help="replace the tables between the markers in this file")
    args = parser.parse_args(argv)
    gpu_results = json.loads(Path(args.gpu).read_text()) if args.gpu else None
    text = tables(json.loads(Path(args.json).read_text()), gpu_results)
    if not args.page:
        print(text, end="")
        return 0
    page = Path(args.page)
    content = page.read_text(encoding="utf-8")
    if BEGIN not in content or END not in content:
        raise SystemExit(f"{page} lacks the markers {BEGIN} and {END}")
    head, rest = content.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    write_text(page, f"{head}{BEGIN}\n{text}{END}{tail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
