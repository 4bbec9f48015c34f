"""The annotation watermark: moves only forward, only from a run in which nothing failed, and the
retrain DAG runs on "nightly cron OR the annotations asset"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import ROOT

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


class MemoryStore:
    """Watermark records in a dict (the logic under test is the same as with Variables)."""

    def __init__(self) -> None:
        self.data: dict[str, dict] = {}

    def get(self, key):
        return self.data.get(key)

    def set(self, key, value):
        self.data[key] = dict(value)


def iso(dt: datetime) -> str:
    return dt.isoformat()


@pytest.mark.unit
def test_timestamps_parse_to_utc():
    from embedding_ops.watermark import format_timestamp, parse_timestamp

    assert parse_timestamp("2026-03-01T12:00:00.123456") == T0  # naive = UTC (Argilla)
    assert parse_timestamp("2026-03-01T13:00:00.123456+01:00") == T0
    assert parse_timestamp("2026-03-01T12:00:00.123456Z") == T0
    for empty in (None, "", "none", "None"):
        assert parse_timestamp(empty) is None
    assert format_timestamp(T0) == "2026-03-01T12:00:00.123456+00:00"
    with pytest.raises(ValueError, match="not an ISO 8601"):
        parse_timestamp("yesterday")


@pytest.mark.unit
def test_commit_moves_only_forward():
    from embedding_ops.watermark import commit, committed_watermark, read_watermark

    store = MemoryStore()
    first = commit("faq", "ws", iso(T0), dag_id="d", run_id="r1", store=store)
    assert first["moved"] and first["previous"] is None
    assert committed_watermark("faq", "ws", store) == T0
    older = commit(
        "faq", "ws", iso(T0 - timedelta(seconds=1)), dag_id="d", run_id="r2", store=store
    )
    same = commit("faq", "ws", iso(T0), dag_id="d", run_id="r3", store=store)
    assert not older["moved"] and not same["moved"]
    assert older["watermark"] == iso(T0)
    assert read_watermark("faq", "ws", store)["run_id"] == "r1"
    later = T0 + timedelta(microseconds=1)
    assert commit("faq", "ws", iso(later), dag_id="d", run_id="r4", store=store)["moved"]
    record = read_watermark("faq", "ws", store)
    assert (record["watermark"], record["run_id"], record["dag_id"]) == (iso(later), "r4", "d")
    # Per dataset + workspace: another workspace has its own watermark.
    assert committed_watermark("faq", "", store) is None
    assert list(store.data) == ["embedding_annotations_watermark__ws__faq"]


@pytest.mark.unit
def test_pending_mark_holds_counting_back_until_commit_or_timeout():
    from embedding_ops.watermark import commit, count_since, record_pending

    store = MemoryStore()
    hold = timedelta(hours=2)
    assert count_since("faq", pending_timeout=hold, store=store, now=T0) == (None, None)
    commit("faq", "", iso(T0 - timedelta(days=1)), dag_id="d", run_id="r1", store=store)
    record_pending("faq", "", iso(T0), count=5, run_id="w1", store=store, now=T0)
    # While the triggered run is in flight: count after the pending mark, until it expires.
    since, until = count_since("faq", pending_timeout=hold, store=store, now=T0 + hold / 2)
    assert (since, until) == (T0, T0 + hold)
    # Expired (the run failed or hangs): back to the committed watermark, the batch fires again.
    since, until = count_since("faq", pending_timeout=hold, store=store, now=T0 + hold)
    assert (since, until) == (T0 - timedelta(days=1), None)
    # The run committed at or past the mark: the committed watermark rules.
    commit("faq", "", iso(T0 + timedelta(seconds=5)), dag_id="d", run_id="r2", store=store)
    since, until = count_since("faq", pending_timeout=hold, store=store, now=T0)
    assert (since, until) == (T0 + timedelta(seconds=5), None)
    # A pending mark never moves back.
    record_pending("faq", "", iso(T0 - timedelta(hours=1)), count=1, run_id="w2", store=store)
    assert store.data["embedding_annotations_pending_____faq"]["mark"] == iso(T0)


def _event(dataset, newest, workspace=""):
    return {"extra": {"dataset": dataset, "workspace": workspace, "count": 3, "newest": newest}}


@pytest.mark.unit
def test_commit_for_run_decides_what_the_run_trained_on():
    from airflow.sdk.exceptions import AirflowSkipException
    from embedding_ops.watermark import commit_for_run, committed_watermark

    store = MemoryStore()
    argilla = {"source": "argilla", "argilla_dataset": "faq", "argilla_workspace": ""}
    with pytest.raises(AirflowSkipException, match="source is 'local'"):
        commit_for_run({"source": "local"}, {"x": 1}, [], dag_id="d", run_id="r", store=store)
    with pytest.raises(AirflowSkipException, match="no annotation_watermark"):
        commit_for_run(argilla, {"annotation_watermark": "none"}, [], dag_id="d", run_id="r",
                       store=store)  # fmt: skip
    result = commit_for_run(
        argilla, {"annotation_watermark": iso(T0)}, [], dag_id="d", run_id="r1", store=store
    )
    assert result["moved"] and result["origin"] == "prepare"
    assert committed_watermark("faq", "", store) == T0

    # "Nothing to do" (prepare skipped, no summary): the triggering events' newest for this
    # dataset; events of another dataset or workspace do not count.
    later, much_later = T0 + timedelta(minutes=1), T0 + timedelta(hours=1)
    events = [
        _event("faq", iso(later)),
        _event("other", iso(much_later)),
        _event("faq", iso(much_later), workspace="ws2"),
    ]
    result = commit_for_run(argilla, None, events, dag_id="d", run_id="r2", store=store)
    assert result["moved"] and "nothing to do" in result["origin"]
    assert committed_watermark("faq", "", store) == later
    with pytest.raises(AirflowSkipException, match="no annotation event"):
        commit_for_run(argilla, None, [], dag_id="d", run_id="r3", store=store)
    assert committed_watermark("faq", "", store) == later
    # A "nothing to do" summary that names its watermark (a runner that keeps it) is used as is.
    noop = {"nothing_to_do": True, "annotation_watermark": iso(much_later)}
    result = commit_for_run(argilla, noop, [], dag_id="d", run_id="r4", store=store)
    assert result["origin"] == "prepare (nothing to do)"
    assert committed_watermark("faq", "", store) == much_later


@pytest.mark.unit
def test_annotations_event_records_pending_and_skips_covered_batches():
    from airflow.sdk.exceptions import AirflowSkipException
    from embedding_ops.watermark import annotations_event, commit, read_pending

    store = MemoryStore()
    payload = {"status": "fired", "dataset": "faq", "workspace": "", "count": 4,
               "newest": "2026-03-01T12:00:00.123456", "since": None}  # fmt: skip
    extra = annotations_event(payload, run_id="w1", store=store, now=T0)
    assert extra == {"dataset": "faq", "workspace": "", "count": 4, "newest": iso(T0),
                     "since": None}  # fmt: skip
    pending = read_pending("faq", "", store)
    assert (pending["mark"], pending["run_id"], pending["count"]) == (iso(T0), "w1", 4)
    commit("faq", "", iso(T0), dag_id="d", run_id="r1", store=store)
    with pytest.raises(AirflowSkipException, match="already covers"):
        annotations_event(payload, run_id="w2", store=store)


# --- the retrain DAG's schedule and defaults ------------------------------------------------
def _load(path: Path, monkeypatch=None, **env):
    from airflow.dag_processing.dagbag import DagBag

    if monkeypatch is not None:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
    bag = DagBag(dag_folder=str(path))
    assert bag.import_errors == {}
    return bag


@pytest.mark.dag
def test_retrain_runs_on_cron_or_annotations_asset():
    import pendulum
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable
    from airflow.serialization import decoders, encoders
    from airflow.timetables.base import DataInterval, TimeRestriction
    from embedding_ops.watermark import ANNOTATIONS_ASSET

    dag = _load(ROOT / "dags" / "retrain_embeddings.py").dags["retrain_embeddings"]
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert isinstance(dag.timetable.timetable, CronTriggerTimetable)
    assert dag.timetable.timetable.expression == "0 3 * * *"
    assert str(dag.timetable.timetable.timezone) == "UTC"
    assert dag.timetable.asset_condition == ANNOTATIONS_ASSET
    assert dag.max_active_runs == 1
    # The scheduler's view of it: the next cron run after one on 2026-01-01 03:00 UTC.
    core = decoders.decode_timetable(encoders.encode_timetable(dag.timetable))
    assert core.summary == "Asset or 0 3 * * *"
    last = pendulum.datetime(2026, 1, 1, 3, tz="UTC")
    info = core.next_dagrun_info(
        last_automated_data_interval=DataInterval(last, last),
        restriction=TimeRestriction(earliest=last, latest=None, catchup=True),
    )
    assert info.run_after == pendulum.datetime(2026, 1, 2, 3, tz="UTC")
    # The watcher updates the very asset the retrain DAG is scheduled on.
    watcher = _load(ROOT / "dags" / "watch_annotations.py").dags["watch_annotations"]
    assert watcher.get_task("emit_annotations_event").outlets == [ANNOTATIONS_ASSET]
    assert watcher.max_active_runs == 1
    assert watcher.get_task("wait_for_annotations").retries >= 2


@pytest.mark.dag
def test_asset_runs_train_on_the_watched_dataset(monkeypatch):
    """Asset-triggered runs carry no conf: the DAG's defaults point prepare at the dataset the
    watcher watches (both from EMBED_ARGILLA_DATASET / EMBED_ARGILLA_WORKSPACE)."""
    from tasks.config import config_to_cli_args

    env = {"EMBED_ARGILLA_DATASET": "faq-pairs", "EMBED_ARGILLA_WORKSPACE": "support"}
    dag = _load(ROOT / "dags" / "retrain_embeddings.py", monkeypatch, **env).dags[
        "retrain_embeddings"
    ]
    watcher = _load(ROOT / "dags" / "watch_annotations.py", monkeypatch, **env).dags[
        "watch_annotations"
    ]
    params = {name: dag.params.get_param(name).resolve() for name in dag.params}
    args = config_to_cli_args(params)
    for flag, value in (
        ("--source", "argilla"),
        ("--argilla-dataset", "faq-pairs"),
        ("--argilla-workspace", "support"),
    ):
        assert args[args.index(flag) + 1] == value, args
    assert watcher.params.get_param("dataset").resolve() == "faq-pairs"
    assert watcher.params.get_param("workspace").resolve() == "support"
    # Without the variable the defaults stay as before (local data).
    monkeypatch.delenv("EMBED_ARGILLA_DATASET")
    dag = _load(ROOT / "dags" / "retrain_embeddings.py").dags["retrain_embeddings"]
    assert dag.params.get_param("source").resolve() == "local"


# --- the commit task inside real DAG runs ------------------------------------------------
def _mirror_dag(dag_id: str, *, source: str, prepare: str, train_fails: bool = False, events=None):
    """The retrain DAG's shape with stand-in steps: prepare -> train -> publish (skipped: no Hub
    repo), every step upstream of commit_watermark (the real operator; with ``events`` it sees
    them as the run's triggering annotation events)."""
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
    from airflow.sdk.exceptions import AirflowSkipException
    from embedding_ops.watermark import ANNOTATIONS_ASSET, CommitWatermarkOperator

    class CommitWithEvents(CommitWatermarkOperator):
        def execute(self, context):
            if events is not None:
                context["triggering_asset_events"] = {ANNOTATIONS_ASSET: events}
            return super().execute(context)

    def prepare_step():
        if prepare == "nothing_to_do":
            raise AirflowSkipException("prepare: nothing to do")
        return {"train_pairs": 10, "annotation_watermark": prepare}

    def train_step():
        if train_fails == "skip":
            raise AirflowSkipException("train: skipped")
        if train_fails:
            raise RuntimeError("train failed")
        return {"model": "trained"}

    def publish_step():
        raise AirflowSkipException("publish: no hub_repo_id")

    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        params={"source": source, "argilla_dataset": "faq", "argilla_workspace": ""},
        default_args={"retries": 0},
    ) as dag:
        steps = [
            PythonOperator(task_id="prepare", python_callable=prepare_step),
            PythonOperator(task_id="train", python_callable=train_step),
            PythonOperator(task_id="publish", python_callable=publish_step),
        ]
        steps[0] >> steps[1] >> steps[2]
        steps >> CommitWithEvents(task_id="commit_watermark", required_task_ids=("train",))
    _register(dag)
    return dag


