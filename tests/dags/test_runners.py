"""The runner factory: the docker and kubernetes runners run the same command on the same files.

No Docker engine or cluster is needed here: these tests check the operators the factory builds
(command line, environment, secrets, GPUs, mounts, rendered pod spec) and the exit-code mapping.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.dag

PARAMS = {"data_path": "/data/pairs.jsonl", "epochs": 2, "matryoshka_dims": [64, 32]}


def _context(task_id: str = "train") -> dict:
    ti = SimpleNamespace(
        dag_id="retrain_embeddings",
        run_id="manual__2026-11-29",
        task_id=task_id,
        try_number=1,
        map_index=-1,
    )
    dag = SimpleNamespace(dag_id=ti.dag_id)
    return {"ti": ti, "dag": dag, "run_id": ti.run_id, "params": dict(PARAMS)}


def _dag(monkeypatch, runner: str):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("EMBED_RUNNER", runner)
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    return bag.dags["retrain_embeddings"]


@pytest.mark.parametrize("runner", ["docker", "kubernetes"])
def test_the_dag_is_the_same_with_every_runner(monkeypatch, runner):
    local = _dag(monkeypatch, "local")
    other = _dag(monkeypatch, runner)
    assert {t.task_id for t in other.tasks} == {t.task_id for t in local.tasks}
    steps = [t for t in other.tasks if hasattr(t, "step")]  # the watermark commit is no step
    assert len(steps) == len(other.tasks) - 1
    for task in other.tasks:
        assert task.upstream_task_ids == local.get_task(task.task_id).upstream_task_ids
        assert type(task) is type(local.get_task(task.task_id)) or task in steps
    for task in steps:
        assert task.step == local.get_task(task.task_id).step
        assert task.step_args == local.get_task(task.task_id).step_args
    expected = {"docker": "DockerStepOperator", "kubernetes": "KubernetesStepOperator"}[runner]
    assert {type(t).__name__ for t in steps} == {expected}


def test_unknown_runner_is_a_clear_error(monkeypatch):
    from embedding_ops.runners import selected_runner

    monkeypatch.setenv("EMBED_RUNNER", "slurm")
    with pytest.raises(ValueError, match="EMBED_RUNNER='slurm'.*local, docker, kubernetes"):
        selected_runner()
    monkeypatch.setenv("EMBED_RUNNER", "local")
    assert selected_runner() == "local"


# --- docker --------------------------------------------------------------------------------
def test_docker_step_runs_the_local_command_with_secrets_kept_private(monkeypatch, isolated_state):
    from embedding_ops.docker_runner import DockerStepOperator
    from embedding_ops.step_operator import LocalStepOperator

    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        json.dumps({"conn_type": "mlflow", "host": "http://mlflow:5000", "password": "mlpw"}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_HUGGINGFACE_DEFAULT",
        json.dumps({"conn_type": "huggingface", "password": "hf_secret_token"}),
    )
    op = DockerStepOperator(task_id="train", step="train")
    op.prepare_step(_context())
    local = LocalStepOperator(task_id="train", step="train").build_command(_context())
    assert op.command == ["python", *local[1:]]  # same command, the image's python
    assert op.command[3:6] == ["train", "--run-dir", local[5]]
    assert local[5].endswith("retrain_embeddings/manual__2026-11-29")
    assert op.environment["AIRFLOW_CTX_DAG_RUN_ID"] == "manual__2026-11-29"
    assert op.environment["EMBED_ARTIFACT_ROOT"] == str(isolated_state / "runs")
    assert op._private_environment["MLFLOW_TRACKING_PASSWORD"] == "mlpw"
    assert "HF_TOKEN" not in op._private_environment  # only publish gets the Hub token
    assert "mlpw" not in json.dumps(op.environment)
    publish = DockerStepOperator(task_id="publish", step="publish")
    publish.prepare_step(_context("publish"))
    assert publish._private_environment["HF_TOKEN"] == "hf_secret_token"


def test_docker_mounts_shm_and_no_gpu_by_default(monkeypatch, isolated_state):
    from embedding_ops.docker_runner import DockerStepOperator

    monkeypatch.delenv("EMBED_GPUS", raising=False)
    op = DockerStepOperator(task_id="train", step="train")
    assert op.device_requests is None  # a GPU request fails on hosts without the NVIDIA runtime
    assert op.shm_size == 2 * 1024**3
    assert op.auto_remove == "force"
    root = str(isolated_state / "runs")
    targets = {m["Target"]: m for m in op.mounts}
    assert targets[root]["Source"] == root and targets[root]["Type"] == "bind"
    assert targets["/cache/huggingface"]["Type"] == "volume"
    monkeypatch.setenv("EMBED_ARTIFACT_VOLUME", "embed-runs")
    monkeypatch.setenv("EMBED_DOCKER_SHM_SIZE", "512m")
    op = DockerStepOperator(task_id="train", step="train")
    assert {m["Target"]: m["Source"] for m in op.mounts}[root] == "embed-runs"
    assert op.shm_size == 512 * 1024**2


@pytest.mark.parametrize(
    ("gpus", "expected"),
    [
        ("all", {"Count": -1, "Capabilities": [["gpu"]]}),
        ("2", {"Count": 2, "Capabilities": [["gpu"]]}),
        ("0,1", {"DeviceIDs": ["0", "1"], "Capabilities": [["gpu"]]}),
    ],
)
def test_docker_gpu_requests(monkeypatch, gpus, expected):
    from embedding_ops.docker_runner import DockerStepOperator

    monkeypatch.setenv("EMBED_GPUS", gpus)
    (request,) = DockerStepOperator(task_id="train", step="train").device_requests
    assert {k: v for k, v in request.items() if k in expected} == expected


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(99, "AirflowSkipException"), (3, "AirflowFailException"), (1, "AirflowException")],
)
def test_docker_exit_codes_follow_the_step_contract(monkeypatch, code, outcome):
    from airflow.providers.docker.exceptions import DockerContainerFailedException
    from airflow.providers.docker.operators.docker import DockerOperator
    from embedding_ops.docker_runner import DockerStepOperator

    logs = ["prepare: reading", '{"step": "prepare", "reason": "nothing changed"}']
    if code == 3:
        logs.append("error: data_path x.jsonl does not exist")

    def fail(self, context):
        raise DockerContainerFailedException(
            f"Docker container failed: {{'StatusCode': {code}, 'Error': None}}", logs=logs
        )

    monkeypatch.setattr(DockerOperator, "execute", fail)
    op = DockerStepOperator(task_id="prepare", step="prepare")
    with pytest.raises(Exception) as info:
        op.execute(_context("prepare"))
    assert type(info.value).__name__ == outcome
    if code == 99:
        assert "nothing changed" in str(info.value)
    if code == 3:
        assert "data_path x.jsonl does not exist" in str(info.value)


def test_docker_success_returns_the_summary_line(monkeypatch):
    from airflow.providers.docker.operators.docker import DockerOperator
    from embedding_ops.docker_runner import DockerStepOperator

    lines = ["train: step 1/2", '{"step": "train", "steps": 2}', ""]
    monkeypatch.setattr(DockerOperator, "execute", lambda self, context: lines)
    assert DockerStepOperator(task_id="train", step="train").execute(_context()) == {
        "step": "train",
        "steps": 2,
    }


# --- kubernetes ----------------------------------------------------------------------------
def test_kubernetes_pod_spec(monkeypatch, isolated_state):
    from embedding_ops.kubernetes_runner import KubernetesStepOperator

    monkeypatch.setenv("EMBED_GPUS", "2")
    monkeypatch.setenv("EMBED_TASK_IMAGE", "registry.local/embedding-tasks:1.0")
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        json.dumps({"conn_type": "mlflow", "host": "http://mlflow:5000", "password": "mlpw"}),
    )
    op = KubernetesStepOperator(task_id="train", step="train")
    pod = op.build_pod_request_obj(_context(), dry_run=True)
    (container,) = [c for c in pod.spec.containers if c.name == "base"]
    assert container.image == "registry.local/embedding-tasks:1.0"
    assert container.command == ["python", "-m", "tasks"]
    args = container.args
    assert args[:3] == [
        "train",
        "--run-dir",
        str(isolated_state / "runs" / "retrain_embeddings" / "manual__2026-11-29"),
    ]
    assert args[-2:] == ["--summary-file", "/airflow/xcom/return.json"]
    assert "--epochs" in args and args[args.index("--epochs") + 1] == "2"
    assert container.resources.limits == {"nvidia.com/gpu": "2"}
    (mount,) = [m for m in container.volume_mounts if m.name == "artifacts"]
    assert mount.mount_path == str(isolated_state / "runs")
    (volume,) = [v for v in pod.spec.volumes if v.name == "artifacts"]
    assert volume.persistent_volume_claim.claim_name == "embed-artifacts"
    (shm,) = [v for v in pod.spec.volumes if v.name == "dshm"]
    assert shm.empty_dir.medium == "Memory" and shm.empty_dir.size_limit == "2Gi"
    assert [m.mount_path for m in container.volume_mounts if m.name == "dshm"] == ["/dev/shm"]
    secret_refs = [e.secret_ref.name for e in container.env_from or [] if e.secret_ref]
    assert secret_refs == ["mlflow-credentials"]
    env = {e.name: e.value for e in container.env}
    assert env["AIRFLOW_CTX_TASK_ID"] == "train"
    # Connection values never go into a pod spec: secrets come from Kubernetes Secrets.
    assert "mlpw" not in json.dumps(pod.to_dict(), default=str)
    assert any(c.name == "airflow-xcom-sidecar" for c in pod.spec.containers)

    publish = KubernetesStepOperator(task_id="publish", step="publish")
    pod = publish.build_pod_request_obj(_context("publish"), dry_run=True)
    (container,) = [c for c in pod.spec.containers if c.name == "base"]
    assert [e.secret_ref.name for e in container.env_from] == [
        "mlflow-credentials",
        "huggingface-token",
    ]

    # prepare gets the Argilla Secret only when one is configured (a missing Secret stops a pod)
    prepare = KubernetesStepOperator(task_id="prepare", step="prepare")
    pod = prepare.build_pod_request_obj(_context("prepare"), dry_run=True)
    (container,) = [c for c in pod.spec.containers if c.name == "base"]
    assert [e.secret_ref.name for e in container.env_from] == ["mlflow-credentials"]
    monkeypatch.setenv("EMBED_K8S_ARGILLA_SECRET", "argilla-credentials")
    prepare = KubernetesStepOperator(task_id="prepare", step="prepare")
    pod = prepare.build_pod_request_obj(_context("prepare"), dry_run=True)
    (container,) = [c for c in pod.spec.containers if c.name == "base"]
    assert [e.secret_ref.name for e in container.env_from] == [
        "mlflow-credentials",
        "argilla-credentials",
    ]


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(99, "AirflowSkipException"), (3, "AirflowFailException"), (1, "AirflowException")],
)
def test_kubernetes_exit_codes_follow_the_step_contract(monkeypatch, code, outcome):
    """A failed pod's exit code maps as in every other runner (the shared contract)."""
    from types import SimpleNamespace

    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk.exceptions import AirflowException
    from embedding_ops.kubernetes_runner import KubernetesStepOperator

    def fail(self, pod, remote_pod, xcom_result=None, context=None):
        raise AirflowException("Pod embed-prepare returned a failure")

    monkeypatch.setattr(KubernetesPodOperator, "cleanup", fail)
    op = KubernetesStepOperator(task_id="prepare", step="prepare")
    terminated = SimpleNamespace(exit_code=code)
    container = SimpleNamespace(
        name=op.base_container_name, state=SimpleNamespace(terminated=terminated)
    )
    remote_pod = SimpleNamespace(status=SimpleNamespace(container_statuses=[container]))
    with pytest.raises(Exception) as info:
        op.cleanup(None, remote_pod)
    assert type(info.value).__name__ == outcome
    assert f"prepare failed (exit {code})" in str(info.value) or code == 99
    # a pod without a known exit code keeps the operator's own error
    with pytest.raises(AirflowException, match="returned a failure"):
        op.cleanup(None, SimpleNamespace(status=None))


