"""A real Argilla 2.8 server for the tests: ``argilla-server==2.8.0``, Redis and the job worker.

The server runs in a virtualenv of its own (its pins clash with Airflow's), built once with pip and
kept under ``$EMBED_TEST_CACHE`` (default ``~/.cache/embedding-retrain``) in a folder named after
the pin list, so that changing a pin builds a new one. Everything listens on 127.0.0.1 only, on
free ports, and is stopped by process group:

- Redis: Debian's ``redis-server`` (``apt-get install -y redis-server``), no persistence.
- the database: SQLite in the server's temporary home. The server's migrations and the creation of
  the users run once per virtualenv into a template database (kept in the virtualenv folder);
  each start copies it, which saves most of a minute on a busy machine.
- the API server (uvicorn), and the rq worker that runs the server's background jobs (record
  statuses after a change of the dataset's distribution, Hub import/export, webhooks).
- search: no Elasticsearch; the server uses ``argilla_engine.py`` next to this file, a test engine
  that answers searches from the server's database (see its docstring for what it supports).

Users, created with known API keys before the server starts:

- ``owner`` (role owner, key ``server.owner_key``): creates datasets, logs and reads records with
  everyone's responses.
- ``annotator-1`` and ``annotator-2`` (role annotator, keys in ``server.annotator_keys``), members
  of the workspace ``server.workspace`` (``"retrieval"``); they submit responses with
  ``POST /api/v1/records/{record_id}/responses``, as the UI does.

Attributes of a started server (the ``argilla_server`` session fixture in ``tests/conftest.py``):

- ``url``: ``http://127.0.0.1:<port>`` (the SDK's ``api_url``, the REST base URL).
- ``owner``, ``owner_key``: the owner's username and API key.
- ``annotator_keys``: ``{"annotator-1": key, "annotator-2": key}``.
- ``workspace``: the workspace every user belongs to.
- ``password``: every user's password.
- ``headers(key)``: ``{"X-Argilla-Api-Key": key}`` for REST calls (httpx, requests).
- ``client(key=None)``: an ``argilla.Argilla`` SDK client (the owner's when ``key`` is None).
- ``log_paths``: the log file of each process; ``logs()`` returns their tails as one text.

Example::

    def test_something(argilla_server):
        client = argilla_server.client()
        dataset = rg.Dataset(name="pairs", workspace=argilla_server.workspace, settings=...,
                             client=client).create()
        httpx.post(f"{argilla_server.url}/api/v1/datasets/{dataset.id}/records/search",
                   headers=argilla_server.headers(argilla_server.owner_key), json={...})

Outside pytest::

    with ArgillaServer(tmp_dir) as server:
        print(server.url, server.owner_key)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from support.processes import stop_groups

HERE = Path(__file__).resolve().parent
LAUNCHER = HERE / "argilla_launch.py"

# The server's own virtualenv. argilla-server 2.8.0 needs click<8.2 (typer 0.9) and
# huggingface_hub<2 (its datasets/hub code); the rest of its pins come with it.
SERVER_PINS = ("argilla-server==2.8.0", "click<8.2", "huggingface_hub<2")

OWNER = "owner"
OWNER_KEY = "owner.apikey.embedding-retrain-tests"
ANNOTATOR_KEYS = {
    "annotator-1": "annotator-1.apikey.embedding-retrain-tests",
    "annotator-2": "annotator-2.apikey.embedding-retrain-tests",
}
WORKSPACE = "retrieval"
PASSWORD = "embedding-retrain-tests"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cache_root() -> Path:
    """Where test-only virtualenvs live: ``$EMBED_TEST_CACHE`` or ``~/.cache/embedding-retrain``."""
    root = os.environ.get("EMBED_TEST_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "embedding-retrain"


def server_venv_dir(pins: tuple[str, ...] = SERVER_PINS) -> Path:
    """The virtualenv folder for ``pins`` (named after the pins and the Python version)."""
    key = json.dumps([sys.version_info[:2], sorted(pins)])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_root() / f"argilla-server-2.8.0-{digest}"


def ensure_server_venv(pins: tuple[str, ...] = SERVER_PINS, timeout: float = 1200.0) -> Path:
    """The server's virtualenv, built with pip if it is not there yet; returns its folder.

    The virtualenv is built in a temporary folder and renamed into place when pip succeeded, so an
    interrupted build is never used and two concurrent builds do not mix.

    Raises:
        RuntimeError: when pip fails (the message ends with pip's output).
    """
    target = server_venv_dir(pins)
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.with_name(f"{target.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(building)],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
        python = building / "bin" / "python"
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_USER")}
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pins],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
        if proc.returncode != 0:
            output = "\n".join(
                line
                for line in (proc.stdout + proc.stderr).splitlines()
                if not line.startswith("WARNING: Location")
            )
            raise RuntimeError(f"pip could not install {' '.join(pins)}:\n{output[-3000:]}")
        (building / ".complete").write_text(json.dumps(list(pins)) + "\n")
        try:
            building.rename(target)
        except OSError:  # another session finished first: use its virtualenv
            if not (target / ".complete").exists():
                raise
    except subprocess.SubprocessError as exc:
        raise RuntimeError(f"could not build the Argilla server virtualenv: {exc}") from exc
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target


def _sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}?check_same_thread=False"


class ArgillaServer:
    """Start/stop Redis, the Argilla 2.8 API server and its worker, with state under ``root``.

    Args:
        root: a folder for the database, Redis and the logs (created if missing).
        worker: also start the background job worker (rq).
        startup_timeout: seconds to wait for the server to answer ``/api/v1/status``.
    """

    def __init__(self, root: Path, *, worker: bool = True, startup_timeout: float = 180.0) -> None:
        self.root = Path(root)
        self.with_worker = worker
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.redis_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.owner = OWNER
        self.owner_key = OWNER_KEY
        self.annotator_keys = dict(ANNOTATOR_KEYS)
        self.workspace = WORKSPACE
        self.password = PASSWORD
        self.log_paths = {
            name: self.root / f"{name}.log" for name in ("redis", "setup", "server", "worker")
        }
        self.venv: Path | None = None
        self.timings: dict[str, float] = {}  # seconds per start step (venv, redis, setup, server)
        self._procs: dict[str, subprocess.Popen] = {}
        self._logs: list[Any] = []

    # Public helpers

    def headers(self, key: str | None = None) -> dict[str, str]:
        """HTTP headers that authenticate with API key ``key`` (the owner's by default)."""
        return {"X-Argilla-Api-Key": key or self.owner_key}

    def client(self, key: str | None = None) -> Any:
        """An ``argilla.Argilla`` SDK client with API key ``key`` (the owner's by default)."""
        import argilla as rg

        return rg.Argilla(api_url=self.url, api_key=key or self.owner_key)

    def logs(self, chars: int = 2000) -> str:
        """The last ``chars`` characters of each log, one section per process."""
        parts = []
        for name, path in self.log_paths.items():
            if path.exists():
                text = path.read_text(errors="replace")[-chars:]
                parts.append(f"--- {name} ({path}) ---\n{text}")
        return "\n".join(parts)

    # Lifecycle

    def start(self) -> ArgillaServer:
        """Build (once) the virtualenv, start Redis, migrate, create users, start server + worker.

        Raises:
            RuntimeError: when a piece does not start; the message's first line says which and the
                rest holds the log tails.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        redis_server = shutil.which("redis-server") or (
            "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
        )
        if redis_server is None:
            raise RuntimeError(
                "redis-server not found: install it (apt-get install -y redis-server)"
            )
        started = time.monotonic()
        self.venv = ensure_server_venv()
        python = str(self.venv / "bin" / "python")
        self.timings["venv"] = time.monotonic() - started
        try:
            started = time.monotonic()
            self._start_redis(redis_server)
            self.timings["redis"] = time.monotonic() - started
            started = time.monotonic()
            env = self._server_env()
            self._prepare_database(python, env)
            self.timings["setup"] = time.monotonic() - started
            started = time.monotonic()
            self._spawn(
                "server", [python, str(LAUNCHER), "serve", "127.0.0.1", str(self.port)], env
            )
            if self.with_worker:
                self._spawn("worker", [python, str(LAUNCHER), "worker"], env)
            self._wait_for_server()
            self.timings["server"] = time.monotonic() - started
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            message = f"{str(exc).splitlines()[0]}\n{self.logs()}"
            self.stop()
            raise RuntimeError(message) from exc
        return self

    def stop(self) -> None:
        """Stop the worker and the server, then Redis (each by its process group)."""
        for names in (("worker", "server"), ("redis",)):
            stop_groups([self._procs.pop(name) for name in names if name in self._procs])
        for log in self._logs:
            log.close()
        self._logs.clear()

    def __enter__(self) -> ArgillaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # Internals

    def _prepare_database(self, python: str, env: dict[str, str]) -> None:
        """Put a migrated database with the users in the server's home.

        The server's migrations and user creation run once per virtualenv and user list, into a
        template database kept in the virtualenv folder; each start copies the template.
        """
        users = [
            {
                "username": name,
                "role": role,
                "api_key": key,
                "password": self.password,
                "workspaces": [self.workspace],
            }
            for name, role, key in [(self.owner, "owner", self.owner_key)]
            + [(name, "annotator", key) for name, key in self.annotator_keys.items()]
        ]
        digest = hashlib.sha256(json.dumps(users, sort_keys=True).encode()).hexdigest()[:12]
        template = self.venv / "databases" / f"argilla-{digest}.db"
        if not template.exists():
            building = self.root / "template"
            shutil.rmtree(building, ignore_errors=True)
            building.mkdir(parents=True)
            setup_env = {
                **env,
                "ARGILLA_HOME_PATH": str(building),
                "ARGILLA_DATABASE_URL": _sqlite_url(building / "argilla.db"),
            }
            with open(self.log_paths["setup"], "w") as log:
                proc = subprocess.run(
                    [python, str(LAUNCHER), "setup", json.dumps(users)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=setup_env,
                    cwd=self.root,
                    timeout=600,
                )
            if proc.returncode != 0:
                raise RuntimeError("Argilla database migration or user creation failed")
            template.parent.mkdir(parents=True, exist_ok=True)
            partial = template.with_name(f"{template.name}.{os.getpid()}.tmp")
            shutil.copyfile(building / "argilla.db", partial)
            os.replace(partial, template)
            shutil.rmtree(building, ignore_errors=True)
        database = self.root / "home" / "argilla.db"
        database.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, database)

    def _server_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("ARGILLA_")
        }
        home = self.root / "home"
        env.update(
            {
                "ARGILLA_HOME_PATH": str(home),
                "ARGILLA_DATABASE_URL": _sqlite_url(home / "argilla.db"),
                "ARGILLA_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                "ARGILLA_SEARCH_ENGINE": "database",
                "ARGILLA_ENABLE_SHARE_YOUR_PROGRESS": "false",
                "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_HUB_OFFLINE": "1",
                "COLUMNS": "200",  # the worker logs through rich: keep its lines whole
            }
        )
        return env

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = open(self.log_paths[name], "w")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        self._procs[name] = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.root,
            start_new_session=True,
        )

    def _start_redis(self, redis_server: str) -> None:
        argv = [
            redis_server,
            "--bind", "127.0.0.1",
            "--port", str(self.redis_port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.root),
            "--daemonize", "no",
        ]  # fmt: skip
        self._spawn("redis", argv, dict(os.environ))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._procs["redis"].poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), timeout=2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"redis-server did not start on 127.0.0.1:{self.redis_port}")

    def _wait_for_server(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"Argilla {name} exited with code {proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/status", timeout=5) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(
            f"Argilla server did not answer on {self.url} in {self.startup_timeout:.0f}s"
        )
