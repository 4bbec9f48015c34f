"""The compose stack and images: the file validates, and what it promises is in it."""

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


def test_compose_config_validates(tmp_path):
    """``docker compose config`` (or Debian's ``docker-compose config``) accepts the file."""
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        argv = ["docker", "compose"]
    elif shutil.which("docker-compose"):
        argv = ["docker-compose"]
    else:
        service_unavailable("docker compose", "neither `docker compose` nor `docker-compose`")
    env_file = tmp_path / ".env"
    env_file.write_text((ROOT / ".env.example").read_text())
    proc = subprocess.run(
        [*argv, "--env-file", str(env_file), "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert Path(COMPOSE).exists()
