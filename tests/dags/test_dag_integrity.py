"""DAG integrity: imports cleanly and fast, without torch, with the settings it promises."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, STEP_TASKS

pytestmark = pytest.mark.dag


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"retrain_embeddings", "watch_annotations"} <= set(dagbag.dags)


def test_settings(dagbag):
    dag = dagbag.dags["retrain_embeddings"]
    assert {"embeddings", "mlflow"} <= set(dag.tags)
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert dag.timetable.timetable.expression == "0 3 * * *"  # cron OR the annotations asset
    for task in dag.tasks:
        assert task.retries >= 2, task.task_id
    # the step tasks other tests and the benchmarks list, in an order the DAG can run them
    order = [*STEP_TASKS, "commit_watermark"]
    assert {t.task_id for t in dag.tasks} == set(order)
    for i, task_id in enumerate(order):
        assert dag.get_task(task_id).upstream_task_ids <= set(order[:i]), task_id
    assert dag.get_task("mine").upstream_task_ids == {"prepare"}
    assert dag.get_task("train").upstream_task_ids == {"mine"}
    # train puts both evaluations in the cache: the evaluate tasks follow it and read them
    assert dag.get_task("evaluate_base").upstream_task_ids == {"train"}
    assert dag.get_task("evaluate_finetuned").upstream_task_ids == {"train"}
    assert dag.get_task("evaluate_champion").upstream_task_ids == {"prepare"}
    assert dag.get_task("report").upstream_task_ids == {
        "evaluate_base",
        "evaluate_champion",
        "evaluate_finetuned",
    }
    assert dag.get_task("publish").upstream_task_ids == {"register"}
    assert dag.get_task("commit_watermark").upstream_task_ids == {
        t.task_id for t in dag.tasks if t.task_id != "commit_watermark"
    }


def test_params_are_the_config_and_validate(dagbag):
    from airflow.sdk import Param

    from tasks.config import config_fields

    dag = dagbag.dags["retrain_embeddings"]
    params = dag.params
    assert set(params.keys()) == {f.name for f in config_fields()}
    for name in params:
        param = params.get_param(name)
        assert param.schema.get("title") and param.description
        param.resolve()  # every default is valid against its own schema
    assert params.get_param("source").schema["enum"] == ["local", "huggingface", "argilla"]
    bad = Param(**{**params.get_param("epochs").dump(), "default": 0})
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        bad.resolve()


def test_parse_is_fast_and_imports_no_torch():
    paths = [str(ROOT), str(ROOT / "plugins"), str(ROOT / "dags")]
    code = (
        f"import sys, time; sys.path[:0] = {paths!r}\n"
        "import airflow.sdk\n"
        "t = time.perf_counter()\n"
        "import retrain_embeddings\n"
        "print(time.perf_counter() - t)\n"
        "print('torch' in sys.modules, 'sentence_transformers' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert float(out[0]) < 0.5
    assert out[1:] == ["False", "False"]
