"""Orchestration overhead: the retrain DAG against the same steps in one process, DAG parse time,
and the no-op night.

Three measurements on the same data and config, each arm in its own fresh ``EMBED_HOME`` (run
directories, evaluation cache and MLflow store), so no cache helps either side:

- **overhead**: the ``retrain_embeddings`` DAG run with ``dag.test(run_conf=...)`` (local runner:
  every task starts ``python -m tasks <step>``) against the same steps (prepare, train, evaluate
  base, evaluate champion, evaluate fine-tuned, report, register, publish) called one after the
  other in ONE Python process through ``tasks.cli.main``. Both walls run from interpreter start;
  overhead = (DAG - in-process) / DAG. Per task: the task instance's duration against the step's
  time in-process. ``dag.test()`` builds an execution API in its own process before its first
  task, which a deployment (api-server already up) does not pay per run: it is built before the
  run, timed on its own and reported both ways.
- **parse**: ``DagBag`` of ``dags/`` in fresh processes and ``airflow dags report`` (median of
  several), and which heavy modules (torch, sentence-transformers, ...) the parse imported.
- **no-op night**: after the successful run, the same conf again (``force`` false). ``prepare``
  exits 99 ("nothing to do") and every task is skipped; its time against the full run.
- **deployment** (``--stack``): the DAG as production runs it, on PostgreSQL with the api-server,
  the scheduler (LocalExecutor), the triggerer and the dag-processor already up; the run is
  triggered through the REST API and timed from its trigger to its end, then the no-op night on
  the same stack. Independent tasks run at once there, which ``dag.test()`` does not do.

Usage::

    python bench/orchestration.py              # MiniLM, demo data, 1 epoch (~15 min, 2 CPUs)
    python bench/orchestration.py --epochs 3   # the demo's own length
    python bench/orchestration.py --small      # tiny model, synthetic pairs (a few minutes)
    python bench/orchestration.py --epochs 3 --stack   # and on a running Airflow deployment

Prints tables, writes ``--out`` (JSON) and, with ``--docs``, the tables into
``docs/benchmarks.md`` between ``<!-- bench:orchestration -->`` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import build_tiny_model, machine_info, update_docs
from bench.scaling import (
    DEMO_MODEL,
    check,
    command_line,
    model_label,
    model_options,
    run_measured,
    step_env,
    synthetic_pairs,
)
from tasks.io import write_jsonl

ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "retrain_embeddings"
#: The DAG's tasks in the order ``dag.test()`` runs them, with their step command lines.
TASKS: dict[str, list[str]] = {
    "prepare": ["prepare"],
    "mine": ["mine"],
    "train": ["train"],
    "evaluate_base": ["evaluate", "--model", "base"],
    "evaluate_champion": ["evaluate", "--model", "champion"],
    "evaluate_finetuned": ["evaluate", "--model", "finetuned"],
    "report": ["report"],
    "register": ["register"],
    "publish": ["publish"],
}
#: Exit codes a step may end with in a healthy run (publish: 99, no hub repo configured).
ALLOWED = {"publish": (0, 99)}
HEAVY_MODULES = ("torch", "sentence_transformers", "transformers", "mlflow", "datasets")
TARGET_NOOP = 0.05


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


# --- the two arms (each runs in its own process: ``--arm inprocess|dag``) -----------------------
def arm_inprocess(conf: dict[str, Any], result_file: Path) -> None:
    """Every step of the DAG, in order, in this one process (``tasks.cli.main``)."""
    entered = time.time()
    from tasks.cli import main
    from tasks.config import RunConfig, config_to_cli_args
    from tasks.io import run_dir_for

    imported = time.time()
    run_id = os.environ["AIRFLOW_CTX_DAG_RUN_ID"]
    run_dir = str(run_dir_for(DAG_ID, run_id))
    options = config_to_cli_args(RunConfig.from_mapping(conf).to_dict())
    steps = {}
    for task, argv in TASKS.items():
        started = time.time()
        code = main([argv[0], "--run-dir", run_dir, *options, *argv[1:]], exit=lambda c: c)
        steps[task] = {"start": started, "end": time.time(), "exit_code": code}
        if code not in ALLOWED.get(task, (0,)):
            raise SystemExit(f"in-process step {task} ended with exit code {code}")
    result = {"entered": entered, "imported": imported, "steps": steps, "cpu_s": _cpu()}
    result_file.write_text(json.dumps(result))


def _state(value: Any) -> str:
    return str(getattr(value, "value", value) or "none").split(".")[-1].lower()


def _task_instances(dagrun: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for ti in dagrun.get_task_instances():
        out[ti.task_id] = {
            "state": _state(ti.state),
            "start": ti.start_date.timestamp() if ti.start_date else None,
            "end": ti.end_date.timestamp() if ti.end_date else None,
            "duration_s": ti.duration,
            "try_number": ti.try_number,
        }
    return out


def arm_dag(conf: dict[str, Any], result_file: Path) -> None:
    """Parse the DAG, run it with ``dag.test``, then run it again with the same conf (no-op)."""
    entered = time.time()
    from airflow.dag_processing.dagbag import DagBag

    imported = time.time()
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    dag = bag.dags[DAG_ID]
    parsed = time.time()
    # dag.test() runs its tasks against an execution API it builds in this process on the first
    # task (FastAPI app, DagBag, lifespan, versioned routes on the first request): a cost of the
    # test harness that a deployment, whose api-server is already running, does not pay per run.
    # Built and called once here, and timed on its own.
    import httpx
    from airflow.sdk.execution_time.supervisor import in_process_api_server

    api = in_process_api_server()
    # building the app starts its lifespan; the first request builds its versioned routes (~8 s)
    with httpx.Client(transport=api.transport, base_url="http://in-process.invalid") as client:
        client.get("/health")
    harness = time.time()
    from tasks.io import read_json, run_dir_for

    runs = {}
    for name in ("full", "noop"):
        started, cpu_before = time.time(), _cpu()
        dagrun = dag.test(run_conf=conf)
        ended, cpu_after = time.time(), _cpu()
        manifest_path = run_dir_for(DAG_ID, dagrun.run_id) / "data" / "manifest.json"
        manifest = read_json(manifest_path) if manifest_path.exists() else {}
        runs[name] = {
            "run_id": dagrun.run_id,
            "state": _state(dagrun.state),
            "start": started,
            "end": ended,
            "cpu_s_at_end": cpu_after,
            "cpu_s": cpu_after - cpu_before,
            "tasks": _task_instances(dagrun),
            "nothing_to_do": manifest.get("nothing_to_do"),
        }
        if runs[name]["state"] != "success":
            break
    result = {
        "entered": entered,
        "imported": imported,
        "parsed": parsed,
        "harness": harness,
        "runs": runs,
    }
    result_file.write_text(json.dumps(result))


# --- the benchmark ---------------------------------------------------------------------------
def airflow_env(home: Path) -> dict[str, str]:
    """A step environment plus a private Airflow home pointing at this project's DAGs."""
    env = step_env(home)
    env.update(
        AIRFLOW_HOME=str(home / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
    )
    env.pop("AIRFLOW_CONN_MLFLOW_DEFAULT", None)
    return env


def airflow_cli() -> str:
    return str(Path(sys.executable).parent / "airflow")


PARSE_CODE = """
import json, sys, time
t0 = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
t1 = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
t2 = time.perf_counter()
heavy = [m for m in json.loads(sys.argv[2]) if m in sys.modules]
again = []
for _ in range(3):
    t3 = time.perf_counter()
    DagBag(dag_folder=sys.argv[1])
    again.append(time.perf_counter() - t3)
print(json.dumps({
    "airflow_import_s": t1 - t0, "parse_s": t2 - t1, "reparse_s": sorted(again)[1],
    "file_s": bag.dagbag_stats[0].duration.total_seconds(), "dags": sorted(bag.dags),
    "tasks": len(bag.dags["retrain_embeddings"].tasks) if "retrain_embeddings" in bag.dags else 0,
    "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
    "heavy_modules_imported": heavy,
}))
"""


FLOOR_CODE = """
import sys, time
t0 = time.perf_counter()
__import__(sys.argv[1])
print(time.perf_counter() - t0, flush=True)
if sys.argv[2] == "freeze":
    import gc
    gc.freeze()
print(time.time(), flush=True)
"""
#: What a step process imports before it can work: the training/evaluation stack and MLflow.
FLOOR_MODULES = ("sentence_transformers", "mlflow")


def measure_process_floor(env: dict[str, str], repeats: int) -> dict[str, Any]:
    """Start, import and exit of a bare process per heavy module (median of ``repeats``), and
    the exit again with ``gc.freeze()`` first (the interpreter's final collections skip then)."""
    out: dict[str, Any] = {"repeats": repeats}
    for module in FLOOR_MODULES:
        rows: dict[str, list[float]] = {"import_s": [], "exit_s": [], "exit_frozen_s": []}
        for _ in range(repeats):
            for mode in ("plain", "freeze"):
                m = check(
                    run_measured([sys.executable, "-c", FLOOR_CODE, module, mode], env),
                    f"import {module}",
                )
                imported, printed = (float(x) for x in m.stdout.split()[:2])
                exit_s = m.started + m.wall_s - printed
                if mode == "plain":
                    rows["import_s"].append(imported)
                    rows["exit_s"].append(exit_s)
                else:
                    rows["exit_frozen_s"].append(exit_s)
        out[module] = {k: statistics.median(v) for k, v in rows.items()}
    return out


def measure_parse(env: dict[str, str], repeats: int, report_repeats: int) -> dict[str, Any]:
    """DagBag parse in fresh processes (median) and ``airflow dags report`` (median)."""
    runs = []
    for _ in range(repeats):
        m = check(
            run_measured(
                [sys.executable, "-c", PARSE_CODE, str(ROOT / "dags"), json.dumps(HEAVY_MODULES)],
                env,
            ),
            "DagBag parse",
        )
        runs.append(m.summary())
    reports = []
    for _ in range(report_repeats):
        m = check(run_measured([airflow_cli(), "dags", "report", "-o", "json"], env), "dags report")
        rows = json.loads(next(line for line in m.stdout.splitlines() if line.startswith("[")))
        h, mi, s = rows[0]["duration"].split(":")
        reports.append(
            {"wall_s": m.wall_s, "file_s": int(h) * 3600 + int(mi) * 60 + float(s), "rows": rows}
        )
    heavy = sorted({mod for r in runs for mod in r["heavy_modules_imported"]})
    errors = [r["import_errors"] for r in runs if r["import_errors"]]
    if errors:
        raise SystemExit(f"the DAG file has import errors: {errors[0]}")
    if {"torch", "sentence_transformers"} & set(heavy):
        raise SystemExit(f"parsing the DAG imported {heavy}: the DAG must not import torch")
    med = statistics.median
    return {
        "repeats": repeats,
        "parse_s": med(r["parse_s"] for r in runs),
        "reparse_s": med(r["reparse_s"] for r in runs),
        "file_s": med(r["file_s"] for r in runs),
        "airflow_import_s": med(r["airflow_import_s"] for r in runs),
        "tasks": runs[0]["tasks"],
        "dags": runs[0]["dags"],
        "heavy_modules_imported": heavy,
        "report_repeats": report_repeats,
        "report_file_s": med(r["file_s"] for r in reports) if reports else None,
        "report_wall_s": med(r["wall_s"] for r in reports) if reports else None,
        "runs": runs,
    }


def _arm(arm: str, conf: dict[str, Any], env: dict[str, str], result: Path, log: Path) -> Any:
    argv = [sys.executable, str(Path(__file__).resolve()), "--arm", arm]
    argv += ["--conf", json.dumps(conf), "--result", str(result)]
    m = run_measured(argv, env)
    log.write_text(m.stdout + "\n--- stderr ---\n" + m.stderr)
    check(m, f"the {arm} arm (log: {log})")
    return m, json.loads(result.read_text())


def overhead_breakdown(inproc: dict[str, Any], dag: dict[str, Any]) -> dict[str, Any]:
    """Walls, CPU and per-task times of both arms (seconds)."""
    full = dag["runs"]["full"]
    in_steps = inproc["steps"]
    first_in = min(s["start"] for s in in_steps.values())
    last_in = max(s["end"] for s in in_steps.values())
    tasks = {}
    for task in TASKS:
        ti = full["tasks"].get(task, {})
        step = in_steps[task]
        tasks[task] = {
            "dag_s": ti.get("duration_s") or 0.0,
            "dag_state": ti.get("state"),
            "inprocess_s": step["end"] - step["start"],
        }
    ti_sum = sum(t["dag_s"] for t in tasks.values())
    starts = [t["start"] for t in full["tasks"].values() if t["start"]]
    dag_e2e = full["end"] - dag["launched"]
    in_e2e = last_in - inproc["launched"]
    harness = dag.get("harness", dag["parsed"]) - dag["parsed"]
    return {
        "dag_e2e_s": dag_e2e,
        "inprocess_e2e_s": in_e2e,
        "overhead": (dag_e2e - in_e2e) / dag_e2e,
        "dag_harness_s": harness,
        "overhead_deployed": (dag_e2e - harness - in_e2e) / (dag_e2e - harness),
        "dag_run_s": full["end"] - full["start"],
        "inprocess_steps_s": last_in - first_in,
        "overhead_run_only": (full["end"] - full["start"] - (last_in - first_in))
        / (full["end"] - full["start"]),
        "dag_cpu_s": full["cpu_s_at_end"],
        "inprocess_cpu_s": inproc["cpu_s"],
        "overhead_cpu": (full["cpu_s_at_end"] - inproc["cpu_s"]) / full["cpu_s_at_end"],
        "dag_startup_s": dag["parsed"] - dag["launched"],
        "inprocess_startup_s": inproc["imported"] - inproc["launched"],
        "dag_before_first_task_s": (min(starts) - full["start"]) if starts else 0.0,
        "dag_outside_tasks_s": (full["end"] - full["start"]) - ti_sum,
        "tasks": tasks,
    }


def noop_summary(dag: dict[str, Any], cli: Any | None) -> dict[str, Any]:
    full, noop = dag["runs"]["full"], dag["runs"].get("noop")
    if noop is None:
        raise SystemExit(f"the full DAG run ended {full['state']}: no no-op run")
    full_s = full["end"] - full["start"]
    noop_s = noop["end"] - noop["start"]
    out = {
        "full_run_s": full_s,
        "noop_run_s": noop_s,
        "ratio": noop_s / full_s,
        "noop_state": noop["state"],
        "noop_tasks": {k: v["state"] for k, v in noop["tasks"].items()},
        "prepare_s": noop["tasks"].get("prepare", {}).get("duration_s"),
        "nothing_to_do": noop["nothing_to_do"],
        "full_tasks": {k: v["state"] for k, v in full["tasks"].items()},
    }
    if cli is not None:
        out["cli_noop_s"] = cli.wall_s
        out["cli_ratio"] = cli.wall_s / full_s
    return out


def _ts(value: str | None) -> float | None:
    from datetime import datetime

    return datetime.fromisoformat(value).timestamp() if value else None


#: Options the test stack shortens (so tests find the DAG quickly) that the deployment arm sets
#: back to Airflow's own defaults: it measures what a deployment runs, not what tests need.
STACK_DEFAULT_OPTIONS = (
    ("dag_processor", "refresh_interval"),
    ("dag_processor", "min_file_process_interval"),
    ("dag_processor", "bundle_refresh_check_interval"),
    ("scheduler", "scheduler_heartbeat_sec"),
    ("scheduler", "job_heartbeat_sec"),
    ("triggerer", "job_heartbeat_sec"),
)
#: Process kinds the CPU meter tells apart, by command line or process title (first match wins),
#: with their labels. Airflow's LocalExecutor workers supervise the tasks; each task runs in a
#: process titled ``airflow worker -- <ti id>`` that starts the step and relays its log.
CPU_KINDS = (
    ("steps", " -m tasks ", "the step processes (`python -m tasks <step>`)"),
    ("postgres", "postgres", "PostgreSQL"),
    ("executor", "LocalExecutor", "Airflow: LocalExecutor workers (task supervisors)"),
    ("task_runner", "airflow worker --", "Airflow: task processes (start the step, relay its log)"),
    ("scheduler", "airflow scheduler", "Airflow: scheduler"),
    ("dag_processor", "airflow dag-processor", "Airflow: dag-processor and its parses"),
    ("triggerer", "airflow triggerer", "Airflow: triggerer"),
    ("api_server", "airflow api", "Airflow: api-server"),
    ("airflow", "airflow", "Airflow: other processes"),
)
AIRFLOW_KINDS = ("executor", "task_runner", "scheduler", "dag_processor", "triggerer", "api_server")


def deployment_settings(compose: Path = ROOT / "docker-compose.yaml") -> dict[str, str]:
    """The Airflow tuning the shipped deployment sets (``AIRFLOW__WORKERS__*``,
    ``AIRFLOW__SCHEDULER__*``, ... in ``docker-compose.yaml``), without its connections, secrets
    and paths."""
    import yaml

    env = yaml.safe_load(compose.read_text(encoding="utf-8"))["x-airflow"]["environment"]
    sections = ("WORKERS", "SCHEDULER", "DAG_PROCESSOR", "TRIGGERER")
    return {
        key: str(value)
        for key, value in env.items()
        if key.startswith(tuple(f"AIRFLOW__{s}__" for s in sections)) and "${" not in str(value)
    }


def airflow_default_env(options: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """``AIRFLOW__SECTION__KEY`` variables holding Airflow's own defaults for ``options``."""
    from airflow.configuration import conf as airflow_conf

    return {
        f"AIRFLOW__{section.upper()}__{key.upper()}": str(
            airflow_conf.get_default_value(section, key)
        )
        for section, key in options
    }


def proc_stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (state, ppid, ..., utime at 11,
    stime at 12): the name is cut at its last ``)``, since it may hold spaces and parentheses."""
    with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
        return f.read().rsplit(")", 1)[1].split()


class CpuMeter:
    """CPU seconds this machine spends while the meter runs: all of it (``/proc/stat``) and, by
    sampling ``/proc/<pid>/stat`` every ``interval`` s, how much went to each kind of process
    (:data:`CPU_KINDS`). A process that exits between two samples loses at most its last
    ``interval`` s; "other" is the machine's total less the kinds. Linux only.

    ``tree`` (a pid) limits the kinds to that process and its descendants, so work that runs beside
    the measured one (another benchmark, a test suite) lands in "other", not in the steps' share.
    """

    def __init__(self, interval: float = 0.5, tree: int | None = None) -> None:
        self.interval = interval
        self.tree = tree
        self._parent: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._base: dict[int, int] = {}
        self._last: dict[int, int] = {}
        self._kind: dict[int, str] = {}
        self._tick = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _busy_ticks() -> int:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return sum(fields) - fields[3] - fields[4]  # less idle and iowait

    def _sample(self, first: bool = False) -> None:
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            try:
                fields = proc_stat(pid)
                ticks = int(fields[11]) + int(fields[12])
                self._parent[pid] = int(fields[1])
                # read again every time: a forked process sets its own title after a while; but
                # an exited, not yet reaped process (a zombie) has no command line any more, and
                # keeps the kind it had while it ran
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
                if cmd or pid not in self._kind:
                    self._kind[pid] = next((k for k, m, _ in CPU_KINDS if m in cmd), "other")
            except (OSError, IndexError, ValueError):
                continue
            if first:
                self._base[pid] = ticks
            self._last[pid] = ticks

    def _in_tree(self, pid: int) -> bool:
        """Whether ``pid`` is ``self.tree`` or descends from it (always, without a tree)."""
        seen: set[int] = set()
        while self.tree is not None and pid != self.tree:
            if pid in seen or pid not in self._parent:
                return False
            seen.add(pid)
            pid = self._parent[pid]
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> CpuMeter:
        self._started, self._busy0 = time.time(), self._busy_ticks()
        self._sample(first=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        self._sample()
        wall, busy = time.time() - self._started, (self._busy_ticks() - self._busy0) / self._tick
        kinds = {kind: 0.0 for kind, _, _ in CPU_KINDS}
        for pid, ticks in self._last.items():
            kind = self._kind.get(pid, "other") if self._in_tree(pid) else "other"
            if kind in kinds:
                kinds[kind] += (ticks - self._base.get(pid, 0)) / self._tick
        return {
            "interval_s": self.interval,
            "wall_s": wall,
            "busy_s": busy,
            **{f"{kind}_s": value for kind, value in kinds.items()},
            "other_s": max(0.0, busy - sum(kinds.values())),
            "airflow_all_s": sum(kinds[k] for k in (*AIRFLOW_KINDS, "airflow", "postgres")),
        }


def arm_stack(conf: dict[str, Any], root: Path) -> dict[str, Any]:
    """The DAG as a deployment runs it: PostgreSQL, api-server, scheduler (LocalExecutor,
    parallelism 4), triggerer and dag-processor already up (``tests/support/airflow_stack.py``,
    at Airflow's default intervals plus the Airflow settings of ``docker-compose.yaml``),
    a run triggered through the REST API with ``conf``, then the same conf again (the no-op
    night). Times come from the run's and task instances' own timestamps: the run from its
    trigger (``queued_at``) to its end, so the scheduler's latency counts. Tasks that do not
    depend on each other (evaluate base, evaluate champion and train after prepare) run at once,
    as they do in a deployment."""
    from support.airflow_stack import AirflowStack

    env = {
        "EMBED_BASE_MODEL": conf["base_model"],
        **airflow_default_env(STACK_DEFAULT_OPTIONS),
        **deployment_settings(),
    }
    stack = AirflowStack(root, env=env)
    # A deployment has run tasks before: each LocalExecutor worker pays a one-time start (several
    # seconds: bundles, plugins) on its first task. A short warm-up run on 64 of the pairs, with
    # another seed and model name (so no cache and no champion carries over), pays it first.
    warmup = warmup_conf(conf, _head(Path(conf["data_path"]), 64, root / "warmup.jsonl"))
    with stack:
        stack.unpause(DAG_ID)
        started = time.time()
        warm_id = stack.trigger(DAG_ID, warmup)
        warm_state = stack.wait_for_run(DAG_ID, warm_id, timeout=3600).state
        if warm_state != "success":
            raise SystemExit(f"the warm-up run {warm_id} ended {warm_state}")
        warmup_s = time.time() - started
        runs = {name: _stack_run(stack, conf) for name in ("full", "noop")}
        return {"startup_s": stack.startup_seconds, "warmup_s": warmup_s, "runs": runs}


def warmup_conf(conf: dict[str, Any], data: Path) -> dict[str, Any]:
    """The warm-up run's conf: ``conf`` on ``data``, 1 epoch of batch 8, the next seed and its own
    model name."""
    return {
        **conf,
        "data_path": str(data),
        "epochs": 1,
        "batch_size": 8,
        "seed": int(conf.get("seed", 42)) + 1,
        "registered_model_name": "bench-warmup",
    }


def _head(source: Path, lines: int, target: Path) -> Path:
    """The first ``lines`` lines of ``source`` in ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(source, encoding="utf-8") as src:
        target.write_text("".join(line for _, line in zip(range(lines), src)))
    return target


def _stack_run(stack: Any, conf: dict[str, Any]) -> dict[str, Any]:
    """Trigger ``conf`` on the stack and wait for the run, the machine's CPU metered meanwhile;
    the run as :func:`stack_run_record` reads it from the REST API."""
    # the stack's processes (PostgreSQL, Airflow, the task processes) all descend from this one:
    # whatever else runs on the machine meanwhile is "other", not Airflow's or the steps'
    meter = CpuMeter(tree=os.getpid()).start() if Path("/proc/stat").exists() else None
    run_id = stack.trigger(DAG_ID, conf)
    result = stack.wait_for_run(DAG_ID, run_id, timeout=7200)
    cpu = meter.stop() if meter else None
    run = stack.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
    tis = stack.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
    if result.state != "success":
        raise SystemExit(f"the stack run {run_id} ended {result.state}: {result.tasks}")
    return stack_run_record(run_id, result.state, run, tis["task_instances"], cpu)


def stack_run_record(
    run_id: str,
    state: str,
    run: dict[str, Any],
    task_instances: list[dict[str, Any]],
    cpu: dict[str, Any] | None,
) -> dict[str, Any]:
    """A deployed run from the REST API's run and task instances (ISO times -> epoch seconds):
    ``run_s`` from its trigger (``queued_at``, else its start) to its end, and per task its start,
    end, queued time and duration."""
    queued, start, end = (_ts(run.get(k)) for k in ("queued_at", "start_date", "end_date"))
    tasks = {}
    for ti in task_instances:
        t_start, t_end = _ts(ti.get("start_date")), _ts(ti.get("end_date"))
        tasks[ti["task_id"]] = {
            "state": ti["state"],
            "start": t_start,
            "end": t_end,
            "queued": _ts(ti.get("queued_when")),
            "duration_s": (t_end - t_start) if t_start and t_end else None,
        }
    return {
        "run_id": run_id,
        "state": state,
        "queued": queued,
        "start": start,
        "end": end,
        "run_s": (end - (queued or start)) if end and (queued or start) else None,
        "tasks": tasks,
        "cpu": cpu,
    }


def stack_breakdown(stack: dict[str, Any], inprocess: list[dict[str, Any]]) -> dict[str, Any]:
    """The deployed run against the mean of the in-process arms (their steps, interpreter start
    included: 0.0-0.1 s)."""
    full, noop = stack["runs"]["full"], stack["runs"]["noop"]
    in_s = statistics.fmean(
        max(s["end"] for s in arm["steps"].values()) - arm["launched"] for arm in inprocess
    )
    tasks = full["tasks"]
    busy = [t for t in tasks.values() if t["start"] and t["end"]]
    return {
        "startup_s": stack["startup_s"],
        "warmup_s": stack["warmup_s"],
        "run_s": full["run_s"],
        "inprocess_e2e_s": in_s,
        "overhead": (full["run_s"] - in_s) / full["run_s"],
        "task_s_sum": sum(t["duration_s"] or 0.0 for t in busy),
        "scheduling_s": (min(t["start"] for t in busy) - (full["queued"] or full["start"]))
        if busy
        else None,
        "tasks": {
            task: {
                "state": t["state"],
                "duration_s": t["duration_s"],
                "offset_s": (t["start"] - (full["queued"] or full["start"]))
                if t["start"]
                else None,
            }
            for task, t in sorted(tasks.items(), key=lambda kv: kv[1]["start"] or 0)
        },
        "cpu": full.get("cpu"),
        "inprocess_cpu_s": statistics.fmean(arm["cpu_s"] for arm in inprocess),
        "noop_run_s": noop["run_s"],
        "noop_ratio": noop["run_s"] / full["run_s"],
        "noop_tasks": {task: t["state"] for task, t in noop["tasks"].items()},
    }


def pool_overhead(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of several (in-process, DAG) pairs; ratios from the means (pooled)."""
    mean = statistics.fmean
    out: dict[str, Any] = {
        key: mean(s[key] for s in samples)
        for key, value in samples[0].items()
        if isinstance(value, float) and not key.startswith("overhead")
    }
    out["overhead"] = (out["dag_e2e_s"] - out["inprocess_e2e_s"]) / out["dag_e2e_s"]
    out["overhead_run_only"] = (out["dag_run_s"] - out["inprocess_steps_s"]) / out["dag_run_s"]
    deployed = out["dag_e2e_s"] - out["dag_harness_s"]
    out["overhead_deployed"] = (deployed - out["inprocess_e2e_s"]) / deployed
    out["overhead_cpu"] = (out["dag_cpu_s"] - out["inprocess_cpu_s"]) / out["dag_cpu_s"]
    out["tasks"] = {
        task: {
            "dag_s": mean(s["tasks"][task]["dag_s"] for s in samples),
            "inprocess_s": mean(s["tasks"][task]["inprocess_s"] for s in samples),
            "dag_state": "/".join(sorted({s["tasks"][task]["dag_state"] for s in samples})),
        }
        for task in samples[0]["tasks"]
    }
    out["repeats"] = len(samples)
    out["samples"] = [s["overhead"] for s in samples]
    out["samples_cpu"] = [s["overhead_cpu"] for s in samples]
    return out


def pool_noop(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean times of the full and no-op runs of every DAG arm; every no-op task state seen."""
    mean = statistics.fmean
    out = dict(samples[0])
    for key in ("full_run_s", "noop_run_s", "prepare_s"):
        out[key] = mean(s[key] for s in samples)
    out["ratio"] = out["noop_run_s"] / out["full_run_s"]
    for key in ("noop_tasks", "full_tasks"):
        out[key] = {
            task: "/".join(sorted({s[key].get(task, "missing") for s in samples}))
            for task in samples[0][key]
        }
    out["noop_state"] = "/".join(sorted({s["noop_state"] for s in samples}))
    out["samples"] = [s["ratio"] for s in samples]
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """DAG parse time and the step processes' floor, then (in-process, DAG) pairs of arms and,
    with ``--stack``, the deployment; returns the result."""
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-orchestration-"))
    work.mkdir(parents=True, exist_ok=True)
    model, data = _model_and_data(args, work)
    conf = run_conf(data, model, args.epochs, model_options(model), args.small, args.extra)
    print(f"conf: {json.dumps(conf)}", flush=True)

    dag_env = airflow_env(work / "dag-0")
    migrate = check(run_measured([airflow_cli(), "db", "migrate"], dag_env), "airflow db migrate")
    print(f"airflow db migrate: {migrate.wall_s:.1f}s (not counted)", flush=True)
    parse = measure_parse(dag_env, args.parse_repeats, args.report_repeats)
    print(
        f"parse: DagBag {parse['parse_s'] * 1000:.0f} ms (median of {parse['repeats']}), "
        f"heavy modules imported: {parse['heavy_modules_imported'] or 'none'}",
        flush=True,
    )
    floor = measure_process_floor(step_env(work / "scratch"), args.floor_repeats)
    print(f"process floor: {json.dumps(floor)}", flush=True)

    pairs, noops, raw = measure_arms(conf, work, dag_env, args.repeats, args.cli_noop)
    stack = measure_stack(conf, work, raw) if args.stack else None
    return {
        "benchmark": "orchestration",
        "small": bool(args.small),
        "stack": stack,
        "model": model,
        "model_label": model_label(model),
        "conf": conf,
        "pairs": _count_lines(data),
        "overhead": pool_overhead(pairs),
        "noop": pool_noop(noops),
        "parse": parse,
        "process_floor": floor,
        "migrate_s": migrate.wall_s,
        "raw": raw,
        "targets": {"noop": TARGET_NOOP},
        "machine": machine_info(),
    }


def _model_and_data(args: argparse.Namespace, work: Path) -> tuple[str, Path]:
    """``--small``: the tiny model (unless ``--model``) and synthetic pairs; else ``--model`` or
    MiniLM, and ``--data`` or the demo data."""
    if args.small:
        model = args.model or str(build_tiny_model(work / "tiny-model"))
        return model, write_jsonl(work / "pairs.jsonl", synthetic_pairs(args.pairs or 150, seed=0))
    model = args.model or DEMO_MODEL
    if args.data:
        return model, Path(args.data)
    data = work / "demo.jsonl"
    demo = [sys.executable, "-m", "tasks", "demo-data", "--out", str(data)]
    check(run_measured(demo, step_env(work / "scratch")), "demo-data")
    return model, data


def run_conf(
    data: Path,
    model: str,
    epochs: int,
    options: dict[str, Any],
    small: bool = False,
    extra: str | None = None,
) -> dict[str, Any]:
    """The DAG run's conf: ``data`` and ``model`` for ``epochs`` without negatives (none from the
    data, none mined) nor ``force``
    (so the second run is the no-op night), the model's ``options`` (its dims), batch 8 when
    ``small``, then the ``--extra`` JSON over all of it."""
    return {
        "data_path": str(data),
        "base_model": model,
        "use_negatives": False,
        "mine_negatives": "never",
        "epochs": epochs,
        "force": False,
        **options,
        **({"batch_size": 8} if small else {}),
        **json.loads(extra or "{}"),
    }


def _count_lines(path: Path) -> int:
    """Non-blank lines (pairs) of a JSON Lines file."""
    with open(path, encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def arm_order(i: int) -> tuple[str, str]:
    """The arms of pair ``i`` in the order they run: in-process first in even pairs, the DAG first
    in odd ones (ABBA...), so a drifting load on a shared machine weighs on both alike."""
    return ("inprocess", "dag") if i % 2 == 0 else ("dag", "inprocess")


def measure_arms(
    conf: dict[str, Any], work: Path, dag_env: dict[str, str], repeats: int, cli_noop: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """``repeats`` (in-process, DAG) pairs of arms (:func:`arm_order`), each arm in its own fresh
    EMBED_HOME, and once, with ``cli_noop``, the no-op night through ``airflow dags test``.
    Returns each pair's :func:`overhead_breakdown`, its :func:`noop_summary` and its raw arms."""
    pairs: list[dict[str, Any]] = []
    noops: list[dict[str, Any]] = []
    raw: list[dict[str, Any]] = []
    cli = None
    for i in range(repeats):
        done = {arm: _run_arm(arm, i, conf, work) for arm in arm_order(i)}
        if cli_noop and cli is None:
            cli = _cli_noop(conf, dag_env, work)
        pairs.append(overhead_breakdown(done["inprocess"], done["dag"]))
        noops.append(noop_summary(done["dag"], cli if i == 0 else None))
        raw.append(done)
        print(f"[{i}] overhead {pairs[-1]['overhead']:.1%}", flush=True)
    return pairs, noops, raw


def _run_arm(arm: str, i: int, conf: dict[str, Any], work: Path) -> dict[str, Any]:
    """Arm ``arm`` of pair ``i`` in its own process and EMBED_HOME (the DAG arm with its own
    migrated Airflow database); its result, with ``launched``: when its process started."""
    if arm == "inprocess":
        env = step_env(work / f"inprocess-{i}")
        env.update(AIRFLOW_CTX_DAG_ID=DAG_ID, AIRFLOW_CTX_DAG_RUN_ID="manual__bench")
    else:
        env = airflow_env(work / f"dag-{i}")
        if i:
            check(run_measured([airflow_cli(), "db", "migrate"], env), "db migrate")
    m, out = _arm(arm, conf, env, work / f"{arm}-{i}.json", work / f"{arm}-{i}.log")
    out["launched"] = m.started
    print(arm_line(i, arm, m.wall_s, out), flush=True)
    return out


def arm_line(i: int, arm: str, wall_s: float, out: dict[str, Any]) -> str:
    """The progress line of an arm: the DAG arm's runs, or the in-process arm's wall."""
    if arm == "dag":
        walls = {name: r["end"] - r["start"] for name, r in out["runs"].items()}
        return f"[{i}] DAG runs: {', '.join(f'{k} {v:.1f}s' for k, v in walls.items())}"
    return f"[{i}] in one process: {wall_s:.1f}s"


def _cli_noop(conf: dict[str, Any], env: dict[str, str], work: Path) -> Any:
    """The no-op night through ``airflow dags test`` in a fresh process (it must end as nothing
    to do: the DAG arm has just run ``conf``)."""
    argv = [airflow_cli(), "dags", "test", DAG_ID, "--conf", json.dumps(conf)]
    cli = check(run_measured(argv, env), "airflow dags test (no-op)")
    (work / "cli-noop.log").write_text(cli.stdout + cli.stderr)
    if "nothing to do" not in cli.stdout + cli.stderr:
        raise SystemExit(f"the CLI no-op run did not end as nothing to do: {work}")
    print(f"no-op via airflow dags test: {cli.wall_s:.1f}s", flush=True)
    return cli


def measure_stack(conf: dict[str, Any], work: Path, raw: list[dict[str, Any]]) -> dict[str, Any]:
    """The deployment arm (:func:`arm_stack`) against the in-process arms of ``raw``."""
    print("deployment: starting PostgreSQL and Airflow ...", flush=True)
    stack = stack_breakdown(arm_stack(conf, work / "stack"), [d["inprocess"] for d in raw])
    print(
        f"deployment: run {stack['run_s']:.1f}s, overhead {stack['overhead']:.1%}, "
        f"no-op {stack['noop_run_s']:.1f}s",
        flush=True,
    )
    return stack


def _fixed(overhead: dict[str, Any]) -> float:
    """The fixed cost of orchestration per run: the DAG's wall less the same steps' in one
    process (process starts, imports, model loads, task scheduling)."""
    return overhead["dag_e2e_s"] - overhead["inprocess_e2e_s"]


def _met(value: float, target: float) -> str:
    return f"{'met' if value < target else 'NOT met'} (target < {target:.0%})"


def markdown(result: dict[str, Any]) -> str:
    """Tables: overhead, per task, (the process floor, the deployment,) no-op night, parse."""
    o, n = result["overhead"], result["noop"]
    reps = o.get("repeats", 1)
    mean = f" (mean of {reps})" if reps > 1 else ""
    lines = [*_overhead_lines(result, mean), *task_lines(o)]
    if result.get("process_floor"):
        lines += _floor_lines(result["process_floor"])
    if result.get("stack"):
        lines += stack_markdown(result["stack"])
    lines += [*_noop_lines(n, mean), *_parse_lines(result["parse"]), *_footer(result)]
    return "\n".join(lines)


def _overhead_lines(result: dict[str, Any], mean: str) -> list[str]:
    """The command, the overhead table (wall and CPU of both arms) and what it means."""
    o = result["overhead"]
    deployed = o.get("overhead_deployed", o["overhead"])
    return [
        "The retrain DAG run with `dag.test()` (local runner: one `python -m tasks <step>` "
        "process per task) against the same steps called in one Python process, on the same "
        "data and config, each in a fresh EMBED_HOME; then the same conf again (the no-op "
        "night):",
        "",
        "```bash",
        result.get("command", "python bench/orchestration.py"),
        "```",
        "",
        f"| run{mean} | wall | CPU |",
        "|---|---:|---:|",
        f"| all steps in one Python process | {o['inprocess_e2e_s']:.1f} s "
        f"| {o['inprocess_cpu_s']:.1f} s |",
        f"| DAG, `dag.test()`, local runner | {o['dag_e2e_s']:.1f} s | {o['dag_cpu_s']:.1f} s |",
        f"| fixed cost per run (DAG - in-process) | **{_fixed(o):.1f} s** "
        f"| {o['dag_cpu_s'] - o['inprocess_cpu_s']:.1f} s |",
        f"| overhead (DAG - in-process) / DAG | {o['overhead']:.1%} | {o['overhead_cpu']:.1%} |",
        f"| the same without `dag.test()`'s own execution API start "
        f"({o.get('dag_harness_s', 0.0):.1f} s) "
        f"| **{deployed:.1%}** | |",
        "",
        f"Orchestration costs {_fixed(o):.1f} s per run as `dag.test()` runs it, "
        f"{_fixed(o) - o.get('dag_harness_s', 0.0):.1f} s without the "
        "execution API that `dag.test()` builds in its own process before the first task (a "
        "deployment's api-server is already running; built and timed before the run here). Both "
        "walls run from interpreter start; without the start (the DAG run alone, "
        f"{o['dag_run_s']:.1f} s, against the steps alone, {o['inprocess_steps_s']:.1f} s) it is "
        f"{o['overhead_run_only']:.1%}."
        + (
            f" Per pair (the arms alternate: in-process first, then DAG first, ...): wall "
            f"{', '.join(f'{v:.1%}' for v in o['samples'])}; CPU "
            f"{', '.join(f'{v:.1%}' for v in o['samples_cpu'])}."
            if o.get("repeats", 1) > 1
            else ""
        ),
    ]


def task_lines(o: dict[str, Any]) -> list[str]:
    """The per-task table: each DAG task instance against its step in one process, between the
    start (interpreter, imports, parse), the harness, and the time outside task instances."""
    harness = o.get("dag_harness_s", 0.0)
    lines = [
        "",
        "| task | DAG task instance | in one process | difference |",
        "|---|---:|---:|---:|",
        f"| (start: interpreter, imports, DAG parse) | {o['dag_startup_s']:.1f} s "
        f"| {o['inprocess_startup_s']:.1f} s "
        f"| {o['dag_startup_s'] - o['inprocess_startup_s']:+.1f} s |",
        f"| (`dag.test()` harness: its in-process execution API) "
        f"| {harness:.1f} s | | {harness:+.1f} s |",
    ]
    for task, t in o["tasks"].items():
        state = "" if t["dag_state"] == "success" else f" ({t['dag_state']})"
        lines.append(
            f"| {task}{state} | {t['dag_s']:.1f} s | {t['inprocess_s']:.1f} s "
            f"| {t['dag_s'] - t['inprocess_s']:+.1f} s |"
        )
    outside = o["dag_outside_tasks_s"]
    lines.append(
        f"| (outside task instances: run setup, between tasks) | {outside:.1f} s "
        f"| | {outside:+.1f} s |"
    )
    return lines


def _floor_lines(f: dict[str, Any]) -> list[str]:
    """What a step process pays to import its libraries and to exit, per module."""
    lines = [
        "",
        f"What every step process pays before and after its work (bare `python -c`, median "
        f"of {f['repeats']}):",
        "",
        "| import | import | interpreter exit | exit after `gc.freeze()` |",
        "|---|---:|---:|---:|",
    ]
    for module in FLOOR_MODULES:
        r = f[module]
        lines.append(
            f"| `{module}` | {r['import_s']:.1f} s | {r['exit_s']:.1f} s "
            f"| {r['exit_frozen_s']:.1f} s |"
        )
    return lines


def _noop_lines(n: dict[str, Any], mean: str) -> list[str]:
    """The no-op night against the full run (and through ``airflow dags test``, when run)."""
    lines = [
        "",
        "| run | wall | of the full run | tasks |",
        "|---|---:|---:|---|",
        f"| full run, `dag.test()`{mean} | {n['full_run_s']:.1f} s | 100% "
        f"| {_states(n['full_tasks'])} |",
        f"| no-op night, `dag.test()` in the same process{mean} "
        f"| {n['noop_run_s']:.1f} s | **{n['ratio']:.1%}** | {_states(n['noop_tasks'])} |",
    ]
    if "cli_noop_s" in n:
        lines.append(
            f"| no-op night, `airflow dags test` (fresh process) | {n['cli_noop_s']:.1f} s "
            f"| {n['cli_ratio']:.1%} | the same |"
        )
    return [
        *lines,
        "",
        f"No-op night {_met(n['ratio'], TARGET_NOOP)}: prepare ran {n['prepare_s']:.1f} s and "
        f"exited 99 (nothing to do).",
    ]


def _parse_lines(p: dict[str, Any]) -> list[str]:
    """The DAG parse table: fresh and repeated parses, ``airflow dags report``, heavy imports."""
    lines = [
        "",
        "| DAG parse (dags/retrain_embeddings.py) | median |",
        "|---|---:|",
        f"| `DagBag` parse in a fresh process ({p['repeats']} runs) "
        f"| {p['parse_s'] * 1000:.0f} ms |",
        f"| the file's own load time (`dagbag_stats`) | {p['file_s'] * 1000:.0f} ms |",
        f"| `DagBag` re-parse in the same process (median of 3 per process) "
        f"| {p['reparse_s'] * 1000:.0f} ms |",
    ]
    if p["report_file_s"] is not None:
        lines += [
            f"| `airflow dags report` duration ({p['report_repeats']} runs) "
            f"| {p['report_file_s'] * 1000:.0f} ms |",
            f"| `airflow dags report` command, Airflow start included "
            f"| {p['report_wall_s']:.1f} s |",
        ]
    heavy = ", ".join(p["heavy_modules_imported"]) or "none"
    return [
        *lines,
        f"| heavy modules imported by the parse ({', '.join(HEAVY_MODULES)}) | {heavy} |",
    ]


def _footer(result: dict[str, Any]) -> list[str]:
    m, c = result["machine"], result["conf"]
    return [
        "",
        f"{result['model_label']}, {result['pairs']} pairs, {c['epochs']} epoch(s), "
        f"use_negatives off; each arm in a fresh EMBED_HOME. {m['device_name']}, torch "
        f"{m['torch']}, sentence-transformers {m['sentence_transformers']}, {m['date']}.",
    ]


def stack_markdown(s: dict[str, Any]) -> list[str]:
    """The deployed run's table and its tasks (start after the trigger, duration)."""
    lines = [
        "",
        "The same conf triggered through the REST API of a running deployment (PostgreSQL, "
        "api-server, scheduler with the LocalExecutor at parallelism 4, triggerer, dag-processor, "
        "at Airflow's default intervals and `docker-compose.yaml`'s Airflow settings; "
        f"started in {s['startup_s']:.0f} s and warmed by a short run on 64 pairs, "
        f"{s['warmup_s']:.0f} s, neither counted), then again (the no-op night). Tasks that do "
        "not depend on each other run at once, as in production:",
        "",
        "| run | wall |",
        "|---|---:|",
        f"| all steps in one Python process (mean of the arms above) | "
        f"{s['inprocess_e2e_s']:.1f} s |",
        f"| DAG run on the deployment, trigger to end | {s['run_s']:.1f} s |",
        f"| fixed cost per run (DAG - in-process) | "
        f"**{s['run_s'] - s['inprocess_e2e_s']:.1f} s** |",
        f"| overhead (DAG - in-process) / DAG | {s['overhead']:.1%} |",
        f"| no-op night on the deployment | {s['noop_run_s']:.1f} s "
        f"({s['noop_ratio']:.1%} of the full run) |",
        "",
        f"On the deployment orchestration costs {s['run_s'] - s['inprocess_e2e_s']:.1f} s per "
        f"run. The first task started "
        f"{s['scheduling_s']:.1f} s after the trigger.",
        "",
        "| task | started (s after trigger) | duration |",
        "|---|---:|---:|",
    ]
    for task, t in s["tasks"].items():
        state = "" if t["state"] == "success" else f" ({t['state']})"
        start = "" if t.get("offset_s") is None else f"{t['offset_s']:.1f}"
        duration = "" if t["duration_s"] is None else f"{t['duration_s']:.1f} s"
        lines.append(f"| {task}{state} | {start} | {duration} |")
    if s.get("cpu"):
        lines += cpu_lines(s["cpu"], s["inprocess_cpu_s"])
    return lines


def cpu_lines(cpu: dict[str, Any], inprocess_cpu_s: float) -> list[str]:
    """Where the machine's CPU went during the deployed run, by kind of process (CPU s and
    average cores), against the steps' CPU in one process."""
    run = cpu["wall_s"]
    lines = [
        "",
        "Where the machine's CPU went during the deployed run (sampled from `/proc` every "
        f"{cpu.get('interval_s', 0.5):g} s; average cores = CPU s / the run's wall):",
        "",
        "| processes | CPU | average cores |",
        "|---|---:|---:|",
    ]
    for kind, _, label in CPU_KINDS:
        if f"{kind}_s" in cpu:
            lines.append(f"| {label} | {cpu[f'{kind}_s']:.1f} s | {cpu[f'{kind}_s'] / run:.2f} |")
    airflow = cpu.get("airflow_all_s", 0.0)
    return [
        *lines,
        f"| everything else (polling, the kernel, other work on the machine) | "
        f"{cpu['other_s']:.1f} s | {cpu['other_s'] / run:.2f} |",
        f"| **Airflow and its PostgreSQL, together** | **{airflow:.1f} s** | "
        f"**{airflow / run:.2f}** |",
        f"| all, in {run:.0f} s | {cpu['busy_s']:.1f} s | {cpu['busy_s'] / run:.2f} |",
        f"| the steps in one Python process (mean of the arms above) | {inprocess_cpu_s:.1f} s | |",
    ]


def _states(states: dict[str, str]) -> str:
    counts: dict[str, int] = {}
    for state in states.values():
        counts[state] = counts.get(state, 0) + 1
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure (or, with ``--from-json``, read a saved result), print the tables and a JSON
    summary line, write ``--out`` and, with ``--docs``, the tables into docs/benchmarks.md.
    ``--arm`` runs one arm in this process (what :func:`_arm` starts)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    if args.arm:
        conf = json.loads(args.conf)
        (arm_inprocess if args.arm == "inprocess" else arm_dag)(conf, Path(args.result))
        return {}
    if args.small:
        args.parse_repeats = min(args.parse_repeats, 3)
        args.report_repeats = min(args.report_repeats, 1)
        args.floor_repeats = min(args.floor_repeats, 1)
        args.repeats = min(args.repeats, 1)
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
    else:
        result = run(args)
        result["command"] = command_line("orchestration.py", argv)
    table = markdown(result)
    print(table)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    if args.docs:
        update_docs("orchestration", table)
    summary = {
        "overhead": result["overhead"]["overhead"],
        "noop_ratio": result["noop"]["ratio"],
        "parse_s": result["parse"]["parse_s"],
    }
    print(json.dumps({"benchmark": "orchestration", **summary}))
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help=f"base model (default {DEMO_MODEL}; --small: tiny)")
    parser.add_argument("--data", help="pairs file (default: the demo data)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=0, help="--small: synthetic pair count")
    parser.add_argument("--extra", help="JSON of further DAG params, e.g. '{\"batch_size\": 16}'")
    parser.add_argument("--parse-repeats", type=int, default=5)
    parser.add_argument("--report-repeats", type=int, default=3)
    parser.add_argument("--floor-repeats", type=int, default=1)
    parser.add_argument(
        "--repeats", type=int, default=2, help="(in-process, DAG) pairs, order alternating"
    )
    parser.add_argument(
        "--no-cli-noop",
        dest="cli_noop",
        action="store_false",
        help="skip the no-op run through `airflow dags test`",
    )
    parser.add_argument(
        "--stack",
        action="store_true",
        help="also run the DAG on a real deployment (PostgreSQL + Airflow components)",
    )
    parser.add_argument("--small", action="store_true", help="tiny model, synthetic pairs")
    parser.add_argument("--work", help="working folder (default: a temp dir)")
    parser.add_argument("--out", help="write the result JSON here")
    parser.add_argument("--docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--arm", choices=("inprocess", "dag"), help=argparse.SUPPRESS)
    parser.add_argument("--conf", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--from-json", help="render a saved result (--out) instead of running")
    return parser


if __name__ == "__main__":
    main()
