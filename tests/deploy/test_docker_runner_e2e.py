"""The docker runner against a real Docker engine: the retrain DAG with every step in a container.

The engine and the task image come from ``tests/support/docker_engine.py`` (a private ``dockerd``,
``docker/Dockerfile`` built on a local Debian base with the CPU torch wheel). The same DAG runs
twice on the same data and seed, with the local runner and with the docker runner; the docker
run's steps must really run in containers (the engine's events), succeed, and give the same
metrics and gate decision as the local run. Run directories, the data file and the tiny model are
host paths bind-mounted at the same path; MLflow is a real server on 127.0.0.1 (host network).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import pytest
from conftest import STEP_TASKS as SHARED_STEP_TASKS
from conftest import make_pairs, service_unavailable, write_jsonl

pytestmark = pytest.mark.services

STEP_TASKS = set(SHARED_STEP_TASKS)
# Same torch wheel, seed, data and CPU: the weights and metrics came out bit-identical here. The
# image resolves its dependencies apart from the host venv (which also has Airflow's pins), so a
# float-rounding margin is allowed; a real difference (another model, data or split) is far larger.
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def docker_engine() -> Any:
    """A ``dockerd`` of these tests (data root cached between runs), stopped at the end."""
    from support.docker_engine import DockerEngine

    engine = DockerEngine()
    try:
        engine.start()
    except (RuntimeError, OSError, TimeoutError) as exc:
        service_unavailable("Docker engine", str(exc).splitlines()[0][:300])
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def task_image(docker_engine) -> dict[str, Any]:
    """``docker/Dockerfile`` built on the local Debian base with the CPU torch wheel and the
    offline demo model; the tag, and what the base and the build cost (printed)."""
    from support.docker_engine import TEST_IMAGE, build_task_image, ensure_base_image

    started = time.monotonic()
    try:
        base = ensure_base_image(docker_engine)
        build = build_task_image(docker_engine, TEST_IMAGE)
    except (RuntimeError, OSError) as exc:
        service_unavailable("task image build", str(exc).splitlines()[0][:300])
    info = {
        "tag": TEST_IMAGE,
        "base": base,
        **build,
        "total_s": time.monotonic() - started,
        "storage_driver": docker_engine.storage_driver,
        "engine_start_s": docker_engine.startup_s,
    }
    print(f"\ntask image: {json.dumps(info)}")
    return info


def _conf(data, model_dir, name: str) -> dict:
    return {
        "data_path": str(data),
        "base_model": str(model_dir),
        "matryoshka_dims": [64, 32, 16],
        "best_metric_dim": 32,
        "batch_size": 8,
        "epochs": 1,
        "seed": 7,
        "registered_model_name": name,
    }


def _dag(monkeypatch, runner: str):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("EMBED_RUNNER", runner)  # operators are built when the DAG is parsed
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    return bag.dags["retrain_embeddings"]


def _container_exits(engine, image: str, since: float) -> list[int]:
    """Exit codes of the containers of ``image`` that stopped since ``since`` (engine events)."""
    client = engine.client()
    try:
        events = client.events(
            since=int(since) - 1,
            until=int(time.time()) + 1,
            decode=True,
            filters={"type": "container", "event": "die"},
        )
        return sorted(
            int(event["Actor"]["Attributes"]["exitCode"])
            for event in events
            if event["Actor"]["Attributes"].get("image") == image
            and event["timeNano"] >= since * 1e9
        )
    finally:
        client.close()


def _durations(dagrun) -> dict[str, float]:
    return {
        ti.task_id: (ti.end_date - ti.start_date).total_seconds()
        for ti in dagrun.get_task_instances()
        if ti.start_date and ti.end_date
    }


@pytest.fixture
def docker_runner(monkeypatch, docker_engine, task_image, tmp_path):
    """The docker runner's settings for this test: this engine, the test image, host network
    (MLflow listens on 127.0.0.1), the worker's user (it owns the bind-mounted run directories),
    a state volume of its own; removed afterwards."""
    state = f"embed-state-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("EMBED_TASK_IMAGE", task_image["tag"])
    monkeypatch.setenv("EMBED_DOCKER_URL", docker_engine.url)
    monkeypatch.setenv("EMBED_DOCKER_NETWORK", "host")
    monkeypatch.setenv("EMBED_DOCKER_USER", f"{os.getuid()}:{os.getgid()}")
    monkeypatch.setenv("EMBED_STATE_VOLUME", state)
    monkeypatch.delenv("EMBED_GPUS", raising=False)
    client = docker_engine.client()
    volumes_before = {v.name for v in client.volumes.list()}
    yield docker_engine
    leftover = client.containers.list(all=True, filters={"ancestor": task_image["tag"]})
    volumes_after = {v.name for v in client.volumes.list()}
    for volume in client.volumes.list(filters={"name": state}):
        volume.remove(force=True)
    client.close()
    assert not leftover, "containers were not removed after their step"
    assert volumes_after - volumes_before <= {state, "embed-hf-cache"}  # no anonymous volumes


def test_task_image_is_the_step_contract(docker_engine, task_image):
    """Non-root by default, no entrypoint, no Airflow, the host's torch, `python -m tasks`."""
    import torch

    client = docker_engine.client()
    try:
        config = client.images.get(task_image["tag"]).attrs["Config"]
        assert config["User"] == "tasks"
        assert not config.get("Entrypoint")
        assert "/cache/huggingface" in (config.get("Volumes") or {})
        probe = (
            "import importlib.util, json, torch, tasks; "
            "print(json.dumps({'airflow': importlib.util.find_spec('airflow') is not None, "
            "'torch': torch.__version__}))"
        )
        out = client.containers.run(
            task_image["tag"],
            ["sh", "-c", f'id -un && python -m tasks --help > /dev/null && python -c "{probe}"'],
            network_mode="none",
            remove=True,
        ).decode()
    finally:
        client.close()
    user, summary = out.strip().splitlines()[0], json.loads(out.strip().splitlines()[-1])
    assert user == "tasks"
    assert summary == {"airflow": False, "torch": torch.__version__}


