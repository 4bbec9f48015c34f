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
  exit code mapped through the step contract (99 skip, 3 fail without retry, else retry).

Settings (environment of the Airflow workers): ``EMBED_TASK_IMAGE`` (default
``embedding-tasks:latest``), ``EMBED_DOCKER_URL`` (default ``unix://var/run/docker.sock``),
``EMBED_DOCKER_NETWORK`` (network mode, default Docker's), ``EMBED_GPUS``,
``EMBED_DOCKER_SHM_SIZE``, ``EMBED_ARTIFACT_VOLUME``, ``EMBED_HF_CACHE_VOLUME``,
``EMBED_STATE_VOLUME``, ``EMBED_DOCKER_MOUNTS``, ``EMBED_DOCKER_USER``.
"""

from __future__ import annotations

import os
import re
from typing import Any

from airflow.providers.docker.exceptions import DockerContainerFailedException
from airflow.providers.docker.operators.docker import DockerOperator

from embedding_ops.contract import parse_summary, raise_for_exit_code
from embedding_ops.step_spec import command, gpu_request, public_env, secret_env, task_image

HF_CACHE_TARGET = "/cache/huggingface"
STATE_TARGET = "/data/state"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*$", re.I)


def parse_size(text: str) -> int:
    """``"2g"`` -> bytes (k/m/g/t, powers of 1024); a ValueError names the bad value."""
    match = _SIZE.match(text or "")
    if not match:
        raise ValueError(f"EMBED_DOCKER_SHM_SIZE={text!r} is not a size like 2g or 512m")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** " kmgt".index(unit or " "))


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
    state = os.environ.get("EMBED_STATE_VOLUME", "embed-state")
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
        Mount(target=STATE_TARGET, source=state, type="volume"),
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
        kwargs.setdefault("docker_url", os.environ.get("EMBED_DOCKER_URL"))
        kwargs.setdefault("network_mode", os.environ.get("EMBED_DOCKER_NETWORK") or None)
        kwargs.setdefault("shm_size", parse_size(os.environ.get("EMBED_DOCKER_SHM_SIZE", "2g")))
        kwargs.setdefault("device_requests", device_requests(gpu_request()))
        kwargs.setdefault("mounts", mounts())
        kwargs.setdefault("user", os.environ.get("EMBED_DOCKER_USER") or None)
        kwargs.setdefault("auto_remove", "force")
        kwargs.setdefault("mount_tmp_dir", False)
        kwargs.setdefault("xcom_all", True)  # every log line, so the summary line is found
        if kwargs.get("docker_url") is None:
            kwargs.pop("docker_url")
        super().__init__(**kwargs)
        self.step = step
        self.step_args = list(step_args or [])

    def prepare_step(self, context: Any) -> None:
        """Fill in the command and environments of this task instance (before the container)."""
        self.command = command(context, self.step, self.step_args)
        self.environment = {**(self.environment or {}), **public_env(context)}
        self._private_environment = {**(self._private_environment or {}), **secret_env(self.step)}

    def execute(self, context: Any) -> Any:
        self.prepare_step(context)
        if not os.environ.get("EMBED_ARTIFACT_VOLUME"):
            from tasks.io import artifact_root

            # Docker refuses a bind mount whose source does not exist (a fresh artifact root).
            artifact_root().mkdir(parents=True, exist_ok=True)
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
        return parse_summary([str(line) for line in lines])
