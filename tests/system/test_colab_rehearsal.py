"""A Colab rehearsal: the notebooks' set-up cell, as committed, run in a fake Colab (a
``google.colab`` module, a ``/content``-like folder without the kit, a local bare clone of the
kit as the set address); and pip's own resolver asked, in ``--dry-run --report`` mode, what
that cell installs beside Colab's packages (faked as installed in an empty virtual
environment, the versions of tests/system/colab_runtime.txt): only missing packages, never
another version of an installed one.

The fake environment runs the test's own Python, not Colab's (3.12): a package whose releases
differ by Python version may resolve to another release there (isic-challenge-scoring does),
but what is installed and what is kept came out the same with Pythons 3.11, 3.12 and 3.13.
Also: notebook 04's explorer and a notebook progress bar with Colab's ipywidgets 7.7.1 (installed
into a folder of its own for the test) and with the kit's ipywidgets 8.

The resolver and ipywidgets 7 tests need the package index; without a network they skip,
saying so."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import types
import venv
from pathlib import Path

import nbformat
import pytest
import torch

from helpers.commands import colab as address
from helpers.paths import REPO_ROOT
from helpers.report.notebooks import execute
from helpers.system import colab

RUNTIME = Path(__file__).with_name("colab_runtime.txt")
#: Extras of Colab's packages that the kit's requirements ask for, with their requirements
#: (a fake without them would make pip skip the extra's packages).
EXTRAS = {"fonttools": {"woff": ['brotli>=1.0.1; platform_python_implementation == "CPython"',
                                 "zopfli>=0.1.4"]}}
#: What pip prints when it cannot reach the package index at all.
UNREACHABLE = re.compile(r"NewConnectionError|Failed to establish a new connection|"
                         r"Temporary failure in name resolution|Network is unreachable|"
                         r"ConnectTimeoutError|ProxyError|No route to host")


def set_up_cell() -> str:
    """The first code cell of the committed notebooks (the same in each)."""
    path = address.notebook_paths()[0]
    return next(c.source for c in nbformat.read(path, as_version=4).cells
                if c.cell_type == "code")


_RUN = subprocess.run  # the test's own commands, never the recorded stand-in


def git(*args: str, cwd: Path = REPO_ROOT) -> str:
    return _RUN(["git", *args], cwd=cwd, capture_output=True, text=True,
                check=True).stdout.strip()


@pytest.fixture(scope="module")
def bare_kit(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A bare repository holding the kit's HEAD as branch ``main``: (its file:// URL, HEAD)."""
    if shutil.which("git") is None:
        pytest.skip("the Colab rehearsal clones with git, which is not installed here")
    try:
        head = git("rev-parse", "HEAD")
    except subprocess.CalledProcessError as error:
        pytest.skip(f"the Colab rehearsal clones the kit's HEAD, which git cannot read here "
                    f"({error.stderr.strip()[:200]})")
    bare = tmp_path_factory.mktemp("github") / "lesionkit.git"
    git("init", "--quiet", "--bare", str(bare))
    git("config", "receive.shallowUpdate", "true", cwd=bare)  # CI's checkout may be shallow
    git("push", "--quiet", bare.as_uri(), "HEAD:refs/heads/main")
    return bare.as_uri(), head


@pytest.fixture
def fake_colab(tmp_path: Path, monkeypatch) -> dict:
    """Colab as the cell sees it: ``google.colab`` imported, the working folder
    ``content/`` without the kit, the clone going to ``content/lesionkit``, Colab's packages
    installed; git runs for real, pip is recorded (and "installs" into the fake set)."""
    content = tmp_path / "content"
    content.mkdir()
    monkeypatch.chdir(content)
    monkeypatch.setenv("LESIONKIT_COLAB_ROOT", str(content / "lesionkit"))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    installed = {colab._name(line.split("==")[0]): line.split("==")[1]
                 for line in RUNTIME.read_text().splitlines() if "==" in line}
    monkeypatch.setattr(colab, "installed_versions", lambda: dict(installed))
    calls: dict[str, list[list[str]]] = {"git": [], "pip": []}
    run = subprocess.run

    def recording_run(command: list[str], **options: object) -> object:
        if command[0] == "git":
            calls["git"].append(command)
            return run(command, **options)
        calls["pip"].append(command)
        installed.update({colab._name(r): "1.0" for r in command[command.index("-c") + 2:]})
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(subprocess, "run", recording_run)
    return {"clone": content / "lesionkit", "calls": calls}


def test_the_set_up_cell_clones_the_kit_once_and_installs_what_is_missing(
        bare_kit, fake_colab, capsys) -> None:
    url, head = bare_kit
    cell = address.with_address(set_up_cell(), url, "main")
    clone, calls = fake_colab["clone"], fake_colab["calls"]
    exec(compile(cell, "set-up cell", "exec"), {})
    printed = capsys.readouterr().out
    assert f"Cloned the kit from {url} (branch main) into {clone}" in printed
    assert (clone / "helpers" / "__init__.py").is_file() and sys.path[0] == str(clone)
    assert git("rev-parse", "HEAD", cwd=clone) == head
    assert (clone / ".git" / "shallow").is_file()  # --depth 1: the newest commit only
    assert "Installing what Colab lacks" in printed and "papermill" in printed
    (pip,) = calls["pip"]
    asked = {colab._name(r) for r in pip[pip.index("-c") + 2:]}
    assert {"papermill", "isic-challenge-scoring", "weasyprint"} <= asked
    assert not asked & {"ipywidgets", "numpy", "torch", "segmentation-models-pytorch"}

    exec(compile(cell, "set-up cell", "exec"), {})  # run again: nothing to do
    again = capsys.readouterr().out
    assert "Cloned" not in again and "nothing installed" in again
    assert len(calls["git"]) == 1 and len(calls["pip"]) == 1


def test_without_an_address_the_cell_says_how_to_set_it_and_clones_nothing(
        fake_colab) -> None:
    with pytest.raises(RuntimeError, match=r"No kit beside this notebook .*!git clone URL .*"
                                           r"python -m helpers colab --repo URL"):
        exec(compile(set_up_cell(), "set-up cell", "exec"), {})
    assert fake_colab["calls"] == {"git": [], "pip": []}
    assert not fake_colab["clone"].exists()


def test_outside_colab_the_cell_never_clones(bare_kit, fake_colab, monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "google.colab")
    cell = address.with_address(set_up_cell(), bare_kit[0], "main")
    with pytest.raises(RuntimeError, match="No kit beside this notebook"):
        exec(compile(cell, "set-up cell", "exec"), {})
    assert fake_colab["calls"] == {"git": [], "pip": []}


