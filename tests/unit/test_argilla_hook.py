"""The Argilla hook: the ``argilla_default`` connection as URL + key, and only for ``prepare``."""

from __future__ import annotations

import json
import logging

import pytest

pytestmark = pytest.mark.unit

KEY = "argilla.hookTestKey0123456789"


def _set_conn(monkeypatch, conn: dict | None, name: str = "ARGILLA_DEFAULT") -> None:
    if conn is None:
        monkeypatch.delenv(f"AIRFLOW_CONN_{name}", raising=False)
    else:
        monkeypatch.setenv(f"AIRFLOW_CONN_{name}", json.dumps(conn))


def test_host_is_the_url_and_password_the_key(monkeypatch, capsys, caplog):
    from embedding_ops.argilla_hook import ArgillaHook

    caplog.set_level(logging.DEBUG)
    _set_conn(
        monkeypatch,
        {"conn_type": "argilla", "host": "http://argilla:6900/", "password": KEY},
    )
    hook = ArgillaHook()
    assert hook.connection_values() == ("http://argilla:6900", KEY)
    assert hook.step_env() == {"ARGILLA_API_URL": "http://argilla:6900", "ARGILLA_API_KEY": KEY}
    captured = capsys.readouterr()
    assert KEY not in captured.out + captured.err + caplog.text


def test_url_from_host_port_schema_and_key_from_extra(monkeypatch):
    from embedding_ops.argilla_hook import ArgillaHook

    _set_conn(
        monkeypatch,
        {
            "conn_type": "argilla",
            "host": "argilla.internal",
            "port": 6900,
            "schema": "https",
            "extra": {"api_key": KEY},
        },
    )
    assert ArgillaHook().connection_values() == ("https://argilla.internal:6900", KEY)
    _set_conn(monkeypatch, {"conn_type": "argilla", "host": "argilla", "password": KEY})
    assert ArgillaHook().connection_values()[0] == "http://argilla"  # default scheme http
    _set_conn(
        monkeypatch,
        {"conn_type": "argilla", "password": KEY, "extra": {"api_url": "http://x:1/"}},
    )
    assert ArgillaHook().connection_values()[0] == "http://x:1"


def test_another_connection_id(monkeypatch):
    from embedding_ops.argilla_hook import ArgillaHook

    _set_conn(monkeypatch, None)
    _set_conn(
        monkeypatch,
        {"conn_type": "argilla", "host": "http://other:6900", "password": KEY},
        name="ARGILLA_OTHER",
    )
    hook = ArgillaHook(argilla_conn_id="argilla_other")
    assert hook.argilla_conn_id == "argilla_other"
    assert hook.step_env()["ARGILLA_API_URL"] == "http://other:6900"


@pytest.mark.parametrize(
    ("conn", "expected"),
    [
        (None, "Airflow connection 'argilla_default' does not exist"),
        ({"conn_type": "argilla", "password": KEY}, "'argilla_default' has no host (URL):"),
        (
            {"conn_type": "argilla", "host": "http://argilla:6900"},
            "'argilla_default' has no password (API key):",
        ),
        (
            {"conn_type": "argilla"},
            "'argilla_default' has no host (URL) and no password (API key):",
        ),
    ],
)
def test_missing_or_incomplete_connection_is_one_clear_line(monkeypatch, conn, expected):
    from embedding_ops.argilla_hook import ArgillaConnectionError, ArgillaHook

    _set_conn(monkeypatch, conn)
    with pytest.raises(ArgillaConnectionError) as err:
        ArgillaHook().connection_values()
    assert expected in str(err.value)
    assert "\n" not in str(err.value)
    assert KEY not in str(err.value)


def test_provider_style_attributes():
    from embedding_ops.argilla_hook import ArgillaHook

    assert ArgillaHook.default_conn_name == "argilla_default"
    assert ArgillaHook.conn_type == "argilla"
    assert ArgillaHook.conn_name_attr == "argilla_conn_id"
    assert ArgillaHook.hook_name == "Argilla"


def test_only_prepare_gets_the_argilla_env(monkeypatch):
    from embedding_ops.step_spec import secret_env

    _set_conn(monkeypatch, {"conn_type": "argilla", "host": "http://argilla:6900", "password": KEY})
    assert secret_env("prepare")["ARGILLA_API_KEY"] == KEY
    for step in ("train", "evaluate", "report", "register", "publish"):
        env = secret_env(step)
        assert "ARGILLA_API_KEY" not in env and "ARGILLA_API_URL" not in env


@pytest.mark.parametrize("conn", [None, {"conn_type": "argilla", "host": "http://argilla:6900"}])
def test_a_missing_or_incomplete_connection_does_not_break_other_runs(monkeypatch, conn):
    from embedding_ops.step_spec import secret_env

    _set_conn(monkeypatch, conn)
    env = secret_env("prepare")
    assert "ARGILLA_API_URL" not in env and "ARGILLA_API_KEY" not in env


def test_the_key_stays_out_of_the_task_log_and_the_xcom(monkeypatch, tmp_path, caplog, capsys):
    """The local runner hands the key to the step's environment only: the step sees it, the task
    log and the returned summary (the XCom) do not."""
    from types import SimpleNamespace

    from embedding_ops.step_operator import LocalStepOperator

    _set_conn(monkeypatch, {"conn_type": "argilla", "host": "http://argilla:6900", "password": KEY})
    # A stand-in for `python -m tasks`: reports whether it got the key, prints a summary line.
    fake = tmp_path / "fake_tasks.py"
    fake.write_text(
        "import json, os, sys\n"
        "print('step running', sys.argv[1])\n"
        "print(json.dumps({'step': sys.argv[1], "
        "'got_key': os.environ.get('ARGILLA_API_KEY') == " + repr(KEY) + "}))\n"
    )
    monkeypatch.setenv("EMBED_TASKS_PYTHON", str(tmp_path / "python"))
    (tmp_path / "python").write_text(f'#!/bin/sh\nshift 2\nexec python3 {fake} "$@"\n')
    (tmp_path / "python").chmod(0o755)
    pushed: list[tuple[str, object]] = []
    ti = SimpleNamespace(
        dag_id="retrain_embeddings",
        run_id="manual__1",
        task_id="prepare",
        try_number=1,
        hostname="cpu-1",
        xcom_push=lambda key, value: pushed.append((key, value)),
    )
    context = {"ti": ti, "params": {"source": "argilla", "argilla_dataset": "pairs"}}
    caplog.set_level(logging.DEBUG)
    op = LocalStepOperator(task_id="prepare", step="prepare")
    summary = op.execute(context)
    assert summary == {"step": "prepare", "got_key": True}
    assert KEY not in json.dumps(summary)
    # prepare's other XCom says which host wrote the run directory, and nothing more
    assert [key for key, _ in pushed] == ["run_dir_writer"] and KEY not in json.dumps(pushed)
    log = caplog.text + "".join(capsys.readouterr())
    assert "step running prepare" in log  # the step's output reached the task log
    assert KEY not in log
