"""Run-directory plumbing shared by every step: paths, atomic writes, errors, fingerprints.

The step contract: ``python -m tasks <step> --run-dir DIR [options]`` reads and writes files in
``DIR``, writes every output atomically, prints one JSON summary object as its last stdout line
and exits with one of the codes below.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: Exit codes of ``python -m tasks <step>`` (the DAG maps them, see plugins/embedding_ops).
EXIT_OK = 0
EXIT_FAILED = 1  # unexpected failure: worth a retry
EXIT_USAGE = 2  # bad command line (argparse)
EXIT_INVALID_INPUT = 3  # bad data or parameters: a retry cannot help, fix the input
EXIT_NOTHING_TO_DO = 99  # the step decided there is no work: the DAG skips what follows

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class StepError(RuntimeError):
    """A failure with a one-line, human-readable reason (printed on stderr)."""

    exit_code = EXIT_FAILED


class InvalidInputError(StepError):
    """The user's data or parameters are wrong; the message says what to fix."""

    exit_code = EXIT_INVALID_INPUT


class NothingToDo(Exception):
    """Raised by a step that found nothing to do; carries the summary to print."""

    def __init__(self, summary: dict[str, Any]):
        super().__init__(summary.get("reason", "nothing to do"))
        self.summary = summary


def state_dir() -> Path:
    """The project's local state directory (``$EMBED_HOME``, default ``<project>/.state``)."""
    return Path(os.environ.get("EMBED_HOME") or PROJECT_ROOT / ".state").resolve()


def artifact_root() -> Path:
    """Root of all run directories (``$EMBED_ARTIFACT_ROOT``, default ``$EMBED_HOME/runs``)."""
    return Path(os.environ.get("EMBED_ARTIFACT_ROOT") or state_dir() / "runs").resolve()


def cache_dir() -> Path:
    """Cache shared between runs (evaluations keyed by model + eval fingerprints)."""
    return Path(os.environ.get("EMBED_CACHE_DIR") or state_dir() / "cache").resolve()


def safe_name(text: str) -> str:
    """A path-safe form of an Airflow id.

    ``manual__2026-01-01T00:00:00+00:00`` -> ``manual__2026-01-01T00_00_00_00_00``
    """
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


def run_dir_for(dag_id: str, run_id: str, root: Path | None = None) -> Path:
    """``{artifact_root}/{dag_id}/{run_id}`` with both ids made path-safe."""
    return (root or artifact_root()) / safe_name(dag_id) / safe_name(run_id)


def dag_id_of(run_dir: Path) -> str:
    """The Airflow DAG id of a step: Airflow's context variable, else the run dir's parent."""
    return os.environ.get("AIRFLOW_CTX_DAG_ID") or Path(run_dir).parent.name


def last_success_file(dag_id: str) -> Path:
    """Where the fingerprint of a DAG's last successful run is kept."""
    return state_dir() / "last_success" / f"{safe_name(dag_id)}.json"


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(
            fd, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})
        ) as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, obj: Any) -> Path:
    """Atomically write ``obj`` as pretty JSON."""
    return write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Atomically write rows as JSON Lines."""
    return write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def prepared(path: Path) -> Path:
    """``path``, a file the prepare step writes; a :class:`StepError` saying so when it is missing.

    Example::

        manifest = read_json(prepared(run_dir / "data" / "manifest.json"))
    """
    if not Path(path).exists():
        raise StepError(f"{path} is missing: run the prepare step first")
    return Path(path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def sha256_text(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def fingerprint_rows(rows: Iterable[dict[str, Any]]) -> str:
    """Order-independent fingerprint of JSON rows (same rows in any order -> same hash)."""
    digests = sorted(sha256_text(json.dumps(r, sort_keys=True, ensure_ascii=False)) for r in rows)
    return sha256_text(*digests)[:16]


#: Files of a model folder that do not change what the model computes: the model card, which
#: sentence-transformers rewrites on every save (training time, versions), so identical weights
#: would otherwise get a new fingerprint and miss the evaluation cache.
NOT_FINGERPRINTED = frozenset({"README.md"})


def fingerprint_dir(path: Path) -> str:
    """Content fingerprint of every file under ``path`` (names and bytes; checkpoints, hidden
    files and the top-level model card excluded)."""
    h = hashlib.sha256()
    path = Path(path)
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if rel.startswith((".", "checkpoint-")) or "/." in rel or rel in NOT_FINGERPRINTED:
            continue
        h.update(rel.encode())
        h.update(b"\x00")
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]