def fake_installed(site: Path, name: str, version: str) -> None:
    """``name`` ``version`` as pip sees an installed distribution (no files of its own)."""
    folder = site / f"{re.sub(r'[-.]+', '_', name)}-{version}.dist-info"
    folder.mkdir()
    extras = EXTRAS.get(colab._name(name), {})
    lines = [f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"]
    for extra, requirements in extras.items():
        lines.append(f"Provides-Extra: {extra}\n")
        lines += [f"Requires-Dist: {r}{' and' if ';' in r else ' ;'} extra == \"{extra}\"\n"
                  for r in requirements]
    (folder / "METADATA").write_text("".join(lines))
    (folder / "INSTALLER").write_text("pip\n")
    (folder / "RECORD").write_text("")


def test_pips_resolver_installs_only_missing_packages_beside_colabs(tmp_path: Path) -> None:
    environment = tmp_path / "colab"
    venv.create(environment, with_pip=False)
    python = environment / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    for line in RUNTIME.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            fake_installed(site, *line.split("=="))
    installed = colab.installed_versions([str(site)])  # as the cell reads Colab's
    assert installed["ipywidgets"] == "7.7.1" and installed["torch"] == "2.11.0+cu128"
    wanted = colab.missing(colab.requirements_for_colab(colab.REQUIREMENTS.read_text()),
                           installed)
    pinned = tmp_path / "installed.txt"
    pinned.write_text(colab.constraints(installed))
    command = colab.pip_command(wanted, pinned)
    assert command[:3] == [sys.executable, "-m", "pip"]
    # pip of the test's own Python, alone in a folder (run from its folder, pip puts the
    # folder above it on sys.path: the test's packages would look installed)
    pip_only = tmp_path / "pip-only"
    pip_only.mkdir()
    (pip_only / "pip").symlink_to(Path(importlib.util.find_spec("pip").origin).parent)
    report = tmp_path / "report.json"
    result = subprocess.run([python, pip_only / "pip", *command[3:], "--dry-run", "--report",
                             report, "--no-input", "--timeout", "20", "--retries", "1"],
                            capture_output=True, text=True, timeout=240)
    if result.returncode != 0 and UNREACHABLE.search(result.stdout + result.stderr):
        said = next(line for line in (result.stdout + result.stderr).splitlines()
                    if UNREACHABLE.search(line))
        pytest.skip(f"pip cannot reach the package index ({said.strip()[-160:]})")
    assert result.returncode == 0, result.stdout + result.stderr  # e.g. ResolutionImpossible
    to_install = {colab._name(item["metadata"]["name"]): item
                  for item in json.loads(report.read_text())["install"]}
    replaced = {name: (installed[name], to_install[name]["metadata"]["version"])
                for name in to_install if name in installed}
    assert not replaced, f"pip would replace Colab's packages (Colab's, pip's): {replaced}"
    requested = {name for name, item in to_install.items() if item.get("requested")}
    assert requested == {colab._name(r) for r in wanted}
    assert {"papermill", "isic-challenge-scoring", "weasyprint", "onnxruntime"} <= requested


@pytest.mark.notebooks
def test_notebooks_02_and_03_in_float16_on_a_drive_folder_resume_after_a_disconnect(
        tmp_path: Path, monkeypatch) -> None:
    """The T4's float16 path (forced on the CPU) through notebooks 02 and 03 at smoke size,
    their output folder outside the kit as a Drive folder would be. The first run of 02 stops
    after epoch 1, as a disconnect leaves it; the session's disk goes with its decode cache;
    the rerun trains epoch 2 from the saved loss scale, and 03 trains as usual."""
    drive = tmp_path / "drive" / "MyDrive" / "lesionkit" / "smoke"
    content = tmp_path / "content"
    monkeypatch.setenv("LESIONKIT_PRECISION", "float16")  # the kernels inherit these
    monkeypatch.setenv("LESIONKIT_CACHE", str(content / "cache"))
    parameters = {"preset": "smoke", "output_dir": str(drive)}
    execute("02_frozen_encoder", {**parameters, "overrides": {"train": {"epochs": 1}}}, drive)
    first = torch.load(drive / "runs" / "frozen" / "last.pt", weights_only=True)
    assert first["epoch"] == 1 and (content / "cache").is_dir()
    shutil.rmtree(content)  # the disconnect: Colab's local disk is gone, Drive is not
    for name in ("02_frozen_encoder", "03_fine_tuning"):
        execute(name, {**parameters, "overrides": {}}, drive)  # smoke: 2 epochs
    batches = first["scaler"]["_growth_tracker"]  # steps without an overflow in epoch 1
    for model, starts in (("frozen", [1, 2]), ("fine_tuned", [1])):
        folder = drive / "runs" / model
        last = torch.load(folder / "last.pt", weights_only=True)
        assert last["epoch"] == 2 and last["scaler"]["_growth_tracker"] == 2 * batches
        trained = json.loads((folder / "machine.json").read_text())["trained"]
        assert [entry["from_epoch"] for entry in trained] == starts
        assert {entry["precision"] for entry in trained} == {"float16 autocast, loss scaling"}
    assert (content / "cache").is_dir()  # decoded again, once, by the rerun
    assert (drive / "tables" / "03_model2_epochs.csv").is_file()


#: Colab's ipywidgets and the releases of its companions that it ships with (no dependencies
#: resolved beyond these: the rest is the test's own environment).
IPYWIDGETS_7 = ["ipywidgets==7.7.1", "widgetsnbextension==3.6.1", "jupyterlab-widgets==1.1.1",
                "ipython-genutils==0.2.0"]
#: In a fresh process: the explorer of notebook 04, driven as a student drives it, and a
#: progress bar as a notebook kernel shows it (tqdm's widget bar).
WIDGETS_IN_USE = """
import sys
import matplotlib; matplotlib.use("Agg")
import ipywidgets, numpy as np
from tqdm.notebook import tqdm
from helpers import plots
from helpers.decode import load_split
from helpers.isic2016 import isic2016_split
data = load_split(isic2016_split(sys.argv[1], "test"), size=32, progress=False)
explorer = plots.mask_explorer(data, {"model 1": data.masks.astype(np.float32),
                                      "model 2": 1 - data.masks.astype(np.float32)})
image, threshold = explorer.children[:2]
threshold.value = 0.7
image.value = data.ids[-1]
explorer.update()
bar = tqdm(range(3), desc="epochs")
for _ in bar:
    pass
print(ipywidgets.__version__, type(bar.container).__name__, bar.n)
"""


@pytest.mark.parametrize("colab", [True, False], ids=["ipywidgets 7 (Colab)", "ipywidgets 8"])
def test_the_explorer_and_progress_bars_work_with_ipywidgets_7_and_8(
        colab: bool, synthetic_root: Path, tmp_path: Path) -> None:
    environ = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    if colab:
        target = tmp_path / "colab-widgets"
        result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                                 "--target", target, *IPYWIDGETS_7, "--no-input", "--timeout",
                                 "20", "--retries", "1"], capture_output=True, text=True,
                                timeout=240)
        if result.returncode != 0 and UNREACHABLE.search(result.stdout + result.stderr):
            pytest.skip("pip cannot reach the package index for ipywidgets 7.7.1")
        assert result.returncode == 0, result.stdout + result.stderr
        environ["PYTHONPATH"] = str(target)  # before the kit's environment: Colab's widgets
    done = subprocess.run([sys.executable, "-c", WIDGETS_IN_USE, synthetic_root],
                          cwd=REPO_ROOT, env=environ, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr
    version, container, steps = done.stdout.split()[-3:]
    assert version.startswith("7.7.1" if colab else "8.")
    assert container.endswith("HBox") and steps == "3"  # tqdm's widget bar, run to the end
