"""A real ``mlflow server`` for the tests, on 127.0.0.1 with a SQLite store and local artifacts.

The server is the same one users run (``mlflow server``, FastAPI/uvicorn, artifacts proxied with
``--artifacts-destination``), started in its own process group so that it and its workers are
stopped together. MLflow's background job runner is switched off (the tests need no jobs and it
starts several processes).

Example::

    with MlflowServer(tmp_path) as server:
        os.environ["MLFLOW_TRACKING_URI"] = server.url
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from support.processes import stop_group


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MlflowServer:
    """Start/stop ``mlflow server`` with its store under ``root``."""

    def __init__(self, root: Path, *, startup_timeout: float = 120.0) -> None:
        self.root = Path(root)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.log_path = self.root / "mlflow-server.log"

    def start(self) -> MlflowServer:
        """Start the server and wait for ``/health``; raises RuntimeError with its log if not."""
        self.root.mkdir(parents=True, exist_ok=True)
        mlflow_cli = Path(sys.executable).parent / "mlflow"
        argv = [
            str(mlflow_cli),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend-store-uri",
            f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.root / "artifacts"),
            "--workers",
            "1",
        ]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        env.pop("MLFLOW_TRACKING_URI", None)
        log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self._log = log
        self.proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        tail = self.log_path.read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"mlflow server did not start on {self.url}:\n{tail}")

    def stop(self) -> None:
        """Stop the server and every process it started (its process group)."""
        if self.proc is None:
            return
        stop_group(self.proc)
        self._log.close()
        self.proc = None

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
