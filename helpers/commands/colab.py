"""Set the kit's public address, from which Colab opens the notebooks and fetches the kit.

    python -m helpers colab --repo https://github.com/OWNER/NAME [--branch main]

The address lives in one place, ``pyproject.toml`` (``Repository`` under ``[project.urls]``,
the branch as ``colab_branch`` under ``[tool.lesionkit]``). This command sets it there and
writes what follows from it: an "Open in Colab" badge per notebook in README.md's Colab
section (between its ``colab-badges`` comments), one badge line in each notebook's first
markdown cell, and the address in each notebook's first code cell (the line
``KIT, BRANCH = ...``), which clones the kit in Colab when it is not beside the notebook.
Only those lines change; a file whose text would not change is not written, so a second run
writes nothing. Until an instructor sets the address, the README says how, and nothing links
to an address the kit would have to guess.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import nbformat

from helpers.commands.cli import run_command
from helpers.errors import KitFileError, UsageError, shown
from helpers.paths import REPO_ROOT
from helpers.system.atomic import write_text

DEFAULT_BRANCH = "main"
#: https://github.com/OWNER/NAME: GitHub's rules for owners (letters, digits, single inner
#: hyphens, at most 39) and repository names (letters, digits, ``-``, ``_``, ``.``).
_GITHUB = re.compile(r"https://github\.com/(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9-]{0,37}"
                     r"[A-Za-z0-9])?)/(?P<name>[A-Za-z0-9._-]{1,100}?)(?:\.git)?/?")
#: A branch name git accepts and no shell or URL reads differently: letters, digits, ``.``,
#: ``_``, ``-`` and ``/`` between parts; no ``..``, no part starting with ``.`` or ``-``.
_BRANCH = re.compile(r"(?!.*\.\.)(?!.*\.lock(/|$))[A-Za-z0-9_][A-Za-z0-9._-]*"
                     r"(/[A-Za-z0-9_][A-Za-z0-9._-]*)*")
MAX_BRANCH = 100

BADGES_BEGIN = "<!-- colab-badges: written by python -m helpers colab -->"
BADGES_END = "<!-- /colab-badges -->"
UNSET_SENTENCE = ("The kit's public address is not set yet, so no notebook opens in Colab "
                  "from here: an\ninstructor sets it once with `python -m helpers colab "
                  "--repo https://github.com/OWNER/NAME`,\nwhich writes a badge for each "
                  "notebook here.")
BADGE_IMAGE = "[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
#: The first code cell's line holding the address; every notebook has the same one.
CELL_LINE = ("KIT, BRANCH = {kit}, {branch}  # the kit's public address, set by an instructor: "
             "python -m helpers colab --repo URL")
_CELL_ADDRESS = re.compile(r"^KIT, BRANCH = .*$", re.MULTILINE)
_PROJECT_URLS = re.compile(r"^\[project\.urls\][ \t]*(#.*)?$", re.MULTILINE)
_REPOSITORY = re.compile(r'^Repository[ \t]*=[ \t]*"[^"\n]*"', re.MULTILINE)
_COLAB_BRANCH = re.compile(r'^(colab_branch[ \t]*=[ \t]*)"[^"\n]*"', re.MULTILINE)


@dataclass(frozen=True)
class Address:
    """The kit's public address (None: not set) and the branch Colab opens."""

    repo: str | None
    branch: str = DEFAULT_BRANCH


def checked_repo(repo: str) -> str:
    """``repo`` as ``https://github.com/OWNER/NAME`` (a trailing ``/`` or ``.git`` dropped);
    a :class:`UsageError` saying what is wrong otherwise."""
    if not isinstance(repo, str) or not repo.startswith("https://"):
        why = "it is not an https address"
    elif not repo.startswith("https://github.com/"):
        why = "it is not on github.com"
    else:
        match = _GITHUB.fullmatch(repo)
        if match and match["name"].strip(".") and not match["name"].endswith(".git"):
            return f"https://github.com/{match['owner']}/{match['name']}"
        why = ("after github.com/ it must be OWNER/NAME, made of letters, digits and "
               "'-' (NAME also '_' and '.'), and nothing else")
    raise UsageError(f"The kit's address {shown(repo)} cannot be used: {why}. Give its GitHub "
                     "repository as https://github.com/OWNER/NAME.")


