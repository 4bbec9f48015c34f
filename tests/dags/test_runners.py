"""The runner factory: the docker and kubernetes runners run the same command on the same files.

No Docker engine or cluster is needed here: these tests check the operators the factory builds
(command line, environment, secrets, GPUs, mounts, rendered pod spec, worker queues, the engine a
worker uses) and the exit-code mapping, and that a run directory written on another host is
refused with one line.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.dag

PARAMS = {"data_path": "/data/pairs.jsonl", "epochs": 2, "matryoshka_dims": [64, 32]}


def _context(task_id: str = "train", host: str = "worker-1", xcoms: dict | None = None) -> dict:
    """A task's context on ``host``; ``xcoms`` ({(task_id, key): value}) holds the run's XComs."""
    xcoms = {} if xcoms is None else xcoms
    ti = SimpleNamespace(
        dag_id="retrain_embeddings",
        run_id="manual__2026-11-29",
        task_id=task_id,
        try_number=1,
        map_index=-1,
        hostname=host,
    )
    ti.xcom_push = lambda key, value: xcoms.__setitem__((task_id, key), value)
    ti.xcom_pull = lambda task_ids, key="return_value": xcoms.get((task_ids, key))
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
    runs, state = [m for m in container.volume_mounts if m.name == "artifacts"]
    assert runs.mount_path == str(isolated_state / "runs") and not runs.sub_path
    # the state (last-success fingerprint, evaluation cache) outlives the pod, on the same claim
    assert (state.mount_path, state.sub_path) == ("/data/state", ".embed-state")
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


# --- queues: heavy steps on the GPU workers, the rest on the CPU workers ---------------------
#: The retrain DAG's heavy tasks (a ``mine`` task, when the DAG has one, is heavy too).
HEAVY_TASKS = {"train", "evaluate_base", "evaluate_champion", "evaluate_finetuned"}


def _heavy(dag) -> set[str]:
    from embedding_ops.queues import HEAVY_STEPS

    heavy = {t.task_id for t in dag.tasks if getattr(t, "step", None) in HEAVY_STEPS}
    assert HEAVY_TASKS <= heavy, heavy
    return heavy


def test_heavy_steps_have_one_home():
    from embedding_ops.queues import HEAVY_STEPS, queue_for

    assert HEAVY_STEPS == {"train", "evaluate", "mine"}
    assert queue_for("mine") == queue_for("train") == "gpu"
    assert {queue_for(s) for s in ("prepare", "report", "register", "publish")} == {"cpu"}


@pytest.mark.parametrize("runner", ["local", "docker", "kubernetes"])
def test_heavy_steps_go_to_the_gpu_queue_every_other_task_to_the_cpu_queue(monkeypatch, runner):
    monkeypatch.delenv("EMBED_GPU_QUEUE", raising=False)
    monkeypatch.delenv("EMBED_CPU_QUEUE", raising=False)
    dag = _dag(monkeypatch, runner)
    queues = {task.task_id: task.queue for task in dag.tasks}
    assert {t for t, q in queues.items() if q == "gpu"} == _heavy(dag)
    assert {t for t, q in queues.items() if q == "cpu"} == set(queues) - _heavy(dag)
    assert queues["commit_watermark"] == "cpu"


def test_queue_names_come_from_the_environment(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("EMBED_GPU_QUEUE", "a100")
    monkeypatch.setenv("EMBED_CPU_QUEUE", "light")
    monkeypatch.setenv("EMBED_RUNNER", "local")
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    retrain = {t.task_id: t.queue for t in bag.dags["retrain_embeddings"].tasks}
    assert {t for t, q in retrain.items() if q == "a100"} == _heavy(bag.dags["retrain_embeddings"])
    assert set(retrain.values()) == {"a100", "light"}
    # the watcher's tasks, the deferrable sensor included: its resumption runs on a worker
    watcher = bag.dags["watch_annotations"]
    assert {t.task_id: t.queue for t in watcher.tasks} == {
        "wait_for_annotations": "light",
        "emit_annotations_event": "light",
    }


def test_a_bad_queue_name_is_one_clear_line(monkeypatch):
    from embedding_ops.queues import gpu_queue

    monkeypatch.setenv("EMBED_GPU_QUEUE", "gpu,cpu")
    with pytest.raises(ValueError, match=r"^EMBED_GPU_QUEUE='gpu,cpu' is not a queue name"):
        gpu_queue()


def test_an_explicit_queue_wins(monkeypatch):
    from embedding_ops.runners import step_operator

    assert step_operator("train", runner="local").queue == "gpu"
    assert step_operator("train", runner="local", queue="big-gpu").queue == "big-gpu"


# --- the docker runner uses the engine of the worker that runs the task --------------------------
def test_docker_runner_starts_containers_on_the_engine_of_the_worker_running_it(monkeypatch):
    from airflow.providers.docker.operators.docker import DockerOperator
    from embedding_ops.docker_runner import LOCAL_ENGINE, DockerStepOperator

    # parsed where another engine is configured (a DAG processor, a central host) ...
    monkeypatch.setenv("EMBED_DOCKER_URL", "tcp://central-engine:2375")
    op = DockerStepOperator(task_id="train", step="train")
    assert op.docker_url == "tcp://central-engine:2375"
    assert op.hook  # a client made for that engine before the task runs is not reused
    # ... run by a GPU worker with the default settings: its own local socket
    monkeypatch.delenv("EMBED_DOCKER_URL")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    used = {}

    def run(self, context):
        used["url"] = self.docker_url
        used["hook"] = self.hook._DockerHook__base_url[0]  # the client the operator makes
        return ['{"step": "train"}']

    monkeypatch.setattr(DockerOperator, "execute", run)
    xcoms = {("prepare", "run_dir_writer"): {"host": "gpu-1", "run_dir": "x"}}
    op.execute(_context("train", host="gpu-1", xcoms=xcoms))
    assert used == {"url": LOCAL_ENGINE, "hook": LOCAL_ENGINE}
    assert LOCAL_ENGINE == "unix://var/run/docker.sock"
    # that worker's own setting wins; an engine given to the operator is kept
    monkeypatch.setenv("EMBED_DOCKER_URL", "unix:///run/user/1000/docker.sock")
    op.execute(_context("train", host="gpu-1", xcoms=xcoms))
    assert used["url"] == used["hook"] == "unix:///run/user/1000/docker.sock"
    fixed = DockerStepOperator(task_id="train", step="train", docker_url="tcp://builder:2375")
    fixed.execute(_context("train", host="gpu-1", xcoms=xcoms))
    assert used["url"] == "tcp://builder:2375"


def test_docker_state_on_a_shared_host_path_is_bind_mounted(monkeypatch):
    from embedding_ops.docker_runner import STATE_TARGET, mounts

    monkeypatch.setenv("EMBED_STATE_VOLUME", "/srv/embedding/state")
    (state,) = [m for m in mounts() if m["Target"] == STATE_TARGET]
    assert (state["Type"], state["Source"]) == ("bind", "/srv/embedding/state")
    monkeypatch.setenv("EMBED_STATE_VOLUME", "embed-state")
    (state,) = [m for m in mounts() if m["Target"] == STATE_TARGET]
    assert (state["Type"], state["Source"]) == ("volume", "embed-state")


# --- run directories across hosts ----------------------------------------------------------
def _fake_tasks_python(tmp_path, monkeypatch) -> None:
    """``python -m tasks <step>`` stand-in: prepare writes the manifest, others print a summary."""
    fake = tmp_path / "fake_tasks.py"
    fake.write_text(
        "import json, pathlib, sys\n"
        "step, run_dir = sys.argv[1], pathlib.Path(sys.argv[3])\n"
        "if step == 'prepare':\n"
        "    (run_dir / 'data').mkdir(parents=True, exist_ok=True)\n"
        "    (run_dir / 'data' / 'manifest.json').write_text('{}')\n"
        "print(json.dumps({'step': step}))\n"
    )
    (tmp_path / "python").write_text(f'#!/bin/sh\nshift 2\nexec python3 {fake} "$@"\n')
    (tmp_path / "python").chmod(0o755)
    monkeypatch.setenv("EMBED_TASKS_PYTHON", str(tmp_path / "python"))


def test_a_run_directory_written_on_another_host_is_refused_with_one_line(
    monkeypatch, tmp_path, isolated_state
):
    from airflow.sdk.exceptions import AirflowFailException
    from embedding_ops.shared_run_dir import WRITER_KEY
    from embedding_ops.step_operator import LocalStepOperator

    _fake_tasks_python(tmp_path, monkeypatch)
    xcoms: dict = {}
    prepare = LocalStepOperator(task_id="prepare", step="prepare")
    assert prepare.execute(_context("prepare", host="cpu-1", xcoms=xcoms)) == {"step": "prepare"}
    run_dir = isolated_state / "runs" / "retrain_embeddings" / "manual__2026-11-29"
    assert xcoms[("prepare", WRITER_KEY)] == {"host": "cpu-1", "run_dir": str(run_dir)}

    train = LocalStepOperator(task_id="train", step="train")
    # a shared volume: the GPU worker sees what the CPU worker wrote
    assert train.execute(_context("train", host="gpu-1", xcoms=xcoms)) == {"step": "train"}
    # not shared: the GPU worker's artifact root is its own disk
    monkeypatch.setenv("EMBED_ARTIFACT_ROOT", str(tmp_path / "gpu-1-disk"))
    with pytest.raises(AirflowFailException) as info:
        train.execute(_context("train", host="gpu-1", xcoms=xcoms))
    message = str(info.value)
    assert "\n" not in message
    assert message == (
        f"run directory {tmp_path / 'gpu-1-disk' / 'retrain_embeddings' / 'manual__2026-11-29'} "
        "is not on this host (gpu-1); prepare wrote it on cpu-1: put EMBED_ARTIFACT_ROOT on a "
        "volume every worker mounts"
    )
    # the same host (a deleted run directory), or no record: the step says what it misses itself
    assert train.execute(_context("train", host="cpu-1", xcoms=xcoms)) == {"step": "train"}
    assert train.execute(_context("train", host="gpu-1")) == {"step": "train"}


def test_the_docker_runner_refuses_a_run_directory_from_another_host_before_a_container(
    monkeypatch, tmp_path
):
    from airflow.providers.docker.operators.docker import DockerOperator
    from airflow.sdk.exceptions import AirflowFailException
    from embedding_ops.docker_runner import DockerStepOperator

    started = []
    monkeypatch.setattr(DockerOperator, "execute", lambda self, context: started.append(1))
    xcoms = {("prepare", "run_dir_writer"): {"host": "cpu-1", "run_dir": "x"}}
    monkeypatch.setenv("EMBED_ARTIFACT_ROOT", str(tmp_path / "gpu-2-disk"))
    op = DockerStepOperator(task_id="evaluate_base", step="evaluate", step_args=["--model", "base"])
    with pytest.raises(AirflowFailException, match=r"is not on this host \(gpu-2\); prepare wrote"):
        op.execute(_context("evaluate_base", host="gpu-2", xcoms=xcoms))
    assert not started
    # with the run directories on a named volume the worker cannot look: the step decides
    monkeypatch.setenv("EMBED_ARTIFACT_VOLUME", "embed-runs")
    op = DockerStepOperator(task_id="evaluate_base", step="evaluate", step_args=["--model", "base"])
    op.execute(_context("evaluate_base", host="gpu-2", xcoms=xcoms))
    assert started
