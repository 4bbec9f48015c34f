"""The orchestration benchmark runs end to end in its small form (so it cannot rot), on a tiny
model: DAG against in-process steps, DAG parse time, and the no-op night."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench


def test_orchestration_benchmark_small(tmp_path, tiny_model_dir):
    from conftest import service_unavailable

    from bench.orchestration import HEAVY_MODULES, TASKS, main

    try:
        import psycopg2  # noqa: F401
        from support.airflow_stack import postgres_bindir

        postgres_bindir()
    except (ImportError, RuntimeError) as exc:
        service_unavailable("Airflow deployment for --stack", str(exc))

    out = tmp_path / "orchestration.json"
    result = main(
        [
            "--small",
            "--stack",
            "--repeats",
            "1",
            "--model",
            str(tiny_model_dir),
            "--parse-repeats",
            "2",
            "--work",
            str(tmp_path / "work"),
            "--out",
            str(out),
        ]
    )
    assert json.loads(out.read_text())["overhead"] == result["overhead"]
    assert result["conf"]["force"] is False and result["conf"]["use_negatives"] is False

    # (a) overhead: both arms ran every task; the DAG pays one process per step on top.
    o = result["overhead"]
    assert list(o["tasks"]) == list(TASKS)
    states = {task: t["dag_state"] for task, t in o["tasks"].items()}
    assert states == {**{t: "success" for t in TASKS}, "publish": "skipped"}, states
    for t in o["tasks"].values():
        assert t["dag_s"] >= 0 and t["inprocess_s"] >= 0
    assert o["dag_e2e_s"] > o["inprocess_e2e_s"] > 0
    assert math.isfinite(o["overhead"]) and 0 < o["overhead"] < 1
    assert o["overhead"] == pytest.approx((o["dag_e2e_s"] - o["inprocess_e2e_s"]) / o["dag_e2e_s"])
    assert o["dag_cpu_s"] > 0 and o["inprocess_cpu_s"] > 0
    assert o["dag_run_s"] <= o["dag_e2e_s"]

    # (c) the no-op night: prepare says nothing to do, every task is skipped, and it is quick.
    n = result["noop"]
    assert n["noop_state"] == "success"
    # commit_watermark (Airflow-side, no step): a no-op run without annotations has nothing to move
    assert n["noop_tasks"] == {**{t: "skipped" for t in TASKS}, "commit_watermark": "skipped"}
    assert "unchanged" in n["nothing_to_do"]
    assert 0 < n["noop_run_s"] < n["full_run_s"]
    assert n["ratio"] == pytest.approx(n["noop_run_s"] / n["full_run_s"])
    assert n["cli_noop_s"] > 0

    # (b) parse: the DAGs, fast, and neither torch nor sentence-transformers.
    p = result["parse"]
    assert p["dags"] == ["retrain_embeddings", "watch_annotations"]
    assert p["tasks"] == len(TASKS) + 1  # the steps and commit_watermark
    assert 0 < p["parse_s"] < 5 and 0 < p["file_s"] <= p["parse_s"] + 0.05
    assert not {"torch", "sentence_transformers"} & set(p["heavy_modules_imported"])
    assert set(p["heavy_modules_imported"]) <= set(HEAVY_MODULES)
    assert p["report_wall_s"] > p["report_file_s"] > 0

    # (d) the deployment: triggered through the REST API of a running stack, every task ran
    # (independent ones at once), timed from the trigger; then the no-op night there.
    s = result["stack"]
    assert s["startup_s"] > 0 and s["run_s"] > 0 and s["inprocess_e2e_s"] > 0
    assert s["overhead"] == pytest.approx((s["run_s"] - s["inprocess_e2e_s"]) / s["run_s"])
    states = {task: t["state"] for task, t in s["tasks"].items()}
    assert states == {
        **{t: "success" for t in TASKS},
        "publish": "skipped",
        "commit_watermark": "skipped",  # local data: no annotation watermark
    }, states
    assert list(s["tasks"])[0] == "prepare" and s["scheduling_s"] >= 0
    ran = [t for t in s["tasks"].values() if t["state"] == "success"]
    assert all(0 <= t["offset_s"] < s["run_s"] and t["duration_s"] > 0 for t in ran)
    assert s["task_s_sum"] > 0
    # publish ends "nothing to do" (no Hub repo): skipped within a second or two of its work, not
    # after a missed exit and a full supervisor wait (Airflow's 5 s min_heartbeat_interval; the
    # deployment sets 1 s in docker-compose.yaml, which the benchmark's stack takes over)
    assert s["tasks"]["publish"]["duration_s"] < 4.0, s["tasks"]["publish"]
    assert s["noop_tasks"]["prepare"] == "skipped" and s["noop_tasks"]["train"] == "skipped"
    assert 0 < s["noop_run_s"] < s["run_s"] and s["noop_ratio"] < 1
    # the machine's CPU during the run, by kind of process: the steps and Airflow both worked
    cpu = s["cpu"]
    assert cpu["wall_s"] >= s["run_s"] * 0.9 and cpu["steps_s"] > 0
    assert cpu["scheduler_s"] > 0 and cpu["task_runner_s"] > 0 and cpu["executor_s"] > 0
    assert cpu["airflow_all_s"] >= cpu["scheduler_s"] + cpu["task_runner_s"] + cpu["executor_s"]
    assert cpu["busy_s"] >= cpu["steps_s"] * 0.9 and cpu["other_s"] >= 0

    floor = result["process_floor"]["sentence_transformers"]
    assert floor["import_s"] > 0 and floor["exit_s"] >= 0 and floor["exit_frozen_s"] >= 0


def test_markdown_states_targets():
    from bench.orchestration import markdown

    tasks = {
        "prepare": {"dag_s": 2.0, "dag_state": "success", "inprocess_s": 1.0},
        "publish": {"dag_s": 0.5, "dag_state": "skipped", "inprocess_s": 0.0},
    }
    result = {
        "overhead": {
            "inprocess_e2e_s": 90.0,
            "dag_e2e_s": 100.0,
            "overhead": 0.1,
            "inprocess_cpu_s": 80.0,
            "dag_cpu_s": 95.0,
            "overhead_cpu": 0.158,
            "dag_run_s": 95.0,
            "inprocess_steps_s": 89.0,
            "overhead_run_only": 0.063,
            "dag_startup_s": 5.0,
            "inprocess_startup_s": 1.0,
            "dag_outside_tasks_s": 3.0,
            "tasks": tasks,
        },
        "noop": {
            "full_run_s": 95.0,
            "noop_run_s": 3.0,
            "ratio": 3.0 / 95.0,
            "full_tasks": {"prepare": "success", "publish": "skipped"},
            "noop_tasks": {"prepare": "skipped", "publish": "skipped"},
            "prepare_s": 0.4,
        },
        "parse": {
            "repeats": 2,
            "parse_s": 0.1,
            "file_s": 0.09,
            "reparse_s": 0.05,
            "report_file_s": None,
            "heavy_modules_imported": [],
        },
        "machine": {
            "device_name": "CPU",
            "torch": "x",
            "sentence_transformers": "y",
            "date": "2026-01-01",
        },
        "conf": {"epochs": 1},
        "model_label": "tiny",
        "pairs": 10,
    }
    text = markdown(result)
    # the fixed cost per run, in seconds: wall and CPU of the DAG less the same in one process
    assert "| fixed cost per run (DAG - in-process) | **10.0 s** | 15.0 s |" in text
    assert "Orchestration costs 10.0 s per run as `dag.test()` runs it" in text
    assert "| overhead (DAG - in-process) / DAG | 10.0% |" in text
    assert "No-op night met (target < 5%)" in text
    assert "| publish (skipped) | 0.5 s | 0.0 s | +0.5 s |" in text
    assert "| full run, `dag.test()` | 95.0 s | 100% | 1 skipped, 1 success |" in text

    # the harness row and the deployment section, when measured
    result["overhead"].update(dag_harness_s=8.0, overhead_deployed=0.02 / 0.92)
    result["stack"] = {
        "startup_s": 30.0,
        "warmup_s": 50.0,
        "run_s": 100.0,
        "inprocess_e2e_s": 92.0,
        "overhead": 0.08,
        "scheduling_s": 0.5,
        "noop_run_s": 4.0,
        "noop_ratio": 0.04,
        "cpu": {
            "interval_s": 0.25,
            "wall_s": 100.0,
            "busy_s": 180.0,
            "steps_s": 150.0,
            "scheduler_s": 12.0,
            "task_runner_s": 8.0,
            "postgres_s": 5.0,
            "other_s": 5.0,
            "airflow_all_s": 25.0,
        },
        "inprocess_cpu_s": 160.0,
        "tasks": {
            "prepare": {"state": "success", "duration_s": 0.6, "offset_s": 0.5},
            "publish": {"state": "skipped", "duration_s": 0.5, "offset_s": 99.0},
        },
    }
    text = markdown(result)
    assert "| (`dag.test()` harness: its in-process execution API) | 8.0 s | | +8.0 s |" in text
    assert "costs 10.0 s per run as `dag.test()` runs it, 2.0 s without the execution API" in text
    assert "| DAG run on the deployment, trigger to end | 100.0 s |" in text
    assert "| Airflow: scheduler | 12.0 s | 0.12 |" in text
    assert "sampled from `/proc` every 0.25 s" in text
    assert "| **Airflow and its PostgreSQL, together** | **25.0 s** | **0.25** |" in text
    assert "| fixed cost per run (DAG - in-process) | **8.0 s** |" in text
    assert "On the deployment orchestration costs 8.0 s per run." in text
    assert "| publish (skipped) | 99.0 | 0.5 s |" in text


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="the CPU meter reads Linux's /proc")
def test_cpu_meter_tells_step_processes_apart():
    from bench.orchestration import CpuMeter, proc_stat

    spin = "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass"
    step = f"exec -a 'python -m tasks spin' {sys.executable} -c '{spin}'"
    # a busy step-named process outside this test's process tree (an orphan, as work beside a
    # benchmark would be), spinning while the meter runs: with a tree, it is "other", not a step
    subprocess.run(["bash", "-c", f"({step}) >/dev/null 2>&1 &"], check=True)
    meter = CpuMeter(interval=0.2, tree=os.getpid()).start()
    # a busy process named like a step (caught by its command line), left unreaped for a few
    # samples after it exits (a zombie has no command line: it must stay a step), and an idle one
    busy = subprocess.Popen(["bash", "-c", step])
    while proc_stat(busy.pid)[0] != "Z":
        time.sleep(0.05)
    time.sleep(3 * meter.interval)
    busy.wait()
    subprocess.run([sys.executable, "-c", "import time; time.sleep(0.5)"])
    cpu = meter.stop()
    assert cpu["wall_s"] >= 2.0
    assert 1.0 <= cpu["steps_s"] <= 1.7, cpu
    assert cpu["busy_s"] >= cpu["steps_s"] - 0.05
    assert cpu["other_s"] >= 0.5, cpu  # the orphan spun there


def test_cpu_meter_tree_is_a_process_and_its_descendants():
    from bench.orchestration import CpuMeter

    meter = CpuMeter(tree=10)
    meter._parent = {10: 1, 11: 10, 12: 11, 20: 1, 21: 20, 30: 31, 31: 30}
    assert [p for p in (10, 11, 12, 20, 21, 30, 99) if meter._in_tree(p)] == [10, 11, 12]
    assert CpuMeter()._in_tree(99)  # no tree: every process counts


def test_the_run_conf_and_the_warm_up_conf():
    from bench.orchestration import run_conf, warmup_conf

    dims = {"matryoshka_dims": [64, 32], "best_metric_dim": 32}
    conf = run_conf(Path("/d/pairs.jsonl"), "tiny", 3, dims, small=True)
    assert conf == {
        "data_path": "/d/pairs.jsonl",
        "base_model": "tiny",
        "use_negatives": False,
        "mine_negatives": "never",
        "epochs": 3,
        "force": False,  # so the second run of the same conf is the no-op night
        "matryoshka_dims": [64, 32],
        "best_metric_dim": 32,
        "batch_size": 8,
    }
    assert "batch_size" not in run_conf(Path("p"), "m", 1, {}, small=False)
    extra = run_conf(Path("p"), "m", 1, dims, small=True, extra='{"batch_size": 16, "epochs": 2}')
    assert (extra["batch_size"], extra["epochs"]) == (16, 2)  # --extra has the last word

    warm = warmup_conf({**conf, "seed": 7}, Path("/w/warmup.jsonl"))
    assert warm == {
        **conf,
        "data_path": "/w/warmup.jsonl",
        "epochs": 1,
        "batch_size": 8,
        "seed": 8,
        "registered_model_name": "bench-warmup",
    }
    assert warmup_conf(conf, Path("w"))["seed"] == 43 and conf["epochs"] == 3


def test_arms_alternate_and_report_their_walls():
    from bench.orchestration import arm_line, arm_order

    assert [arm_order(i) for i in range(3)] == [
        ("inprocess", "dag"),
        ("dag", "inprocess"),
        ("inprocess", "dag"),
    ]
    runs = {"full": {"start": 10.0, "end": 60.5}, "noop": {"start": 70.0, "end": 72.0}}
    assert arm_line(0, "dag", 99.0, {"runs": runs}) == "[0] DAG runs: full 50.5s, noop 2.0s"
    assert arm_line(1, "inprocess", 41.26, {}) == "[1] in one process: 41.3s"


def test_a_deployed_run_is_timed_from_its_trigger():
    from bench.orchestration import stack_run_record

    run = {
        "queued_at": "2026-01-01T00:00:00+00:00",
        "start_date": "2026-01-01T00:00:02+00:00",
        "end_date": "2026-01-01T00:01:40+00:00",
    }
    tis = [
        {
            "task_id": "prepare",
            "state": "success",
            "queued_when": "2026-01-01T00:00:02.500000+00:00",
            "start_date": "2026-01-01T00:00:03+00:00",
            "end_date": "2026-01-01T00:00:04.250000+00:00",
        },
        {"task_id": "publish", "state": "skipped", "start_date": None, "end_date": None},
    ]
    record = stack_run_record("manual__1", "success", run, tis, {"busy_s": 1.0})
    t0 = 1767225600.0  # 2026-01-01T00:00:00Z
    assert record == {
        "run_id": "manual__1",
        "state": "success",
        "queued": t0,
        "start": t0 + 2,
        "end": t0 + 100,
        "run_s": 100.0,  # from the trigger, not from the start
        "tasks": {
            "prepare": {
                "state": "success",
                "start": t0 + 3,
                "end": t0 + 4.25,
                "queued": t0 + 2.5,
                "duration_s": 1.25,
            },
            "publish": {
                "state": "skipped",
                "start": None,
                "end": None,
                "queued": None,
                "duration_s": None,
            },
        },
        "cpu": {"busy_s": 1.0},
    }
    del run["queued_at"]  # no trigger time: from the start
    assert stack_run_record("r", "success", run, [], None)["run_s"] == 98.0


def test_task_and_cpu_lines():
    from bench.orchestration import cpu_lines, task_lines

    o = {
        "dag_startup_s": 5.0,
        "inprocess_startup_s": 1.5,
        "dag_harness_s": 8.0,
        "dag_outside_tasks_s": 3.0,
        "tasks": {
            "prepare": {"dag_s": 2.0, "dag_state": "success", "inprocess_s": 1.3},
            "publish": {"dag_s": 0.5, "dag_state": "skipped", "inprocess_s": 0.0},
        },
    }
    assert task_lines(o) == [
        "",
        "| task | DAG task instance | in one process | difference |",
        "|---|---:|---:|---:|",
        "| (start: interpreter, imports, DAG parse) | 5.0 s | 1.5 s | +3.5 s |",
        "| (`dag.test()` harness: its in-process execution API) | 8.0 s | | +8.0 s |",
        "| prepare | 2.0 s | 1.3 s | +0.7 s |",
        "| publish (skipped) | 0.5 s | 0.0 s | +0.5 s |",
        "| (outside task instances: run setup, between tasks) | 3.0 s | | +3.0 s |",
    ]
    del o["dag_harness_s"]  # results from before the harness was timed
    assert (
        task_lines(o)[4]
        == "| (`dag.test()` harness: its in-process execution API) | 0.0 s | | +0.0 s |"
    )

    cpu = {"wall_s": 50.0, "busy_s": 90.0, "steps_s": 60.0, "scheduler_s": 10.0, "other_s": 5.0}
    cpu["airflow_all_s"] = 25.0
    assert cpu_lines(cpu, 55.0)[2:] == [
        "",
        "| processes | CPU | average cores |",
        "|---|---:|---:|",
        "| the step processes (`python -m tasks <step>`) | 60.0 s | 1.20 |",
        "| Airflow: scheduler | 10.0 s | 0.20 |",
        "| everything else (polling, the kernel, other work on the machine) | 5.0 s | 0.10 |",
        "| **Airflow and its PostgreSQL, together** | **25.0 s** | **0.50** |",
        "| all, in 50 s | 90.0 s | 1.80 |",
        "| the steps in one Python process (mean of the arms above) | 55.0 s | |",
    ]
    assert "every 0.5 s" in cpu_lines(cpu, 55.0)[1]  # the default interval of older results
