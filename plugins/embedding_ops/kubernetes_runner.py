"""The ``kubernetes`` runner: a step as a pod of the task image, for users who outgrow one host.

``KubernetesStepOperator`` is the provider's ``KubernetesPodOperator`` running the same
``python -m tasks <step> --run-dir DIR <options>`` as the other runners, with:

- the run directories on a shared volume claim (``EMBED_K8S_PVC``, default ``embed-artifacts``)
  mounted at the same artifact root path as on the workers, and the steps' state (``EMBED_HOME``
  of the image, ``/data/state``: the last successful run's fingerprint, the evaluation cache) in
  the folder :data:`STATE_SUBPATH` of the same claim, so that it outlives the pod: without it
  every nightly run would train again and re-encode the base model. A claim shared by pods on
  several nodes needs the ``ReadWriteMany`` access mode (NFS, CephFS, a cloud file store);
- ``nvidia.com/gpu`` limits when ``EMBED_GPUS`` is a count (``all`` is not a Kubernetes amount);
- secrets from Kubernetes Secrets, as environment variables: ``EMBED_K8S_MLFLOW_SECRET`` (default
  ``mlflow-credentials``: MLFLOW_TRACKING_URI/USERNAME/PASSWORD) for every step and
  ``EMBED_K8S_HF_SECRET`` (default ``huggingface-token``: HF_TOKEN) for ``publish`` only. Airflow
  connections are not copied into pod specs;
- the summary written by the step to ``/airflow/xcom/return.json`` (``--summary-file``) and
  returned as the XCom through the provider's sidecar; exit code 99 skips, 3 fails without retry.

Settings: ``EMBED_TASK_IMAGE``, ``EMBED_K8S_NAMESPACE`` (default ``airflow``), ``EMBED_K8S_PVC``,
``EMBED_GPUS``, ``EMBED_K8S_MLFLOW_SECRET``, ``EMBED_K8S_HF_SECRET``.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from airflow.sdk.exceptions import AirflowException

from embedding_ops.contract import raise_for_exit_code
from embedding_ops.step_spec import command, gpu_request, public_env, task_image
from tasks.io import EXIT_NOTHING_TO_DO

XCOM_FILE = "/airflow/xcom/return.json"
#: Where the task image keeps the steps' state (its ``EMBED_HOME``).
STATE_TARGET = "/data/state"
#: The folder of the artifacts claim that holds the steps' state.
STATE_SUBPATH = ".embed-state"


def gpu_limit(gpus: str) -> int:
    """The ``nvidia.com/gpu`` amount for ``EMBED_GPUS`` (0 = none)."""
    if gpus in ("", "0", "none", "false"):
        return 0
    if gpus.isdigit():
        return int(gpus)
    if gpus == "all":
        raise ValueError("EMBED_GPUS=all has no meaning on Kubernetes: give a count, e.g. 2")
    return len([part for part in gpus.split(",") if part.strip()])


def _volume_spec() -> tuple[list[Any], list[Any]]:
    from kubernetes.client import models as k8s

    from tasks.io import artifact_root

    claim = os.environ.get("EMBED_K8S_PVC", "embed-artifacts")
    volume = k8s.V1Volume(
        name="artifacts",
        persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name=claim),
    )
    mount = k8s.V1VolumeMount(name="artifacts", mount_path=str(artifact_root()))
    state = k8s.V1VolumeMount(name="artifacts", mount_path=STATE_TARGET, sub_path=STATE_SUBPATH)
    # A pod's /dev/shm is 64Mi by default: too small for DataLoader workers and for NCCL when the
    # train step runs one process per GPU (train_processes). A memory-backed emptyDir replaces it.
    shm = k8s.V1Volume(
        name="dshm",
        empty_dir=k8s.V1EmptyDirVolumeSource(
            medium="Memory", size_limit=os.environ.get("EMBED_K8S_SHM_SIZE", "2Gi")
        ),
    )
    shm_mount = k8s.V1VolumeMount(name="dshm", mount_path="/dev/shm")
    return [volume, shm], [mount, state, shm_mount]


def _resources(gpus: int) -> Any:
    from kubernetes.client import models as k8s

    if not gpus:
        return None
    return k8s.V1ResourceRequirements(limits={"nvidia.com/gpu": str(gpus)})


def _secrets(step: str) -> list[Secret]:
    names = [os.environ.get("EMBED_K8S_MLFLOW_SECRET", "mlflow-credentials")]
    if step == "prepare" and os.environ.get("EMBED_K8S_ARGILLA_SECRET"):
        # ARGILLA_API_URL / ARGILLA_API_KEY; only when configured: a missing Secret stops the pod
        names.append(os.environ["EMBED_K8S_ARGILLA_SECRET"])
    if step == "publish":
        names.append(os.environ.get("EMBED_K8S_HF_SECRET", "huggingface-token"))
    return [Secret("env", None, name) for name in names if name]


class KubernetesStepOperator(KubernetesPodOperator):
    """Run one pipeline step as a Kubernetes pod of the task image.

    :param step: step name (prepare, train, evaluate, report, register, publish).
    :param step_args: extra options for this step (e.g. ``["--model", "base"]``).
    """

    ui_color = "#e0e7ff"

    def __init__(self, *, step: str, step_args: list[str] | None = None, **kwargs: Any) -> None:
        volumes, volume_mounts = _volume_spec()
        kwargs.setdefault("image", task_image())
        kwargs.setdefault("namespace", os.environ.get("EMBED_K8S_NAMESPACE", "airflow"))
        kwargs.setdefault("name", f"embed-{step}")
        kwargs.setdefault("volumes", volumes)
        kwargs.setdefault("volume_mounts", volume_mounts)
        kwargs.setdefault("container_resources", _resources(gpu_limit(gpu_request())))
        kwargs.setdefault("secrets", _secrets(step))
        kwargs.setdefault("do_xcom_push", True)
        kwargs.setdefault("get_logs", True)
        kwargs.setdefault("skip_on_exit_code", EXIT_NOTHING_TO_DO)
        kwargs.setdefault("on_finish_action", "delete_succeeded_pod")
        super().__init__(**kwargs)
        self.step = step
        self.step_args = list(step_args or [])

    def prepare_step(self, context: Any) -> None:
        """Fill in the command line and environment of this task instance."""
        argv = command(context, self.step, self.step_args) + ["--summary-file", XCOM_FILE]
        self.cmds, self.arguments = argv[:3], argv[3:]
        from kubernetes.client import models as k8s

        self.env_vars = [k8s.V1EnvVar(name=k, value=v) for k, v in public_env(context).items()]

    def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> Any:
        if context is not None:
            self.prepare_step(context)
        return super().build_pod_request_obj(context, dry_run=dry_run)

    def cleanup(self, pod: Any, remote_pod: Any, xcom_result: Any = None, context: Any = None):
        try:
            return super().cleanup(pod, remote_pod, xcom_result, context)
        except AirflowException:
            code = _exit_code(remote_pod, self.base_container_name)
            if code is None:
                raise
            # the same outcome as every other runner: 3 fails without retry, others retry
            raise_for_exit_code(self.step, code, "see the pod log above", None)
            raise


def _exit_code(remote_pod: Any, container: str) -> int | None:
    statuses = remote_pod.status.container_statuses if remote_pod and remote_pod.status else None
    for status in statuses or []:
        if status.name == container and status.state and status.state.terminated:
            return status.state.terminated.exit_code
    return None
