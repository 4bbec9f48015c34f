"""The retrain DAG in a real Airflow deployment, driven through the REST API v2 as users do.

The ``airflow_stack`` fixture runs PostgreSQL, the api-server, the scheduler (LocalExecutor), the
triggerer and the dag-processor on 127.0.0.1 with the project's ``dags/`` and ``plugins/``; every
step is a ``python -m tasks <step>`` subprocess on the worker (local runner).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from conftest import TRAINING_STEPS, make_pairs, tiny_options, write_jsonl

pytestmark = [pytest.mark.services, pytest.mark.dag]

RETRAIN = "retrain_embeddings"


def conf_from_options(options: list[str]) -> dict[str, Any]:
    """``--name value`` CLI options as a trigger conf, typed as ``tasks.config`` types them."""
    from tasks.config import RunConfig

    pairs = zip(options[::2], options[1::2])
    values = {flag.removeprefix("--").replace("-", "_"): value for flag, value in pairs}
    typed = RunConfig.from_mapping(values).to_dict()
    return {name: typed[name] for name in values}


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def expected_next_run(cron: str, start: datetime, now: datetime) -> datetime:
    """Next run of a catchup=False cron trigger timetable with no run yet: the latest tick
    before ``now``, but not before the first tick at or after the start date."""
    from croniter import croniter

    latest = croniter(cron, now).get_prev(datetime)
    first = croniter(cron, start - timedelta(microseconds=1)).get_next(datetime)
    return max(latest, first)


def test_nightly_timetable_in_api(airflow_stack):
    """The DAG's schedule, as the API reports it, is the configured cron OR the asset."""
    from cron_descriptor import CasingTypeEnum, ExpressionDescriptor

    details = airflow_stack.wait_for_dag(RETRAIN)
    cron = airflow_stack.env["EMBED_RETRAIN_CRON"]
    assert cron in details["timetable_summary"], details["timetable_summary"]
    described = ExpressionDescriptor(
        cron, casing_type=CasingTypeEnum.Sentence, use_24hour_time_format=True
    ).get_description()
    assert described in details["timetable_description"], details["timetable_description"]
    assert "argilla_annotations" in json.dumps(details["asset_expression"])

    run_after = _utc(details["next_dagrun_run_after"])
    start = _utc(details["start_date"])
    parsed = _utc(details["last_parsed_time"])
    now = datetime.now(parsed.tzinfo)
    candidates = {expected_next_run(cron, start, moment) for moment in (parsed, now)}
    assert run_after in candidates, (run_after, candidates)
    assert _utc(details["next_dagrun_logical_date"]) == run_after
    assert details["catchup"] is False and details["max_active_runs"] == 1


def test_retrain_triggered_through_rest_api(airflow_stack, tiny_model_dir, tmp_path, stopwatch):
    """Trigger with a conf (tiny model, tiny data): every step succeeds, publish is skipped,
    and the registered MLflow version belongs to this run."""
    from mlflow.tracking import MlflowClient

    stack = airflow_stack
    data = write_jsonl(tmp_path / "pairs.jsonl", make_pairs())
    conf = {
        **conf_from_options(tiny_options(data, tiny_model_dir)),
        "source": "local",
        "epochs": 1,
        "experiment_name": "airflow-stack-e2e",
        "registered_model_name": "airflow-stack-model",
    }
    stack.unpause(RETRAIN)
    run_id = stack.trigger(RETRAIN, conf)
    result = stack.wait_for_run(RETRAIN, run_id, timeout=900)
    print(f"run {run_id}: {result.state} in {result.seconds:.1f}s; tasks {result.tasks}")

    assert result.state == "success", result.tasks
    assert {step: result.tasks.get(step) for step in TRAINING_STEPS} == dict.fromkeys(
        TRAINING_STEPS, "success"
    )
    assert result.tasks["publish"] == "skipped"  # no hub_repo_id
    others = set(result.tasks) - set(TRAINING_STEPS) - {"publish"}
    assert all(result.tasks[task] in ("success", "skipped") for task in others), result.tasks

    run = stack.api("GET", f"/api/v2/dags/{RETRAIN}/dagRuns/{run_id}")
    assert run["run_type"] == "manual"
    assert run["conf"] == conf

    prepared = stack.xcom(RETRAIN, run_id, "prepare")
    assert prepared["train_pairs"] > 0 and prepared["eval_queries"] > 0
    registered = stack.xcom(RETRAIN, run_id, "register")
    assert registered["registered_model"] == "airflow-stack-model"
    client = MlflowClient(tracking_uri=stack.mlflow_uri, registry_uri=stack.mlflow_uri)
    version = client.get_model_version("airflow-stack-model", registered["model_version"])
    assert version.tags["airflow_run_id"] == run_id
    mlflow_run = client.get_run(version.run_id)
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.params["matryoshka_dims"] == "64,32"
    assert "finetuned_dim_32_ndcg_at_10" in mlflow_run.data.metrics