def test_both_container_runners_start_the_same_default_image(monkeypatch):
    from embedding_ops.docker_runner import DockerStepOperator
    from embedding_ops.kubernetes_runner import KubernetesStepOperator
    from embedding_ops.step_spec import DEFAULT_IMAGE

    monkeypatch.delenv("EMBED_TASK_IMAGE", raising=False)
    docker = DockerStepOperator(task_id="train", step="train")
    pod = KubernetesStepOperator(task_id="train", step="train")
    assert docker.image == pod.image == DEFAULT_IMAGE
    monkeypatch.setenv("EMBED_TASK_IMAGE", "registry.internal/embedding-tasks:7")
    assert KubernetesStepOperator(task_id="t", step="train").image.endswith("tasks:7")
    assert DockerStepOperator(task_id="t", step="train").image.endswith("tasks:7")


def test_kubernetes_gpu_limit_needs_a_count(monkeypatch):
    from embedding_ops.kubernetes_runner import gpu_limit

    assert gpu_limit("") == 0 and gpu_limit("4") == 4 and gpu_limit("0,1") == 2
    with pytest.raises(ValueError, match="give a count"):
        gpu_limit("all")


def test_summary_file_option_writes_the_summary(tmp_path, tiny_model_dir):
    from conftest import last_json, make_pairs, run_cli, tiny_options, write_jsonl

    data = write_jsonl(tmp_path / "pairs.jsonl", make_pairs(n_docs=40))
    out = tmp_path / "xcom" / "return.json"
    code, stdout, err = run_cli(
        "prepare",
        "--run-dir",
        str(tmp_path / "run"),
        *tiny_options(data, tiny_model_dir),
        "--summary-file",
        str(out),
    )
    assert code == 0, err
    assert json.loads(out.read_text()) == last_json(stdout)
    failed = tmp_path / "xcom" / "failed.json"
    code, _, _ = run_cli(
        "train", "--run-dir", str(tmp_path / "empty"), "--summary-file", str(failed)
    )
    assert code != 0 and not failed.exists()  # a failed step has no summary


