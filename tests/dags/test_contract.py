"""The step contract as the runners see it: summary line and exit-code mapping."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.dag


def test_summary_is_the_last_json_object_line():
    from embedding_ops.contract import parse_summary

    lines = ["train: step 1/2", '{"not": "last"}', "progress...", '{"step": "train", "n": 3}', ""]
    assert parse_summary(lines) == {"step": "train", "n": 3}
    assert parse_summary(["no summary", "{broken"]) is None


def test_exit_codes_map_to_airflow_outcomes():
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSkipException,
    )
    from embedding_ops.contract import raise_for_exit_code

    raise_for_exit_code("train", 0, None, {"step": "train"})  # done: no exception
    with pytest.raises(AirflowSkipException, match="no new data"):
        raise_for_exit_code("prepare", 99, None, {"reason": "no new data"})
    with pytest.raises(AirflowFailException, match="error: column 'query' not found"):
        raise_for_exit_code("prepare", 3, "error: column 'query' not found", None)
    with pytest.raises(AirflowException, match="exit 1") as info:
        raise_for_exit_code("train", 1, "error: out of memory", None)
    assert not isinstance(info.value, (AirflowFailException, AirflowSkipException))


def test_step_command_is_the_same_for_every_runner():
    from embedding_ops.contract import step_command

    assert step_command("python", "evaluate", "/runs/d/r", ["--model", "base"]) == [
        "python",
        "-m",
        "tasks",
        "evaluate",
        "--run-dir",
        "/runs/d/r",
        "--model",
        "base",
    ]
