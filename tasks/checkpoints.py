"""Training checkpoints and the saved model: what a retried train step resumes from.

Example::

    resume = last_complete_checkpoint(run_dir / "train" / "checkpoints")   # or None
    save_model(model, run_dir / "train" / "model")
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


def last_complete_checkpoint(folder: Path, remove: bool = True) -> str | None:
    """The newest ``checkpoint-N`` whose save finished (``trainer_state.json`` is written last).

    Newer, incomplete checkpoints (a save cut off by a kill) are removed (with ``remove``, which
    only rank 0 of several training processes does) so they cannot break the resume.
    """
    if not folder.exists():
        return None
    found = []
    for path in folder.glob("checkpoint-*"):
        suffix = path.name.split("-", 1)[1]
        if path.is_dir() and suffix.isdigit():
            found.append((int(suffix), path))
    for _, path in sorted(found, reverse=True):
        if (path / "trainer_state.json").exists():
            return str(path)
        if remove:
            print(f"train: removing incomplete {path.name}", flush=True)
            shutil.rmtree(path, ignore_errors=True)
    return None


def save_model(model: Any, folder: Path) -> Path:
    """Save a SentenceTransformer into ``folder`` atomically (a temporary folder, then a rename),
    so a kill during the save never leaves a half-written model where the next step looks."""
    tmp = folder.parent / f".{folder.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder
