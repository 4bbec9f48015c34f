"""Docker runner overhead: each step of the retrain DAG in a container against the local runner.

Runs ``tests/deploy/test_docker_runner_e2e.py::test_docker_runner_matches_the_local_runner``:
a private ``dockerd`` (data root cached in ``$EMBED_DOCKER_CACHE``, default
``~/.cache/embedding-retrain/docker``), the task image ``docker/Dockerfile`` on a local Debian
base with the CPU torch wheel, then the same DAG run with ``dag.test()`` on the tiny test model,
first with the local runner, then with every step in a container. The test asserts the results
are the same; this script turns its timings into tables: the image (base image time, build time,
size) and per step the task's wall time under both runners and their ratio.

Usage::

    python bench/docker_overhead.py          # prints the tables (warm cache: a few minutes)
    python bench/docker_overhead.py --docs   # also into docs/benchmarks.md

A cold cache adds the base image (debootstrap) and the image build; run it twice to see both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import machine_info, update_docs
from bench.orchestration import TASKS

ROOT = Path(__file__).resolve().parent.parent

TEST = "tests/deploy/test_docker_runner_e2e.py::test_docker_runner_matches_the_local_runner"
STEPS = tuple(TASKS)


def measure() -> dict[str, Any]:
    """Run the end-to-end test once and return its figures (image and per-step seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.json"
        env = {**os.environ, "EMBED_DOCKER_BENCH_OUT": str(out)}
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stdout + proc.stderr)[-3000:]
            raise SystemExit(f"the docker end-to-end test did not pass:\n{tail}")
        return json.loads(out.read_text())


def tables(figures: dict[str, Any]) -> str:
    """Markdown: the image, then local vs docker per step."""
    image = figures["image"]
    base = image.get("base") or {}
    base_s = sum(base.values())
    lines = [
        "| image | value |",
        "|---|---|",
        f"| storage driver | {image['storage_driver']} |",
        f"| engine start | {image['engine_start_s']:.1f} s |",
        "| base image (debootstrap + import) | " + (f"{base_s:.0f} s" if base else "cached") + " |",
        f"| wheelhouse (host pip) | {image['wheelhouse_s']:.0f} s |",
        f"| `docker build` | {image['build_s']:.0f} s |",
        f"| image size | {image['size_bytes'] / 1e9:.2f} GB |",
        "",
        "| step | local s | docker s | docker / local |",
        "|---|---:|---:|---:|",
    ]
    local, docker = figures["local_s"], figures["docker_s"]
    for step in STEPS:
        ratio = docker[step] / local[step]
        lines.append(f"| {step} | {local[step]:.1f} | {docker[step]:.1f} | {ratio:.2f} |")
    total_local = sum(local[s] for s in STEPS)
    total_docker = sum(docker[s] for s in STEPS)
    lines.append(
        f"| **all steps** | {total_local:.1f} | {total_docker:.1f} | "
        f"{total_docker / total_local:.2f} |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", action="store_true", help="write into docs/benchmarks.md")
    args = parser.parse_args(argv)
    figures = measure()
    info = machine_info()
    text = (
        f"{tables(figures)}\n\n{info['device_name']}, torch {info['torch']}, {info['date']}. "
        "Command: `python bench/docker_overhead.py`."
    )
    print(text)
    if args.docs:
        update_docs("docker_overhead", text)
    return figures


if __name__ == "__main__":
    main()