def test_local_step_does_not_inherit_the_task_process_stdin(monkeypatch, tmp_path, isolated_state):
    """Under Airflow 3 a task process's stdin is its supervisor's socket. The step must not hold
    it: a helper process the step leaves running would keep the task from ending."""
    import os

    from embedding_ops.step_operator import LocalStepOperator

    # a stand-in for `python -m tasks`: reports what its stdin is
    fake = tmp_path / "fake_tasks.py"
    fake.write_text(
        "import json, os, select, stat, sys\n"
        "mode = os.fstat(0).st_mode\n"
        "ready = select.select([0], [], [], 1)[0]\n"
        "data = os.read(0, 100).decode() if ready else None\n"
        "print(json.dumps({'step': sys.argv[1], 'stdin_is_socket': stat.S_ISSOCK(mode),\n"
        "                  'stdin_data': data}))\n"
    )
    (tmp_path / "python").write_text(f'#!/bin/sh\nshift 2\nexec python3 {fake} "$@"\n')
    (tmp_path / "python").chmod(0o755)
    monkeypatch.setenv("EMBED_TASKS_PYTHON", str(tmp_path / "python"))
    # the task process's stdin is a socket with unread data, as under the supervisor
    ours, theirs = __import__("socket").socketpair()
    saved = os.dup(0)
    try:
        os.dup2(theirs.fileno(), 0)
        ours.sendall(b"supervisor message")
        summary = LocalStepOperator(task_id="report", step="report").execute(_context("report"))
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        ours.close()
        theirs.close()
    assert summary == {"step": "report", "stdin_is_socket": False, "stdin_data": ""}
