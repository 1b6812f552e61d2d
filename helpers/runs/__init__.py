"""A run folder, owned by this package alone: its files, lock and data fingerprint
(:mod:`~helpers.runs.folder`), its checkpoints (:mod:`~helpers.runs.checkpoints`) and how its
model was scored (:mod:`~helpers.runs.scoring`). The names a notebook or command uses are
here::

    from helpers.runs import load_trained, read_history, write_scoring
"""

from helpers.runs.checkpoints import (
    load_checkpoint,
    load_run,
    load_trained,
    read_history,
    read_run_settings,
)
from helpers.runs.folder import HISTORY_COLUMNS, RUN_FILES, SCORING
from helpers.runs.scoring import Scoring, load_scored_run, read_scoring, write_scoring

__all__ = ["HISTORY_COLUMNS", "RUN_FILES", "SCORING", "Scoring", "load_checkpoint", "load_run",
           "load_scored_run", "load_trained", "read_history", "read_run_settings",
           "read_scoring", "write_scoring"]