def test_docker_runner_matches_the_local_runner(
    tmp_path,
    tiny_model_dir,
    isolated_state,
    airflow_db,
    mlflow_server,
    task_image,
    docker_runner,
    monkeypatch,
):
    from tasks.io import read_json, run_dir_for

    data = write_jsonl(tmp_path / "data" / "pairs.jsonl", make_pairs(n_docs=48))
    conn = {"conn_type": "mlflow", "host": mlflow_server.url}
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps(conn))
    local = _dag(monkeypatch, "local").test(run_conf=_conf(data, tiny_model_dir, "local-model"))
    assert str(local.state).endswith("success"), local.state

    monkeypatch.setenv("EMBED_DOCKER_MOUNTS", f"{data.parent},{tiny_model_dir}")
    image = os.environ["EMBED_TASK_IMAGE"]
    dag = _dag(monkeypatch, "docker")
    assert {type(dag.get_task(t)).__name__ for t in STEP_TASKS} == {"DockerStepOperator"}
    since = time.time()
    docker = dag.test(run_conf=_conf(data, tiny_model_dir, "docker-model"))
    assert str(docker.state).endswith("success"), docker.state

    # Every step ran in a container of the image: one container per step task, exit code 0 for
    # a step that succeeded and 99 for one that had nothing to do (publish without a Hub repo).
    states = {ti.task_id: str(ti.state).split(".")[-1] for ti in docker.get_task_instances()}
    local_states = {ti.task_id: str(ti.state).split(".")[-1] for ti in local.get_task_instances()}
    assert states == local_states
    expected = sorted(0 if states[t] == "success" else 99 for t in STEP_TASKS)
    assert _container_exits(docker_runner, image, since) == expected

    # Same data, seed and torch wheel: the same metrics at every dim and the same gate decision.
    local_dir = run_dir_for("retrain_embeddings", local.run_id)
    docker_dir = run_dir_for("retrain_embeddings", docker.run_id)
    local_metrics = read_json(local_dir / "report" / "metrics.json")
    docker_metrics = read_json(docker_dir / "report" / "metrics.json")
    assert docker_metrics.keys() == local_metrics.keys() and local_metrics
    # The fine-tuned model's fingerprint also hashes its model card, which records the training
    # time and Python version; the weights themselves are compared instead.
    for metrics in (docker_metrics, local_metrics):
        metrics["models"]["finetuned"].pop("model_fingerprint")
    _assert_close(docker_metrics, local_metrics)
    _assert_same_weights(docker_dir / "train" / "model", local_dir / "train" / "model")
    local_gate = read_json(local_dir / "report" / "gate.json")
    docker_gate = read_json(docker_dir / "report" / "gate.json")
    assert docker_gate["decision"] == local_gate["decision"]
    assert docker_gate["reference"] == local_gate["reference"] == "base"
    # The same data and eval split (the run fingerprint also covers the settings, and the two
    # runs register under different model names).
    docker_prints = read_json(docker_dir / "data" / "manifest.json")["fingerprints"]
    local_prints = read_json(local_dir / "data" / "manifest.json")["fingerprints"]
    docker_prints.pop("run"), local_prints.pop("run")
    assert docker_prints == local_prints and "data" in local_prints

    local_s, docker_s = _durations(local), _durations(docker)
    print("\nstep                 local s  docker s  ratio")
    for task in sorted(STEP_TASKS, key=lambda t: -local_s[t]):
        ratio = docker_s[task] / local_s[task]
        print(f"{task:20} {local_s[task]:8.2f} {docker_s[task]:9.2f} {ratio:6.2f}")
    if os.environ.get("EMBED_DOCKER_BENCH_OUT"):  # bench/docker_overhead.py reads this
        figures = {"image": task_image, "local_s": local_s, "docker_s": docker_s}
        with open(os.environ["EMBED_DOCKER_BENCH_OUT"], "w", encoding="utf-8") as fh:
            json.dump(figures, fh, indent=1)

    # The state volume keeps the last successful run's fingerprint between step containers:
    # the same inputs again are "nothing to do", decided in one container.
    since = time.time()
    again = dag.test(run_conf=_conf(data, tiny_model_dir, "docker-model"))
    assert str(again.state).endswith("success"), again.state
    skipped = {ti.task_id for ti in again.get_task_instances() if str(ti.state).endswith("skipped")}
    assert STEP_TASKS <= skipped
    assert _container_exits(docker_runner, image, since) == [99]


