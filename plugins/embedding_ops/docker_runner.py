"""The ``docker`` runner: a step in a container of the task image (``docker/Dockerfile``).

``DockerStepOperator`` is the provider's ``DockerOperator`` running the same
``python -m tasks <step> --run-dir DIR <options>`` as the local runner, with:

- the artifact root mounted at the *same path* inside the container (a bind mount of that host
  directory, or the named volume ``EMBED_ARTIFACT_VOLUME``), so run directories are identical;
- the Hugging Face cache on a named volume (``EMBED_HF_CACHE_VOLUME``, default
  ``embed-hf-cache``) at ``/cache/huggingface``, and the step state (``EMBED_HOME`` of the image:
  the last successful run's fingerprint, the evaluation cache) on the named volume
  ``EMBED_STATE_VOLUME`` (default ``embed-state``) at ``/data/state``, so that they outlive the
  container: without it every nightly run would train again and re-encode the base model;
- more host directories at the same path, read-only, from ``EMBED_DOCKER_MOUNTS`` (comma
  separated): local data files and model directories named in the params;
- the user ``EMBED_DOCKER_USER`` (``uid[:gid]``, default the image's ``tasks`` user), for
  bind-mounted run directories owned by the Airflow worker's user;
- GPUs through ``device_requests`` only when ``EMBED_GPUS`` asks for them (``all``, a count or
  device ids). Off by default: on a host without the NVIDIA runtime a GPU request fails with
  ``could not select device driver``;
- ``shm_size`` ``EMBED_DOCKER_SHM_SIZE`` (default ``2g``: data loaders and NCCL need more than
  Docker's 64 MB), ``auto_remove="force"`` (the log is already in the task log);
- connection values (MLflow credentials, the Hub token for ``publish``) through
  ``private_environment``, never rendered or logged;
- the container's log streamed into the task log, its last JSON line returned as the XCom, and its
  exit code mapped through the step contract (99 skip, 3 fail without retry, else retry);
- the Docker engine of the worker that runs the task: ``EMBED_DOCKER_URL`` (else ``DOCKER_HOST``,
  else the local socket ``unix://var/run/docker.sock``) read from the worker's environment when
  the task runs, so with the CeleryExecutor a GPU worker starts its step containers on its own
  host's engine and GPUs, never on a central one;
- with the artifact root bind-mounted (no ``EMBED_ARTIFACT_VOLUME``), the same check as the local
  runner: a run directory written on another host and missing here fails the task with one line
  (:mod:`embedding_ops.shared_run_dir`).

Settings (environment of the Airflow workers): ``EMBED_TASK_IMAGE`` (default
``embedding-tasks:latest``), ``EMBED_DOCKER_URL`` (default: the worker's local engine),
``EMBED_DOCKER_NETWORK`` (network mode, default Docker's), ``EMBED_GPUS``,
``EMBED_DOCKER_SHM_SIZE``, ``EMBED_ARTIFACT_VOLUME``, ``EMBED_HF_CACHE_VOLUME``,
``EMBED_STATE_VOLUME`` (a volume name, or an absolute host path to bind-mount, e.g. on the shared
volume of several hosts), ``EMBED_DOCKER_MOUNTS``, ``EMBED_DOCKER_USER``.
"""

from __future__ import annotations

import os
import re
from typing import Any

from airflow.providers.docker.exceptions import DockerContainerFailedException
from airflow.providers.docker.operators.docker import DockerOperator

from embedding_ops.contract import parse_summary, raise_for_exit_code
from embedding_ops.shared_run_dir import check_inputs_here, record_writer
from embedding_ops.step_spec import (
    command,
    gpu_request,
    public_env,
    run_dir,
    secret_env,
    task_image,
)

HF_CACHE_TARGET = "/cache/huggingface"
STATE_TARGET = "/data/state"
#: The engine a worker uses when neither ``EMBED_DOCKER_URL`` nor ``DOCKER_HOST`` is set: its own.
LOCAL_ENGINE = "unix://var/run/docker.sock"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*$", re.I)


def parse_size(text: str) -> int:
    """``"2g"`` -> bytes (k/m/g/t, powers of 1024); a ValueError names the bad value."""
    match = _SIZE.match(text or "")
    if not match:
        raise ValueError(f"EMBED_DOCKER_SHM_SIZE={text!r} is not a size like 2g or 512m")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** " kmgt".index(unit or " "))


def engine_url() -> str:
    """The Docker engine of this worker: ``EMBED_DOCKER_URL``, else ``DOCKER_HOST``, else the
    local socket (:data:`LOCAL_ENGINE`)."""
    return (
        os.environ.get("EMBED_DOCKER_URL") or os.environ.get("DOCKER_HOST") or LOCAL_ENGINE
    ).strip()


def device_requests(gpus: str) -> list[Any] | None:
    """``device_requests`` for ``EMBED_GPUS`` (None when no GPU is asked for)."""
    from docker.types import DeviceRequest

    if gpus in ("", "0", "none", "false"):
        return None
    if gpus == "all":
        return [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    if gpus.isdigit():
        return [DeviceRequest(count=int(gpus), capabilities=[["gpu"]])]
    ids = [part.strip() for part in gpus.split(",") if part.strip()]
    return [DeviceRequest(device_ids=ids, capabilities=[["gpu"]])]


def mounts() -> list[Any]:
    """The artifact root at the same path inside the container, the HF cache and state volumes,
    and the read-only bind mounts of ``EMBED_DOCKER_MOUNTS``."""
    from docker.types import Mount

    from tasks.io import artifact_root

    root = str(artifact_root())
    volume = os.environ.get("EMBED_ARTIFACT_VOLUME")
    artifacts = (
        Mount(target=root, source=volume, type="volume")
        if volume
        else Mount(target=root, source=root, type="bind")
    )
    cache = os.environ.get("EMBED_HF_CACHE_VOLUME", "embed-hf-cache")
    state = os.environ.get("EMBED_STATE_VOLUME") or "embed-state"
    extra = [
        Mount(target=path, source=path, type="bind", read_only=True)
        for path in (p.strip() for p in os.environ.get("EMBED_DOCKER_MOUNTS", "").split(","))
        if path and path != root
    ]
    for mount in extra:
        if not os.path.isabs(mount["Source"]):
            raise ValueError(f"EMBED_DOCKER_MOUNTS: {mount['Source']!r} is not an absolute path")
    return [
        artifacts,
        Mount(target=HF_CACHE_TARGET, source=cache, type="volume"),
        # a host path (on the shared volume of several hosts) is bind-mounted, a name a volume
        Mount(target=STATE_TARGET, source=state, type="bind" if os.path.isabs(state) else "volume"),
        *extra,
    ]


class DockerStepOperator(DockerOperator):
    """Run one pipeline step in a container of the task image.

    :param step: step name (prepare, train, evaluate, report, register, publish).
    :param step_args: extra options for this step (e.g. ``["--model", "base"]``).
    """

    ui_color = "#dbeafe"

    def __init__(self, *, step: str, step_args: list[str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("image", task_image())
        # without an explicit docker_url, the engine is looked up again when the task runs
        engine_given = kwargs.get("docker_url") is not None
        kwargs.setdefault("docker_url", engine_url())
        kwargs.setdefault("network_mode", os.environ.get("EMBED_DOCKER_NETWORK") or None)
        kwargs.setdefault("shm_size", parse_size(os.environ.get("EMBED_DOCKER_SHM_SIZE", "2g")))
        kwargs.setdefault("device_requests", device_requests(gpu_request()))
        kwargs.setdefault("mounts", mounts())
        kwargs.setdefault("user", os.environ.get("EMBED_DOCKER_USER") or None)
        kwargs.setdefault("auto_remove", "force")
        kwargs.setdefault("mount_tmp_dir", False)
        kwargs.setdefault("xcom_all", True)  # every log line, so the summary line is found
        super().__init__(**kwargs)
        self.step = step
        self.step_args = list(step_args or [])
        self.engine_given = engine_given

    def prepare_step(self, context: Any) -> None:
        """Fill in the command and environments of this task instance (before the container)."""
        self.command = command(context, self.step, self.step_args)
        self.environment = {**(self.environment or {}), **public_env(context)}
        self._private_environment = {**(self._private_environment or {}), **secret_env(self.step)}

    def use_local_engine(self) -> None:
        """Point the operator at the engine of the worker running it (unless one was given):
        the DAG may have been parsed elsewhere, the containers start where the task runs."""
        if not self.engine_given:
            self.docker_url = engine_url()
            self.__dict__.pop("hook", None)  # a client made for another engine

    def execute(self, context: Any) -> Any:
        self.use_local_engine()
        shared = not os.environ.get("EMBED_ARTIFACT_VOLUME")
        if shared:
            from tasks.io import artifact_root

            # the worker mounts the artifact root it bind-mounts into the containers
            check_inputs_here(context, self.step, run_dir(context))
            # Docker refuses a bind mount whose source does not exist (a fresh artifact root).
            artifact_root().mkdir(parents=True, exist_ok=True)
        self.prepare_step(context)
        try:
            last_line = super().execute(context)
        except DockerContainerFailedException as exc:
            logs = [str(line).rstrip("\n") for line in (exc.logs or [])]
            match = re.search(r"'StatusCode': (\d+)", str(exc))
            code = int(match.group(1)) if match else 1
            reason = next(
                (line.strip() for line in reversed(logs) if line.strip().startswith("error:")),
                None,
            )
            raise_for_exit_code(self.step, code, reason, parse_summary(logs))
            raise
        lines = last_line if isinstance(last_line, list) else [last_line or ""]
        if self.step == "prepare" and shared:
            record_writer(context, run_dir(context))
        return parse_summary([str(line) for line in lines])
