"""What a report must not reveal: the folders of the machine that made it.

A report leaves that machine, so nothing it holds names one of its folders. papermill
records the notebooks' absolute paths, the parameters may name folders outside the kit, and a
cell's output may print a file's path (a warning naming an image). Paths inside the kit (or
beside it, ``../shared/...``) are shown relative to it, any other folder only by its name
(``<outside the kit>/isic2016``): the forms :func:`helpers.paths.public_path` gives.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from papermill.translators import PythonTranslator

from helpers.paths import REPO_ROOT, public_path, resolve_path
from helpers.system.atomic import write_text

#: Parameters that hold paths, shortened when they lie outside the kit.
PATH_PARAMETERS = ("data_root", "output_dir")


def machine_folders(parameters: dict) -> list[tuple[str, str]]:
    """(a folder of this machine, how a report shows it), the longest first: the run's data
    and output folders, the kit, the folder beside it, the home folder."""
    folders = [(str(resolve_path(parameters[key]).resolve()), public_path(parameters[key]))
               for key in PATH_PARAMETERS if isinstance(parameters.get(key), str)]
    folders += [(str(REPO_ROOT), "."), (str(REPO_ROOT.parent), ".."), (str(Path.home()), "~")]
    folders = [(folder, shown) for folder, shown in folders
               if Path(folder).parent != Path(folder)]  # never the file system's root
    return sorted(folders, key=lambda folder: -len(folder[0]))


def without_machine_folders(text: str, folders: list[tuple[str, str]]) -> str:
    """``text`` with each folder (where its name ends: not ``/work`` in ``/workspace``)
    replaced by how the report shows it."""
    for folder, shown in folders:
        ends = re.escape(folder) + r"(?![^\s/'\":,;)\]])"  # then a separator, or the end
        text = re.sub(ends, shown.replace("\\", "\\\\"), text)
    return text


def _scrub_outputs(notebook: nbformat.NotebookNode, folders: list[tuple[str, str]]) -> None:
    """Every text a cell printed or displayed, and every error, without ``folders``."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = without_machine_folders(output["text"], folders)
            if "traceback" in output:
                output["traceback"] = [without_machine_folders(line, folders)
                                       for line in output["traceback"]]
            if "evalue" in output:
                output["evalue"] = without_machine_folders(output["evalue"], folders)
            for kind, value in output.get("data", {}).items():
                if kind.startswith("text/") and isinstance(value, str):
                    output["data"][kind] = without_machine_folders(value, folders)


def _scrub_parameters(notebook: nbformat.NotebookNode, recorded: dict) -> None:
    """papermill's record of the run (its paths and parameters) and the injected-parameters
    cell, with each path as the report shows it."""
    for key in ("input_path", "output_path"):
        if recorded.get(key):
            recorded[key] = public_path(recorded[key])
    parameters = recorded.get("parameters", {})
    for key in PATH_PARAMETERS:
        if not isinstance(parameters.get(key), str):
            continue
        shown = public_path(parameters[key])
        for cell in notebook.cells:
            if "injected-parameters" in cell.metadata.get("tags", []):
                cell.source = cell.source.replace(
                    f"{key} = {PythonTranslator.translate_str(parameters[key])}",
                    f"{key} = {PythonTranslator.translate_str(shown)}")
        parameters[key] = shown


def hide_machine_folders(path: Path) -> None:
    """Rewrite the executed notebook at ``path`` (if there is one) so that neither its
    outputs nor its metadata name a folder of this machine."""
    if not path.exists():
        return
    notebook = nbformat.read(path, as_version=4)
    recorded = notebook.metadata.get("papermill", {})
    _scrub_outputs(notebook, machine_folders(recorded.get("parameters", {})))
    _scrub_parameters(notebook, recorded)
    write_text(path, nbformat.writes(notebook))