def _assert_same_weights(actual, expected) -> None:
    """Every tensor of the two saved models within TOLERANCE."""
    from safetensors.numpy import load_file

    a, e = load_file(actual / "model.safetensors"), load_file(expected / "model.safetensors")
    assert a.keys() == e.keys() and a
    worst = max(float(abs(a[k].astype("float64") - e[k].astype("float64")).max()) for k in a)
    assert worst <= TOLERANCE, f"weights differ by up to {worst}"


def _assert_close(actual, expected, path: str = "") -> None:
    """Nested JSON equal, numbers within TOLERANCE."""
    if isinstance(expected, dict):
        assert actual.keys() == expected.keys(), path
        for key in expected:
            _assert_close(actual[key], expected[key], f"{path}/{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected)):
            _assert_close(a, e, f"{path}[{i}]")
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, abs=TOLERANCE), path
    else:
        assert actual == expected, path


def test_invalid_input_fails_in_the_container_without_retry(
    tmp_path, tiny_model_dir, airflow_db, docker_runner, monkeypatch
):
    empty = tmp_path / "data" / "empty.jsonl"
    empty.parent.mkdir()
    empty.write_text("")
    monkeypatch.setenv("EMBED_DOCKER_MOUNTS", f"{empty.parent},{tiny_model_dir}")
    dag = _dag(monkeypatch, "docker")
    since = time.time()
    dagrun = dag.test(run_conf=_conf(empty, tiny_model_dir, "docker-bad-data"))
    assert str(dagrun.state).endswith("failed")
    ti = dagrun.get_task_instance("prepare")
    assert str(ti.state).endswith("failed")
    assert ti.try_number == 1  # exit code 3 = invalid input: no retries spent on it
    assert _container_exits(docker_runner, os.environ["EMBED_TASK_IMAGE"], since) == [3]