def checked_branch(branch: str) -> str:
    """``branch`` when it is a safe branch name (see ``_BRANCH``); a :class:`UsageError`
    otherwise."""
    if isinstance(branch, str) and len(branch) <= MAX_BRANCH and _BRANCH.fullmatch(branch):
        return branch
    raise UsageError(f"The branch {shown(branch)} cannot be used: a branch name is letters, "
                     "digits, '.', '_' and '-', parts joined by '/', at most "
                     f"{MAX_BRANCH} characters, without '..' (for example: main).")


def read_address(root: Path = REPO_ROOT) -> Address:
    """The address set in ``root/pyproject.toml``, checked."""
    path = root / "pyproject.toml"
    return _address_in(path.read_text(encoding="utf-8"), path)


def _address_in(text: str, path: Path) -> Address:
    """The address the pyproject.toml text ``text`` (of the file ``path``) sets, checked."""
    try:
        settings = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise KitFileError(f"{path} cannot be read as TOML: {error}") from error
    repo = settings.get("project", {}).get("urls", {}).get("Repository")
    branch = settings.get("tool", {}).get("lesionkit", {}).get("colab_branch", DEFAULT_BRANCH)
    try:
        return Address(None if repo is None else checked_repo(repo), checked_branch(branch))
    except UsageError as error:
        raise KitFileError(f"{path}: {error}") from error


def notebook_paths(root: Path = REPO_ROOT) -> list[Path]:
    """The kit's notebooks, in order."""
    return sorted((root / "notebooks").glob("*.ipynb"))


def colab_link(address: Address, notebook: str) -> str:
    """The address at which Colab opens ``notebook`` (a file name in ``notebooks/``)."""
    path = address.repo.removeprefix("https://github.com/")
    return (f"https://colab.research.google.com/github/{path}/blob/{address.branch}/"
            f"notebooks/{notebook}")


def badge(address: Address, notebook: str) -> str:
    """The "Open in Colab" badge of ``notebook``, as Markdown."""
    return f"{BADGE_IMAGE}({colab_link(address, notebook)})"


def with_address(cell: str, repo: str | None, branch: str) -> str:
    """The set-up cell's source ``cell`` with its ``KIT, BRANCH = ...`` line set to ``repo``
    and ``branch`` as given (not checked: :func:`set_address` checks them)."""
    line = CELL_LINE.format(kit="None" if repo is None else f'"{repo}"', branch=f'"{branch}"')
    return _CELL_ADDRESS.sub(lambda _: line, cell, count=1)


def cell_address(cell: str) -> Address:
    """The address the set-up cell's source ``cell`` clones from."""
    found = _CELL_ADDRESS.findall(cell)
    if len(found) != 1:
        raise KitFileError(f"The set-up cell has {len(found)} lines 'KIT, BRANCH = ...', "
                           "not one")
    repo, branch = ast.literal_eval(ast.parse(found[0]).body[0].value)
    return Address(repo, branch)


def _with_badge(markdown: str, line: str | None) -> str:
    """The first markdown cell's source with its badge line replaced by ``line`` (None: no
    badge), which stands in its own paragraph under the title."""
    lines = markdown.split("\n")
    for index in reversed(range(len(lines))):
        if lines[index].startswith(BADGE_IMAGE):
            del lines[max(index - 1, 0):index + 1]  # the badge and the blank line above it
    if line is not None:
        lines[1:1] = ["", line]
    return "\n".join(lines)


def _notebook_text(path: Path, address: Address) -> str:
    """``path``'s notebook text with ``address`` in its first markdown and code cells."""
    notebook = nbformat.read(path, as_version=4)
    markdown = next((c for c in notebook.cells if c.cell_type == "markdown"), None)
    code = next((c for c in notebook.cells if c.cell_type == "code"), None)
    if markdown is None or not markdown.source.startswith("# "):
        raise KitFileError(f"{path}: its first markdown cell must start with a '# ' title, "
                           "under which the Colab badge goes")
    if code is None or len(_CELL_ADDRESS.findall(code.source)) != 1:
        raise KitFileError(f"{path}: its first code cell must hold one line 'KIT, BRANCH = "
                           "...' (the set-up cell of the other notebooks)")
    line = None if address.repo is None else badge(address, path.name)
    markdown.source = _with_badge(markdown.source, line)
    code.source = with_address(code.source, address.repo, address.branch)
    text = nbformat.writes(notebook)
    return text if text.endswith("\n") else text + "\n"


