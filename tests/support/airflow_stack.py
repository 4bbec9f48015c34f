"""A real Airflow 3 deployment for the tests, started the way users run it, on 127.0.0.1.

:class:`PostgresServer` starts a private PostgreSQL cluster (``initdb`` + ``postgres`` in a temp
directory, a free port, ``fsync`` off) for the metadata database. :class:`AirflowStack` migrates it
(``airflow db migrate``) and starts the four Airflow components, each in its own process group
with its output in a log file: ``airflow api-server``, ``airflow scheduler`` (LocalExecutor),
``airflow triggerer`` and ``airflow dag-processor``. The DAGs come from the project's ``dags/``
folder and the plugins from ``plugins/``, so the stack runs exactly the code users deploy; every
step runs with the ``local`` runner (``python -m tasks <step>`` subprocesses).

With ``executor="CeleryExecutor"`` the scheduler hands tasks to Celery instead: a private
``redis-server`` (:class:`RedisServer`, Debian's package) is the broker, the stack's PostgreSQL
the result backend (``db+postgresql://``), and ``airflow celery worker`` processes
(:meth:`AirflowStack.start_worker`) each listen on their queues. Each worker stands for a host of
its own: its Celery node name and the ``hostname`` Airflow records in its task instances are the
worker's name (``[core] hostname_callable`` = :func:`worker_hostname`), so a test can tell from
the task instances which worker ran what. :meth:`AirflowStack.kill_worker` takes a worker down as
a crashed host would: SIGKILL to it and every process under it (task supervisors, task
processes and their step subprocesses, which run in process groups of their own).

The REST API (``/api/v2``) is reached with a JWT from ``POST /auth/token``: the simple auth manager
has one ``admin`` user whose password the stack writes into the passwords file before start.

Intervals are short (DAG folder rescanned every 5 s, files re-parsed every 10 s) so that DAGs and
their changes appear within seconds. The nightly cron of ``retrain_embeddings`` is set to a
leap-day cron (``EMBED_RETRAIN_CRON``, see :data:`TEST_RETRAIN_CRON`) whose last tick lies before
the DAG's start date: unpausing the DAG then never starts a catch-up "nightly" run by itself, and
every run the tests see is one they asked for.

Example::

    with AirflowStack(tmp_path) as stack:
        stack.unpause("retrain_embeddings")
        run_id = stack.trigger("retrain_embeddings", {"data_path": "/data/pairs.jsonl"})
        result = stack.wait_for_run("retrain_embeddings", run_id, timeout=600)
        assert result.state == "success", result.tasks
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from support.mlflow_server import free_port
from support.processes import stop_group

ROOT = Path(__file__).resolve().parents[2]

#: The cron the stack gives ``retrain_embeddings``: 03:00 on 29 February. Its last tick (2024) is
#: before the DAG's start date, so unpausing the DAG creates no run; its next one is in 2028.
TEST_RETRAIN_CRON = "0 3 29 2 *"

COMPONENTS = ("api-server", "scheduler", "triggerer", "dag-processor")
FINAL_RUN_STATES = ("success", "failed")
#: The environment variable a Celery worker of the stack finds its host name in.
WORKER_HOSTNAME_VARIABLE = "STACK_WORKER_HOSTNAME"


def worker_hostname() -> str:
    """Airflow's ``[core] hostname_callable`` in the stack's Celery workers: the worker's name.

    Every worker of the test stack runs on this machine; each one reports its own name as its
    host, as workers on separate hosts would. Outside a worker: the machine's FQDN.
    """
    import socket

    return os.environ.get(WORKER_HOSTNAME_VARIABLE) or socket.getfqdn()


class StackError(RuntimeError):
    """A component of the stack did not start or stopped; the message carries its log."""


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


# --- PostgreSQL --------------------------------------------------------------------------------
def postgres_bindir() -> Path:
    """Directory with ``initdb`` and ``postgres``: ``$PG_BINDIR``, ``PATH``, or Debian's layout.

    Raises RuntimeError saying what to install when there is none.
    """
    candidates = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))
    found = shutil.which("postgres")
    if found:
        candidates.append(Path(found).resolve().parent)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    debian = sorted(glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    candidates += [Path(p) for p in reversed(debian)]
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "postgres").exists():
            return bindir
    raise RuntimeError(
        "PostgreSQL server binaries not found: install them (Debian: apt-get install -y "
        "postgresql) or set PG_BINDIR to the folder holding initdb and postgres"
    )


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1 with a trusted ``airflow`` superuser.

    PostgreSQL refuses to run as root, so under root the cluster belongs to the ``postgres``
    system user (created by Debian's package); otherwise to the current user. The data directory
    is a fresh temp directory, removed by :meth:`stop`.

    :param database: name of the database to create.
    :param startup_timeout: seconds to wait for the server to accept connections.
    """

    def __init__(self, database: str = "airflow", *, startup_timeout: float = 60.0) -> None:
        self.database = database
        self.user = "airflow"
        self.port = free_port()
        self.startup_timeout = startup_timeout
        self.root: Path | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the database (psycopg2 driver)."""
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{self.database}"

    @property
    def log_path(self) -> Path:
        assert self.root is not None
        return self.root / "postgres.log"

    def _run_as(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError(
                "PostgreSQL cannot run as root and there is no 'postgres' system user: install "
                "Debian's postgresql package (it creates the user) or run the tests as a "
                "regular user"
            ) from None
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def start(self) -> PostgresServer:
        """initdb, start ``postgres`` in its own process group, create the database."""
        bindir = postgres_bindir()
        run_as = self._run_as()
        self.root = Path(tempfile.mkdtemp(prefix="embed-pg-"))
        if run_as:
            os.chown(self.root, run_as["user"], run_as["group"])
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LC_ALL": "C",
            "HOME": str(self.root),
        }
        data = self.root / "data"
        init = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                self.user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.root,
            timeout=120,
            **run_as,
        )
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {(init.stderr or init.stdout).strip()[-1500:]}")
        log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self._log = log
        self.proc = subprocess.Popen(
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.root),
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.root,
            start_new_session=True,
            **run_as,
        )
        self._wait_ready()
        conn = self.connect("postgres")
        try:
            conn.autocommit = True
            conn.cursor().execute(f'CREATE DATABASE "{self.database}"')
        finally:
            conn.close()
        return self

    def connect(self, database: str | None = None) -> Any:
        """A psycopg2 connection to ``database`` (default: the stack's database)."""
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            dbname=database or self.database,
            connect_timeout=3,
        )

    def _wait_ready(self) -> None:
        import psycopg2

        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                break
            try:
                self.connect("postgres").close()
                return
            except psycopg2.OperationalError:
                time.sleep(0.2)
        tail = _tail(self.log_path)
        self.stop()
        raise RuntimeError(f"postgres did not start on 127.0.0.1:{self.port}:\n{tail}")

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster), then remove the cluster."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    stop_group(self.proc, timeout=5)
            self._log.close()
            self.proc = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


