"""The kit's public address: set in one place (pyproject.toml), shown the same way in the
README's badges, each notebook's badge and each set-up cell; unset as committed, so nothing
links to a guessed address; set by ``python -m helpers colab``, idempotently, and only to a
GitHub repository with a safe branch name."""

from __future__ import annotations

import difflib
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from helpers.__main__ import main
from helpers.commands import colab
from helpers.commands.colab import Address
from helpers.errors import KitFileError, UsageError
from helpers.paths import REPO_ROOT

REPO = "https://github.com/some-teacher/lesion.kit"
COLAB = "https://colab.research.google.com/github/"


def first_cells(path: Path) -> tuple[str, str]:
    """The first markdown and the first code cell's sources of a notebook."""
    cells = nbformat.read(path, as_version=4).cells
    return (next(c.source for c in cells if c.cell_type == "markdown"),
            next(c.source for c in cells if c.cell_type == "code"))


def files(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes()
            for path in (root / "pyproject.toml", root / "README.md", *colab.notebook_paths(root))}


@pytest.fixture
def kit(tmp_path: Path) -> Path:
    """A copy of the files the command writes: pyproject.toml, README.md, the notebooks."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    shutil.copytree(REPO_ROOT / "notebooks", tmp_path / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return tmp_path


def test_as_committed_the_address_is_unset_everywhere_and_nothing_links_to_colab() -> None:
    assert colab.read_address() == Address(None, "main")
    assert colab.stale_files() == []  # README and notebooks show what pyproject.toml holds
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "colab.research.google.com" not in readme
    assert "python -m helpers colab --repo" in readme.split(colab.BADGES_BEGIN)[1]
    for path in colab.notebook_paths():
        markdown, code = first_cells(path)
        assert "colab.research.google.com" not in markdown
        assert colab.cell_address(code) == Address(None, "main")


def test_setting_the_address_writes_agreeing_badges_and_cells(kit: Path) -> None:
    notebooks = colab.notebook_paths(kit)
    written = colab.set_address(REPO, "main", root=kit)
    assert sorted(written) == sorted([kit / "pyproject.toml", kit / "README.md", *notebooks])
    assert colab.read_address(kit) == Address(REPO, "main")
    assert colab.stale_files(kit) == []
    readme = (kit / "README.md").read_text(encoding="utf-8")
    block = readme.split(colab.BADGES_BEGIN)[1].split(colab.BADGES_END)[0]
    assert "not set" not in block
    assert re.findall(r"\]\((https://colab.research.google.com/github/[^)]+)\)", block) == [
        f"{COLAB}some-teacher/lesion.kit/blob/main/notebooks/{p.name}" for p in notebooks]
    sources = set()
    for path in notebooks:
        markdown, code = first_cells(path)
        badges = [line for line in markdown.splitlines() if COLAB in line]
        assert badges == [f"{colab.BADGE_IMAGE}({COLAB}some-teacher/lesion.kit/blob/main/"
                          f"notebooks/{path.name})"]
        assert markdown.splitlines()[:3] == [markdown.splitlines()[0], "", badges[0]]
        assert colab.cell_address(code) == Address(REPO, "main")
        sources.add(code)
        assert all(not c.outputs for c in nbformat.read(path, as_version=4).cells
                   if c.cell_type == "code")
    assert len(sources) == 1  # the set-up cell stays the same in every notebook


def test_setting_it_again_writes_nothing_and_the_bytes_stay(kit: Path) -> None:
    colab.set_address(REPO, root=kit)
    before = files(kit)
    assert colab.set_address(REPO + ".git", root=kit) == []  # the same address, spelt so
    assert colab.set_address(REPO + "/", "main", root=kit) == []
    assert files(kit) == before


def test_another_address_changes_only_its_lines(kit: Path) -> None:
    colab.set_address(REPO, root=kit)
    before = files(kit)
    colab.set_address("https://github.com/other/kit", "course-2026/week1", root=kit)
    assert colab.read_address(kit) == Address("https://github.com/other/kit",
                                              "course-2026/week1")
    assert colab.stale_files(kit) == []
    changed = [line for line in difflib.ndiff(
        before[kit / "pyproject.toml"].decode().splitlines(),
        (kit / "pyproject.toml").read_text().splitlines()) if line[:2] in ("- ", "+ ")]
    assert changed == [f'- Repository = "{REPO}"', '+ Repository = "https://github.com/other/kit"',
                       '- colab_branch = "main"', '+ colab_branch = "course-2026/week1"']
    # back to the first address: the very bytes of the first run
    colab.set_address(REPO, root=kit)
    assert files(kit) == before


def test_the_notebooks_text_is_changed_in_the_badge_and_address_lines_only(kit: Path) -> None:
    path = colab.notebook_paths(kit)[1]
    before = path.read_text(encoding="utf-8").splitlines()
    colab.set_address(REPO, root=kit)
    changed = [line for line in difflib.ndiff(before, path.read_text().splitlines())
               if line[:2] in ("- ", "+ ")]
    assert len(changed) == 4, changed  # the address line, replaced; the badge and a blank
    assert all("KIT, BRANCH" in line or COLAB in line or line[2:].strip() == '"\\n",'
               for line in changed), changed


@pytest.mark.parametrize("repo", [
    "http://github.com/owner/name",  # not https
    "https://gitlab.com/owner/name",  # another host
    "https://github.com.example.org/owner/name",
    "https://someone@github.com/owner/name",
    "git@github.com:owner/name.git",
    "https://github.com/owner",  # no repository
    "https://github.com/owner/name/tree/main",
    "https://github.com/../name",
    "https://github.com/owner/..",
    "https://github.com/owner/name/../../x",
    "https://github.com/owner/my name",
    "https://github.com/owner/name;rm -rf ~",
    "https://github.com/owner/$(id)",
    "https://github.com/owner/`id`",
    "https://github.com/owner/name?ref=x",
    "https://github.com/owner/name\n",
    "https://github.com/-owner/name",
    "",
])
def test_a_bad_address_is_refused_and_nothing_is_written(kit: Path, repo: str) -> None:
    before = files(kit)
    with pytest.raises(UsageError, match="cannot be used: .*https://github.com/OWNER/NAME"):
        colab.set_address(repo, root=kit)
    assert files(kit) == before


@pytest.mark.parametrize("branch", ["../main", "a..b", "my branch", "x;y", "$(id)", "`id`",
                                    "-f", ".hidden", "x/.y", "a//b", "a/", "x.lock", "",
                                    "main\n", "b" * 101, "refs:x", "x~1", "x^", "*"])
def test_a_bad_branch_is_refused_and_nothing_is_written(kit: Path, branch: str) -> None:
    before = files(kit)
    with pytest.raises(UsageError, match="The branch .* cannot be used"):
        colab.set_address(REPO, branch, root=kit)
    assert files(kit) == before


def test_the_command_sets_it_and_says_what_it_wrote(kit: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(colab, "REPO_ROOT", kit)
    assert main(["colab", "--repo", REPO, "--branch", "main"]) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"The kit's address is now {REPO} (branch main). Written:")
    assert "  README.md\n" in said and "  notebooks/02_frozen_encoder.ipynb\n" in said
    assert main(["colab", "--repo", REPO]) == 0
    assert "nothing written" in capsys.readouterr().out


def test_the_command_refuses_a_bad_address_in_one_line(kit: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(colab, "REPO_ROOT", kit)
    before = files(kit)
    assert main(["colab", "--repo", "http://github.com/owner/name"]) == 1
    said = capsys.readouterr().err
    assert said.startswith("ERROR: The kit's address 'http://github.com/owner/name' cannot be "
                           "used: it is not an https address.")
    assert said.count("\n") == 1 and files(kit) == before


def test_the_command_has_help(capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["colab", "--help"])
    assert stopped.value.code == 0
    assert "--repo URL" in capsys.readouterr().out


def test_a_readme_without_the_badge_block_is_named(kit: Path) -> None:
    readme = kit / "README.md"
    readme.write_text(readme.read_text().replace(colab.BADGES_END, ""))
    with pytest.raises(KitFileError, match=f"{re.escape(str(readme))} must hold one block"):
        colab.set_address(REPO, root=kit)


def test_an_address_edited_by_hand_into_pyproject_is_checked(kit: Path) -> None:
    pyproject = kit / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        "[project.urls]\n", '[project.urls]\nRepository = "http://example.org/x"\n'))
    with pytest.raises(KitFileError, match="pyproject.toml: The kit's address .* not an https"):
        colab.read_address(kit)


def test_the_set_up_cell_line_round_trips() -> None:
    _, code = first_cells(colab.notebook_paths()[0])
    cell = colab.with_address(code, "file:///tmp/kit.git", "main")
    assert colab.cell_address(cell) == Address("file:///tmp/kit.git", "main")
    assert colab.with_address(cell, None, "main") == code


def test_a_repository_line_in_another_table_is_not_taken_for_the_address(kit: Path) -> None:
    pyproject = kit / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '\n[tool.other]\nRepository = "x"\n')
    before = files(kit)
    with pytest.raises(KitFileError, match=r"must be in the tables \[project.urls\]"):
        colab.set_address(REPO, root=kit)
    assert files(kit) == before
