"""The compose stack and images: the file validates, and what it promises is in it (the
single-host stack, and the ``celery`` profile's broker, Flower and CPU/GPU workers)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, service_unavailable

pytestmark = pytest.mark.integration

COMPOSE = ROOT / "docker-compose.yaml"
LONG_RUNNING = {
    "postgres",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "mlflow",
    "argilla",
    "elasticsearch",
    "redis",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_the_stack_has_every_service_with_health_checks(compose):
    services = compose["services"]
    assert LONG_RUNNING | {"airflow-init", "argilla-worker", "gpu-check"} <= set(services)
    for name in LONG_RUNNING:
        assert "healthcheck" in services[name], name
    assert services["airflow-init"]["command"] == ["db", "migrate"]


def test_ports_are_published_on_localhost_only(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_airflow_runs_steps_in_gpu_containers_through_the_host_engine(compose):
    scheduler = compose["services"]["airflow-scheduler"]
    env = scheduler["environment"]
    assert env["EMBED_RUNNER"] == "docker"
    assert "/var/run/docker.sock:/var/run/docker.sock" in scheduler["volumes"]
    root = "${EMBED_ARTIFACT_ROOT:-/srv/embedding/runs}"
    assert f"{root}:{root}" in scheduler["volumes"]  # the same path on host and in containers
    for conn in ("MLFLOW_DEFAULT", "HUGGINGFACE_DEFAULT", "ARGILLA_DEFAULT"):
        assert f"AIRFLOW_CONN_{conn}" in env
    devices = compose["services"]["gpu-check"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert "postgresql" in " ".join(compose["services"]["mlflow"]["command"])


def test_every_variable_the_stack_reads_is_in_the_env_example():
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)", COMPOSE.read_text()))  # not $${escaped}
    example = ROOT / ".env.example"
    defined = {line.split("=", 1)[0] for line in example.read_text().splitlines() if "=" in line}
    assert used <= defined, sorted(used - defined)


def test_the_airflow_image_pins_what_requirements_pin():
    pins = dict(
        re.findall(
            r"^(apache-airflow[\w-]*)==([\w.]+)", (ROOT / "requirements.txt").read_text(), re.M
        )
    )
    image = (ROOT / "docker" / "Dockerfile.airflow").read_text()
    for name, version in pins.items():
        assert f"{name}=={version}" in image, name
    tasks_image = (ROOT / "docker" / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=" in tasks_image and "USER tasks" in tasks_image
    tasks_reqs = (ROOT / "requirements-tasks.txt").read_text().splitlines()
    assert not [line for line in tasks_reqs if line.startswith("apache-airflow")]


def _compose_command() -> list[str]:
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    service_unavailable("docker compose", "neither `docker compose` nor `docker-compose`")


def _config(tmp_path: Path, *args: str, settings: dict[str, str] | None = None) -> str:
    """``docker compose [args] config`` with ``.env.example`` (and ``settings``) as the .env."""
    env_file = tmp_path / ".env"
    lines = (ROOT / ".env.example").read_text().splitlines()
    lines = [line for line in lines if line.split("=", 1)[0] not in (settings or {})]
    env_file.write_text("\n".join([*lines, *(f"{k}={v}" for k, v in (settings or {}).items())]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    proc = subprocess.run(
        [*_compose_command(), "--env-file", str(env_file), "-f", str(COMPOSE), *args, "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_compose_config_validates(tmp_path):
    """``docker compose config`` (or Debian's ``docker-compose config``) accepts the file."""
    rendered = yaml.safe_load(_config(tmp_path))
    scheduler = rendered["services"]["airflow-scheduler"]["environment"]
    assert scheduler["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"  # one host by default
    assert Path(COMPOSE).exists()


# --- scale-out: the celery profile ------------------------------------------------------------
CELERY_SERVICES = {"celery-broker", "airflow-worker-cpu", "airflow-worker-gpu", "flower"}


def test_the_celery_profile_has_a_broker_flower_and_a_worker_per_queue(compose):
    services = compose["services"]
    assert CELERY_SERVICES <= set(services)
    for name in CELERY_SERVICES:
        assert services[name]["profiles"] == ["celery"], name
        assert "healthcheck" in services[name], name
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert "@${CELERY_BROKER_HOST:-celery-broker}:6379" in env["AIRFLOW__CELERY__BROKER_URL"]
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    # the DAG processor assigns the queues the workers listen on; untagged tasks go to CPU
    assert env["EMBED_GPU_QUEUE"] == "${EMBED_GPU_QUEUE:-gpu}"
    assert env["EMBED_CPU_QUEUE"] == "${EMBED_CPU_QUEUE:-cpu}"
    assert env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == "${EMBED_CPU_QUEUE:-cpu}"
    assert services["celery-broker"]["image"].startswith("redis:")

    gpu, cpu = services["airflow-worker-gpu"], services["airflow-worker-cpu"]
    assert gpu["command"][:4] == ["celery", "worker", "--queues", "${EMBED_GPU_QUEUE:-gpu}"]
    assert cpu["command"][:4] == ["celery", "worker", "--queues", "${EMBED_CPU_QUEUE:-cpu}"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    assert "deploy" not in cpu
    assert gpu["environment"]["EMBED_GPUS"] == "${EMBED_GPUS:-all}"
    assert cpu["environment"]["EMBED_GPUS"] == ""
    root = "${EMBED_ARTIFACT_ROOT:-/srv/embedding/runs}"
    for worker in (gpu, cpu):
        # each worker starts step containers on its own host's engine, with the run
        # directories at the same path as on every other host
        assert "/var/run/docker.sock:/var/run/docker.sock" in worker["volumes"]
        assert f"{root}:{root}" in worker["volumes"]
        assert "EMBED_DOCKER_URL" not in worker["environment"]
        assert worker["depends_on"]["celery-broker"]["condition"] == "service_healthy"
    flower = services["flower"]
    assert flower["ports"] == ["127.0.0.1:5555:5555"]
    assert flower["command"] == ["celery", "flower"]
    assert "FLOWER_PASSWORD" in flower["environment"]["AIRFLOW__CELERY__FLOWER_BASIC_AUTH"]
    assert flower["volumes"] == []  # no Docker socket for a UI


def test_the_celery_profile_renders_with_the_queues_the_dag_processor_assigns(tmp_path):
    """With the profile and the CeleryExecutor, the rendered stack is consistent: the scheduler
    hands tasks to Celery, and the workers listen on the queue names the DAG processor gives."""
    rendered = yaml.safe_load(
        _config(
            tmp_path,
            "--profile",
            "celery",
            settings={
                "AIRFLOW_EXECUTOR": "CeleryExecutor",
                "EMBED_GPU_QUEUE": "a100",
                "EMBED_CPU_QUEUE": "light",
            },
        )
    )
    services = rendered["services"]
    assert CELERY_SERVICES <= set(services)
    processor = services["airflow-dag-processor"]["environment"]
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == (
        "CeleryExecutor"
    )
    assert processor["EMBED_GPU_QUEUE"] == "a100" and processor["EMBED_CPU_QUEUE"] == "light"
    assert processor["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == "light"
    queues = {
        name: services[name]["command"][services[name]["command"].index("--queues") + 1]
        for name in ("airflow-worker-gpu", "airflow-worker-cpu")
    }
    assert queues == {"airflow-worker-gpu": "a100", "airflow-worker-cpu": "light"}
    broker = services["airflow-worker-gpu"]["environment"]["AIRFLOW__CELERY__BROKER_URL"]
    assert broker == "redis://:change-me-broker@celery-broker:6379/0"


def test_workers_on_other_hosts_find_the_services_by_the_host_settings(tmp_path):
    """A worker on a second host sets the *_HOST settings to the main host's address: its broker,
    result backend, metadata DB, Execution API and MLflow URLs follow, and MLflow accepts
    requests addressed to that name."""
    rendered = yaml.safe_load(
        _config(
            tmp_path,
            "--profile",
            "celery",
            settings={
                "AIRFLOW_EXECUTOR": "CeleryExecutor",
                "POSTGRES_HOST": "10.0.0.5",
                "CELERY_BROKER_HOST": "10.0.0.5",
                "AIRFLOW_API_HOST": "10.0.0.5",
                "MLFLOW_HOST": "10.0.0.5",
            },
        )
    )
    env = rendered["services"]["airflow-worker-gpu"]["environment"]
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:change-me-broker@10.0.0.5:6379/0"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].endswith("@10.0.0.5/airflow")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@10.0.0.5/airflow")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://10.0.0.5:8080/execution/"
    assert '"host": "http://10.0.0.5:5000"' in env["AIRFLOW_CONN_MLFLOW_DEFAULT"]
    assert "10.0.0.5:5000" in " ".join(rendered["services"]["mlflow"]["command"])