# --- Redis (the Celery broker) -----------------------------------------------------------------
class RedisServer:
    """A throwaway ``redis-server`` on 127.0.0.1 (no persistence) in a folder of its own.

    :param root: its working folder and log.
    """

    def __init__(self, root: Path, *, startup_timeout: float = 30.0) -> None:
        self.root = Path(root)
        self.port = free_port()
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        """The broker URL (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start ``redis-server`` in its own process group and wait for ``PING``.

        Raises RuntimeError saying what to install when there is no ``redis-server``.
        """
        import socket

        binary = shutil.which("redis-server") or (
            "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
        )
        if binary is None:
            raise RuntimeError(
                "redis-server not found: install it (apt-get install -y redis-server)"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self._log = open(self.root / "redis.log", "w")  # noqa: SIM115 - closed in stop()
        argv = [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.root),
            "--daemonize", "no",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.2)
        tail = _tail(self.root / "redis.log")
        self.stop()
        raise RuntimeError(f"redis-server did not start on 127.0.0.1:{self.port}: {tail[-500:]}")

    def stop(self) -> None:
        """Stop the server (its process group)."""
        if self.proc is not None:
            stop_group(self.proc, timeout=10)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


# --- Airflow -----------------------------------------------------------------------------------
@dataclass
class CeleryWorker:
    """An ``airflow celery worker`` of the stack: its name (= its host name), queues, process."""

    name: str
    queues: str
    concurrency: int
    proc: subprocess.Popen
    log_path: Path
    started: float = 0.0


@dataclass
class RunResult:
    """The outcome of a DAG run: final state, each task's state, the run's duration."""

    dag_id: str
    run_id: str
    state: str
    tasks: dict[str, str | None] = field(default_factory=dict)
    seconds: float = 0.0