def _readme_text(path: Path, address: Address, notebooks: list[Path]) -> str:
    """README.md's text with the badges of ``notebooks`` (or, unset, the sentence saying how
    to set the address) between its ``colab-badges`` comments."""
    text = path.read_text(encoding="utf-8")
    if text.count(BADGES_BEGIN) != 1 or text.count(BADGES_END) != 1 or \
            text.index(BADGES_BEGIN) > text.index(BADGES_END):
        raise KitFileError(f"{path} must hold one block between '{BADGES_BEGIN}' and "
                           f"'{BADGES_END}' (in its Colab section), where the badges go")
    if address.repo is None:
        body = UNSET_SENTENCE
    else:
        body = "\n".join(f"- {badge(address, p.name)} `{p.stem}`" for p in notebooks)
    before, rest = text.split(BADGES_BEGIN)
    after = rest.split(BADGES_END)[1]
    return f"{before}{BADGES_BEGIN}\n{body}\n{BADGES_END}{after}"


def _pyproject_text(path: Path, address: Address) -> str:
    """pyproject.toml's text with ``address``: only the ``Repository`` and ``colab_branch``
    lines change (``Repository`` goes right under ``[project.urls]`` when it is new)."""
    text = path.read_text(encoding="utf-8")
    if not _PROJECT_URLS.search(text) or len(_COLAB_BRANCH.findall(text)) != 1:
        raise KitFileError(f"{path} must have a [project.urls] table and one line "
                           "'colab_branch = \"...\"' under [tool.lesionkit]")
    repository = f'Repository = "{address.repo}"'
    if _REPOSITORY.search(text):
        text = _REPOSITORY.sub(lambda _: repository, text, count=1)
    else:
        text = _PROJECT_URLS.sub(lambda m: f"{m[0]}\n{repository}", text, count=1)
    text = _COLAB_BRANCH.sub(lambda m: f'{m[1]}"{address.branch}"', text, count=1)
    if _address_in(text, path) != address:  # a line of that name in another table, say
        raise KitFileError(f"{path}: the lines 'Repository = ...' and 'colab_branch = ...' "
                           "must be in the tables [project.urls] and [tool.lesionkit]")
    return text


def rewritten(address: Address, root: Path = REPO_ROOT) -> dict[Path, str]:
    """The README's and every notebook's text as they are with ``address`` set."""
    notebooks = notebook_paths(root)
    texts = {root / "README.md": _readme_text(root / "README.md", address, notebooks)}
    texts.update({path: _notebook_text(path, address) for path in notebooks})
    return texts


def stale_files(root: Path = REPO_ROOT) -> list[Path]:
    """The files whose badges or set-up cell do not show the address in pyproject.toml."""
    return [path for path, text in rewritten(read_address(root), root).items()
            if path.read_text(encoding="utf-8") != text]


def set_address(repo: str, branch: str = DEFAULT_BRANCH, root: Path = REPO_ROOT) -> list[Path]:
    """Set the kit's address in ``root`` (the kit's folder) and write the badges and set-up
    cells that show it; return the files written (none when nothing changes)."""
    address = Address(checked_repo(repo), checked_branch(branch))
    pyproject = root / "pyproject.toml"
    texts = {pyproject: _pyproject_text(pyproject, address), **rewritten(address, root)}
    changed = [path for path, text in texts.items()
               if path.read_text(encoding="utf-8") != text]
    for path in changed:
        write_text(path, texts[path])
    return changed


def parser() -> argparse.ArgumentParser:
    command = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Writes pyproject.toml, README.md's Colab badges and each notebook's badge and "
               "set-up cell; commit them, and the badges open the notebooks in Colab.")
    command.add_argument("--repo", required=True, metavar="URL",
                         help="the kit's GitHub repository: https://github.com/OWNER/NAME")
    command.add_argument("--branch", default=DEFAULT_BRANCH,
                         help=f"the branch Colab opens and clones (default: {DEFAULT_BRANCH})")
    return command


def set_address_command(args: argparse.Namespace) -> int:
    changed = set_address(args.repo, args.branch, REPO_ROOT)
    address = read_address(REPO_ROOT)
    if not changed:
        print(f"The kit's address is already {address.repo} (branch {address.branch}); "
              "nothing written.")
        return 0
    print(f"The kit's address is now {address.repo} (branch {address.branch}). Written:")
    for path in changed:
        print(f"  {path.relative_to(REPO_ROOT).as_posix()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(parser(), set_address_command, argv)


if __name__ == "__main__":
    sys.exit(main())