def _register(dag) -> None:
    """Write a DAG defined in this module to the metadata DB (dag.test() looks DAGs up there)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
        session.flush()
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(),
            session=session,
        )  # fmt: skip


def _committed(dataset: str = "faq"):
    from airflow.models.variable import Variable
    from embedding_ops.watermark import WATERMARK_PREFIX, variable_key

    return Variable.get(variable_key(WATERMARK_PREFIX, dataset), None, deserialize_json=True)


def _states(dagrun) -> dict[str, str]:
    return {ti.task_id: str(ti.state).split(".")[-1].lower() for ti in dagrun.get_task_instances()}


@pytest.mark.dag
def test_commit_task_in_dag_runs(airflow_db):
    """A run whose publish was skipped commits (into a real Airflow Variable); a failed run does
    not; a "nothing to do" run started by annotation events commits the events' newest."""
    from airflow.models.variable import Variable
    from embedding_ops.watermark import WATERMARK_PREFIX, variable_key

    Variable.delete(variable_key(WATERMARK_PREFIX, "faq"))
    w1, w2 = iso(T0), iso(T0 + timedelta(hours=1))

    run = _mirror_dag("wm_success", source="argilla", prepare=w1).test()
    states = _states(run)
    assert str(run.state).endswith("success"), states
    assert states["publish"] == "skipped" and states["commit_watermark"] == "success"
    record = _committed()
    assert record["watermark"] == w1 and record["run_id"] == run.run_id

    run = _mirror_dag("wm_failed", source="argilla", prepare=w2, train_fails=True).test()
    states = _states(run)
    assert str(run.state).endswith("failed")
    assert states["train"] == "failed" and states["commit_watermark"] == "upstream_failed"
    assert _committed()["watermark"] == w1  # a failed run commits nothing

    # prepare trained data but the model step was skipped: nothing was registered, no commit.
    run = _mirror_dag("wm_no_model", source="argilla", prepare=w2, train_fails="skip").test()
    states = _states(run)
    assert states["train"] == "skipped" and states["commit_watermark"] == "skipped", states
    assert _committed()["watermark"] == w1

    # "Nothing to do" in a run started by annotation events: the data it would train on is what
    # the model already holds, so the events' newest is committed (else the watcher fires again).
    events = [{"extra": {"dataset": "faq", "workspace": "", "count": 2, "newest": w2}}]
    run = _mirror_dag("wm_noop", source="argilla", prepare="nothing_to_do", events=events).test()
    states = _states(run)
    assert str(run.state).endswith("success"), states
    assert states["prepare"] == "skipped" and states["commit_watermark"] == "success", states
    assert _committed()["watermark"] == w2