class AirflowStack:
    """PostgreSQL + ``airflow`` api-server, scheduler, triggerer and dag-processor on 127.0.0.1.

    :param root: directory for ``AIRFLOW_HOME``, ``EMBED_HOME`` and the component logs.
    :param env: extra environment of every component (wins over the stack's settings).
    :param startup_timeout: seconds to wait for all components to report healthy.
    :param executor: ``LocalExecutor`` (tasks run by the scheduler) or ``CeleryExecutor`` (a
        private Redis as broker; tasks run by the workers started with :meth:`start_worker`).
    :param workers: for the CeleryExecutor, the workers to start with the stack:
        ``{name: queues}`` (``"cpu"``, ``"gpu"``, ``"a,b"``), one task at a time each.
    """

    def __init__(
        self,
        root: Path,
        *,
        env: dict[str, str] | None = None,
        startup_timeout: float = 240.0,
        executor: str = "LocalExecutor",
        workers: dict[str, str] | None = None,
    ) -> None:
        if executor not in ("LocalExecutor", "CeleryExecutor"):
            raise ValueError(f"executor {executor!r}: use LocalExecutor or CeleryExecutor")
        if workers and executor != "CeleryExecutor":
            raise ValueError("workers need executor='CeleryExecutor'")
        self.executor = executor
        self.initial_workers = dict(workers or {})
        self.workers: dict[str, CeleryWorker] = {}
        self.redis = RedisServer(Path(root) / "redis") if executor == "CeleryExecutor" else None
        self.root = Path(root)
        self.home = self.root / "airflow"
        self.embed_home = self.root / "state"
        self.log_dir = self.root / "logs"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.username = "admin"
        self.password = secrets.token_urlsafe(16)
        self.startup_timeout = startup_timeout
        self.extra_env = dict(env or {})
        self.postgres = PostgresServer()
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: list[Any] = []
        self._token: str | None = None
        self._client = httpx.Client(base_url=self.url, timeout=120.0)
        self.startup_seconds: float | None = None
        self.env: dict[str, str] = {}
        #: Tracking URI of the ``mlflow_default`` connection, when the caller set one.
        self.mlflow_uri: str | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def _environment(self) -> dict[str, str]:
        from cryptography.fernet import Fernet

        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "MLFLOW_", "EMBED_", "ARGILLA_", "PYTEST_"))
        }
        passwords = self.home / "passwords.json"
        env = {
            **keep,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.url,
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(24),
            "AIRFLOW__API_AUTH__JWT_SECRET": base64.b64encode(secrets.token_bytes(32)).decode(),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
            "EMBED_HOME": str(self.embed_home),
            "EMBED_RUNNER": "local",
            "EMBED_RETRAIN_CRON": TEST_RETRAIN_CRON,
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
        }
        if self.redis is not None:
            pg = self.postgres
            env.update(
                {
                    "AIRFLOW__CELERY__BROKER_URL": self.redis.url,
                    "AIRFLOW__CELERY__RESULT_BACKEND": (
                        f"db+postgresql://{pg.user}@127.0.0.1:{pg.port}/{pg.database}"
                    ),
                    # a task without a queue of its own goes to the CPU workers
                    "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.extra_env.get(
                        "EMBED_CPU_QUEUE", "cpu"
                    ),
                    "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
                }
            )
        env.update(self.extra_env)
        return env

    def _airflow(self) -> str:
        return str(Path(sys.executable).parent / "airflow")

    def start(self) -> AirflowStack:
        """Start PostgreSQL, migrate, start the components and wait until all are healthy.

        Raises StackError (with the failing component's log) if something does not come up.
        """
        started = time.monotonic()
        for path in (self.home, self.embed_home, self.log_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.postgres.start()
        if self.redis is not None:
            self.redis.start()
        (self.home / "passwords.json").write_text(json.dumps({self.username: self.password}))
        self.env = self._environment()
        migrate_log = self.log_dir / "db-migrate.log"
        with open(migrate_log, "w") as log:
            proc = subprocess.run(
                [self._airflow(), "db", "migrate"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.root,
                timeout=600,
            )
        if proc.returncode != 0:
            raise StackError(f"airflow db migrate failed:\n{_tail(migrate_log)}")
        commands = {
            "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(self.port)],
            "scheduler": ["scheduler", "--skip-serve-logs"],
            "triggerer": ["triggerer", "--skip-serve-logs"],
            "dag-processor": ["dag-processor"],
        }
        for name, argv in commands.items():
            log = open(self.log_dir / f"{name}.log", "w")  # noqa: SIM115 - closed in stop()
            self._logs.append(log)
            self.procs[name] = subprocess.Popen(
                [self._airflow(), *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.root,
                start_new_session=True,
            )
        self._wait_healthy(started + self.startup_timeout)
        for name, queues in self.initial_workers.items():
            self.start_worker(name, queues, wait=False)
        for name in self.initial_workers:
            self.wait_for_worker(name, started + self.startup_timeout)
        self.startup_seconds = time.monotonic() - started
        return self

    # -- Celery workers -------------------------------------------------------------------------
    def start_worker(
        self, name: str, queues: str, *, concurrency: int = 1, wait: bool = True
    ) -> CeleryWorker:
        """Start ``airflow celery worker --queues QUEUES`` as the host ``name``.

        Its Celery node is ``name@<machine>`` and the task instances it runs record ``name`` as
        their ``hostname``. It serves no logs (``--skip-serve-logs``: nothing listens beyond
        127.0.0.1); task logs are files in the stack's log folder. With ``wait``, returns once
        the worker reports ready.
        """
        if self.redis is None:
            raise StackError("Celery workers need the stack's executor='CeleryExecutor'")
        if name in self.workers:
            raise StackError(f"a worker named {name!r} is already running")
        env = {
            **self.env,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.worker_hostname",
            WORKER_HOSTNAME_VARIABLE: name,
            # the hostname callable lives in this module: tests/ on the worker's path
            "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), self.env["PYTHONPATH"]]),
        }
        log_path = self.log_dir / f"worker-{name}.log"
        log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        argv = [
            self._airflow(),
            "celery",
            "worker",
            "--queues", queues,
            "--celery-hostname", f"{name}@%h",
            "--concurrency", str(concurrency),
            "--skip-serve-logs",
            "--without-gossip",
            "--without-mingle",
        ]  # fmt: skip
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.root,
            start_new_session=True,
        )
        worker = CeleryWorker(name, queues, concurrency, proc, log_path, time.monotonic())
        self.workers[name] = worker
        if wait:
            self.wait_for_worker(name, time.monotonic() + self.startup_timeout)
        return worker

    def wait_for_worker(self, name: str, deadline: float) -> None:
        """Wait until the worker ``name`` has connected to the broker and reports ready."""
        worker = self.workers[name]
        while time.monotonic() < deadline:
            if worker.proc.poll() is not None:
                raise StackError(
                    f"celery worker {name} exited with code {worker.proc.returncode}:\n"
                    f"{_tail(worker.log_path)}"
                )
            if f"{name}@" in _tail(worker.log_path, 20000) and " ready." in _tail(
                worker.log_path, 20000
            ):
                return
            time.sleep(0.5)
        raise StackError(f"celery worker {name} was not ready in time:\n{_tail(worker.log_path)}")

    def kill_worker(self, name: str) -> list[int]:
        """Take the worker ``name`` down as a crashed host: SIGKILL to it and every process under
        it (task supervisors, task processes, step subprocesses). Returns the killed pids."""
        import psutil

        worker = self.workers.pop(name)
        try:
            root = psutil.Process(worker.proc.pid)
        except psutil.NoSuchProcess:
            return []
        # freeze the tree first, so nothing under it starts or escapes while it is collected
        tree = [root, *root.children(recursive=True)]
        for proc in tree:
            try:
                proc.suspend()
            except psutil.NoSuchProcess:
                pass
        tree += [p for p in root.children(recursive=True) if p not in tree]
        killed = []
        for proc in tree:
            try:
                proc.kill()
                killed.append(proc.pid)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(tree, timeout=10)
        worker.proc.wait(timeout=10)
        return killed

    def stop_workers(self) -> None:
        """Stop every worker with everything it runs (task processes have groups of their own)."""
        for name in list(self.workers):
            self.kill_worker(name)

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise StackError(
                    f"airflow {name} exited with code {proc.returncode}:\n"
                    f"{_tail(self.log_dir / f'{name}.log')}"
                )
        for name, worker in self.workers.items():
            if worker.proc.poll() is not None:
                raise StackError(
                    f"celery worker {name} exited with code {worker.proc.returncode}:\n"
                    f"{_tail(worker.log_path)}"
                )

    def _wait_healthy(self, deadline: float) -> None:
        health: Any = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                resp = self._client.get("/api/v2/monitor/health", timeout=5)
                health = resp.json() if resp.status_code == 200 else resp.text
            except (httpx.HTTPError, ValueError):
                time.sleep(0.5)
                continue
            if isinstance(health, dict) and all(
                (health.get(part) or {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            ):
                self.token()
                return
            time.sleep(0.5)
        raise StackError(f"the Airflow stack was not healthy in time: {health}\n{self.logs()}")

    def stop(self) -> None:
        """Stop the workers, every component (its whole process group), Redis, PostgreSQL."""
        self.stop_workers()
        for name in reversed(COMPONENTS):
            proc = self.procs.pop(name, None)
            if proc is not None:
                stop_group(proc)
        for log in self._logs:
            log.close()
        self._logs.clear()
        self._client.close()
        if self.redis is not None:
            self.redis.stop()
        self.postgres.stop()

    def __enter__(self) -> AirflowStack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def logs(self, chars: int = 3000) -> str:
        """The end of every component's and worker's log, for failure messages."""
        parts = []
        for name in ("db-migrate", *COMPONENTS):
            path = self.log_dir / f"{name}.log"
            if path.exists():
                parts.append(f"----- airflow {name} ({path}) -----\n{_tail(path, chars)}")
        for path in sorted(self.log_dir.glob("worker-*.log")):
            parts.append(f"----- celery {path.stem} ({path}) -----\n{_tail(path, chars)}")
        return "\n".join(parts)

    # -- REST API -------------------------------------------------------------------------------
    def token(self, refresh: bool = False) -> str:
        """A JWT for the REST API from ``POST /auth/token`` (the admin user's password)."""
        if self._token is None or refresh:
            resp = self._client.post(
                "/auth/token", json={"username": self.username, "password": self.password}
            )
            if resp.status_code not in (200, 201):
                raise StackError(f"POST /auth/token -> {resp.status_code}: {resp.text[:500]}")
            self._token = resp.json()["access_token"]
        return self._token

    def api(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        params: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (200, 201, 204),
    ) -> Any:
        """Call the REST API (``path`` like ``/api/v2/dags``) and return the decoded JSON.

        Raises StackError with the response body on any status not in ``ok``.
        """
        for attempt in range(2):
            try:
                resp = self._client.request(
                    method,
                    path,
                    json=json,
                    params=params,
                    headers={"Authorization": f"Bearer {self.token(refresh=attempt > 0)}"},
                )
            except httpx.TimeoutException as exc:
                self._check_alive()
                raise StackError(
                    f"{method} {path}: no answer in {self._client.timeout.read}s ({exc})\n"
                    f"{_tail(self.log_dir / 'api-server.log')}"
                ) from None
            if resp.status_code != 401:
                break
        if resp.status_code not in ok:
            raise StackError(f"{method} {path} -> {resp.status_code}: {resp.text[:2000]}")
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            return resp.text

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the DAG processor has parsed ``dag_id``; returns ``GET /dags/{id}/details``.

        Raises StackError with the file's import error, if there is one.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            details = self.api("GET", f"/api/v2/dags/{dag_id}/details", ok=(200, 404))
            if isinstance(details, dict) and details.get("dag_id") == dag_id:
                return details
            time.sleep(1)
        errors = self.api("GET", "/api/v2/importErrors").get("import_errors", [])
        text = "\n".join(f"{e['filename']}: {e['stack_trace'][-1500:]}" for e in errors)
        raise StackError(f"DAG {dag_id} did not appear in {timeout:.0f}s; import errors: {text}")

    def unpause(self, dag_id: str) -> None:
        """Unpause ``dag_id`` (waits for it to be parsed first)."""
        self.wait_for_dag(dag_id)
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def pause(self, dag_id: str) -> None:
        """Pause ``dag_id``."""
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": True})

    def trigger(
        self, dag_id: str, conf: dict[str, Any] | None = None, run_id: str | None = None
    ) -> str:
        """Trigger a run of ``dag_id`` with ``conf`` through the REST API; returns its run id."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)["dag_run_id"]

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """All runs of ``dag_id``, oldest first."""
        data = self.api(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"order_by": "id", "limit": 100}
        )
        return data["dag_runs"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """``{task_id: state}`` of a run's task instances."""
        data = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in data["task_instances"]}

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """A run's task instances as the API returns them (``task_id``, ``state``,
        ``try_number``, ``hostname``, ``queue``, ``start_date``, ``end_date``, ...)."""
        data = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return data["task_instances"]

    def task_tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """Every try of a task instance, first try first (``try_number``, ``state``,
        ``hostname``, ``queue``, ...)."""
        data = self.api(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries"
        )
        return sorted(data["task_instances"], key=lambda ti: ti["try_number"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """A task's XCom value (None when the task pushed none)."""
        data = self.api(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            ok=(200, 404),
        )
        if not isinstance(data, dict) or "value" not in data:
            return None
        value = data["value"]
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 0) -> str:
        """A task's log text, from the log folder (latest try when ``try_number`` is 0)."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        files = (
            sorted(folder.glob("attempt=*.log"), key=lambda p: int(p.stem.split("=")[-1]))
            if folder.exists()
            else []
        )
        if try_number:
            files = [p for p in files if p.stem == f"attempt={try_number}"]
        if files:
            return _log_text(files[-1].read_text(errors="replace"))
        number = try_number or 1
        data = self.api(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{number}",
            params={"full_content": "true"},
            ok=(200, 404),
        )
        if isinstance(data, dict):
            return _log_text("\n".join(json.dumps(c) for c in data.get("content") or []))
        return str(data)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600.0) -> RunResult:
        """Poll a run until it succeeds or fails; returns its state and its tasks' states.

        On failure the failed tasks' logs are printed; on timeout StackError is raised with the
        task states and the components' logs.
        """
        started = time.monotonic()
        deadline = started + timeout
        state = None
        while time.monotonic() < deadline:
            self._check_alive()
            run = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            state = run["state"]
            if state in FINAL_RUN_STATES:
                break
            time.sleep(2)
        else:
            states = self.task_states(dag_id, run_id)
            raise StackError(
                f"run {dag_id}/{run_id} still {state} after {timeout:.0f}s; tasks: {states}\n"
                f"{self.logs()}"
            )
        result = RunResult(
            dag_id=dag_id,
            run_id=run_id,
            state=state,
            tasks=self.task_states(dag_id, run_id),
            seconds=_run_seconds(run),
        )
        if state != "success":
            self.print_failed_logs(result)
        return result

    def print_failed_logs(self, result: RunResult) -> None:
        """Print the log of every task of ``result`` that failed (or is waiting to retry)."""
        print(f"run {result.dag_id}/{result.run_id} ended {result.state}: {result.tasks}")
        for task_id, state in result.tasks.items():
            if state in ("failed", "upstream_failed", "up_for_retry"):
                if state == "upstream_failed":
                    continue
                text = self.task_log(result.dag_id, result.run_id, task_id)
                print(f"----- log of {task_id} ({state}) -----\n{text[-6000:]}")

    # -- connections and variables --------------------------------------------------------------
    def set_connection(
        self,
        conn_id: str,
        conn_type: str,
        *,
        host: str | None = None,
        login: str | None = None,
        password: str | None = None,
        port: int | None = None,
        schema: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Create or replace the Airflow connection ``conn_id`` through the REST API."""
        body = {
            "connection_id": conn_id,
            "conn_type": conn_type,
            "host": host,
            "login": login,
            "password": password,
            "port": port,
            "schema": schema,
            "extra": json.dumps(extra) if extra is not None else None,
        }
        created = self.api("POST", "/api/v2/connections", body, ok=(200, 201, 409))
        if isinstance(created, dict) and created.get("connection_id") == conn_id:
            return
        self.api("PATCH", f"/api/v2/connections/{conn_id}", body)

    def set_variable(self, key: str, value: Any) -> None:
        """Create or replace the Airflow Variable ``key`` (non-strings are stored as JSON)."""
        text = value if isinstance(value, str) else json.dumps(value)
        body = {"key": key, "value": text}
        created = self.api("POST", "/api/v2/variables", body, ok=(200, 201, 409))
        if isinstance(created, dict) and created.get("key") == key:
            return
        self.api("PATCH", f"/api/v2/variables/{key}", body)

    def get_variable(self, key: str) -> str | None:
        """The Variable's value as stored (a string), or None when it does not exist."""
        data = self.api("GET", f"/api/v2/variables/{key}", ok=(200, 404))
        if isinstance(data, dict) and data.get("key") == key:
            return data["value"]
        return None


def _run_seconds(run: dict[str, Any]) -> float:
    from datetime import datetime

    start, end = run.get("start_date"), run.get("end_date")
    if not start or not end:
        return 0.0
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _log_text(raw: str) -> str:
    """Task logs are JSON lines in Airflow 3; keep each line's event (and error) text."""
    lines = []
    for line in raw.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            lines.append(line)
            continue
        if isinstance(record, dict):
            text = str(record.get("event", ""))
            if record.get("error_detail"):
                text += f" {json.dumps(record['error_detail'])[-2000:]}"
            lines.append(text)
        else:
            lines.append(line)
    return "\n".join(lines)
