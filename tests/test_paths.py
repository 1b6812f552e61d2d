"""Paths: relative ones are taken from the repository; shown ones carry no machine path."""

from __future__ import annotations

from pathlib import Path

from helpers.paths import REPO_ROOT, display_path, resolve_path


def test_relative_paths_are_taken_from_the_repository() -> None:
    assert resolve_path("data/x") == REPO_ROOT / "data" / "x"
    assert resolve_path("/abs/x") == Path("/abs/x")


def test_paths_inside_or_beside_the_repository_are_shown_relative() -> None:
    assert display_path(REPO_ROOT / "reports" / "a") == "reports/a"
    assert display_path(REPO_ROOT.parent / "shared" / "data") == "../shared/data"


def test_a_neighbour_folder_reached_through_a_link_is_shown_relative(tmp_path: Path,
                                                                      monkeypatch) -> None:
    import helpers.paths as paths

    kit, elsewhere = tmp_path / "kit", tmp_path / "other disk" / "shared"
    kit.mkdir()
    (elsewhere / "data").mkdir(parents=True)
    (tmp_path / "shared").symlink_to(elsewhere)  # ../shared links to another disk
    monkeypatch.setattr(paths, "REPO_ROOT", kit)
    assert paths.display_path(kit / ".." / "shared" / "data") == "../shared/data"
    assert paths.display_path(tmp_path / "shared" / "data") == "../shared/data"
    # ".." after the link leaves it: the folder named is on the other disk, not in the kit
    (elsewhere.parent / "kit" / "reports").mkdir(parents=True)
    assert paths.display_path(tmp_path / "shared" / ".." / "kit" / "reports") == \
        "../other disk/kit/reports"  # not "reports", the kit's own folder
