"""The Argilla source without a server: mapping, response statuses, annotators, edits, snapshot.

Records are the JSON the server's record listing returns (``include=responses``); the services
tier (tests/services/test_argilla_source_e2e.py) runs the same code against a real server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tasks.config import RunConfig
from tasks.io import InvalidInputError
from tasks.sources.argilla import (
    AnnotationExport,
    DatasetSchema,
    connection_from_env,
    map_columns,
    parse_time,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)
ALICE, BOB = "user-alice", "user-bob"
SCHEMA = DatasetSchema(
    fields={"document": "text", "generated_query": "text", "image": "image"},
    questions={"query": "text", "hard_negative": "text", "quality": "rating"},
    metadata={"source_url": "terms"},
)


def _cfg(**values) -> RunConfig:
    return RunConfig.from_mapping({"source": "argilla", "argilla_dataset": "pairs", **values})


def _response(user: str, status: str, minutes: float, **answers) -> dict:
    when = (T0 + timedelta(minutes=minutes)).replace(tzinfo=None).isoformat()
    return {
        "id": f"resp-{user}-{minutes}",
        "user_id": user,
        "status": status,
        "values": {name: {"value": value} for name, value in answers.items()} or None,
        "inserted_at": when,
        "updated_at": when,
    }


def _record(rid: str, document: str, *responses: dict, **metadata) -> dict:
    return {
        "id": rid,
        "fields": {"document": document, "generated_query": f"generated for {rid}"},
        "metadata": metadata,
        "responses": list(responses),
        "inserted_at": T0.replace(tzinfo=None).isoformat(),
    }


COLUMNS = {"query": "question", "document": "field"}


def _export(records, columns=COLUMNS, cutoff=None) -> AnnotationExport:
    export = AnnotationExport(dict(columns), cutoff=cutoff)
    for record in records:
        export.add(record)
    return export


# --- mapping ---------------------------------------------------------------------------------
def test_auto_preset_maps_a_question_and_a_field():
    mapping, columns = map_columns(SCHEMA, _cfg(), "Argilla dataset ws/pairs")
    assert (mapping.query, mapping.document, mapping.negative) == ("query", "document", None)
    assert columns == {"query": "question", "document": "field"}


def test_columns_may_name_fields_questions_or_metadata():
    cfg = _cfg(
        query_column="generated_query",
        document_column="source_url",
        negative_column="hard_negative",
    )
    mapping, columns = map_columns(SCHEMA, cfg, "ws/pairs")
    assert mapping.negative == "hard_negative"
    assert columns == {
        "generated_query": "field",
        "source_url": "metadata",
        "hard_negative": "question",
    }


def test_a_schema_that_does_not_fit_names_what_exists_and_what_to_set():
    schema = DatasetSchema(
        fields={"text": "text"}, questions={"label": "label_selection"}, metadata={}
    )
    with pytest.raises(InvalidInputError) as err:
        map_columns(schema, _cfg(), "Argilla dataset ws/pairs")
    message = str(err.value)
    assert "\n" not in message
    assert "'query', 'document' not found in Argilla dataset ws/pairs" in message
    assert "fields: text; questions: label (label_selection); metadata: (none)" in message
    assert "query_column / document_column" in message


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ({"query_column": "quality"}, "query maps to rating question 'quality'"),
        ({"document_column": "image"}, "document maps to image field 'image'"),
    ],
)
def test_columns_that_hold_no_text_are_refused(setting, expected):
    with pytest.raises(InvalidInputError, match=expected):
        map_columns(SCHEMA, _cfg(**setting), "ws/pairs")


# --- statuses ----------------------------------------------------------------------------------
def test_only_submitted_responses_become_pairs_and_skips_are_counted_by_reason():
    records = [
        _record("r1", "doc one", _response(ALICE, "submitted", 1, query="q one")),
        _record("r2", "doc two", _response(ALICE, "draft", 2, query="draft query")),
        _record("r3", "doc three", _response(ALICE, "discarded", 3)),
        _record("r4", "doc four"),
        _record(
            "r5",
            "doc five",
            _response(ALICE, "draft", 4, query="draft five"),
            _response(BOB, "discarded", 5),
        ),
    ]
    export = _export(records)
    assert export.rows == [{"query": "q one", "document": "doc one"}]
    info = export.info()
    assert info["counts"]["records"] == 5
    assert info["counts"]["records_with_submitted"] == 1
    assert info["counts"]["pairs"] == 1
    assert info["skipped"] == {"discarded": 2, "draft_only": 1, "no_response": 1}
    assert info["responses"] == {"discarded": 2, "draft": 2, "submitted": 1}
    # Draft and discarded responses never move the watermark.
    assert info["watermark"] == (T0 + timedelta(minutes=1)).isoformat()


def test_two_annotators_give_one_pair_per_distinct_answer():
    records = [
        _record(
            "r1",
            "doc one",
            _response(ALICE, "submitted", 1, query="how do I reset it"),
            _response(BOB, "submitted", 2, query="reset procedure"),
        ),
        _record(
            "r2",
            "doc two",
            _response(ALICE, "submitted", 3, query="same words"),
            _response(BOB, "submitted", 4, query="same words"),
        ),
    ]
    export = _export(records)
    assert export.rows == [
        {"query": "how do I reset it", "document": "doc one"},
        {"query": "reset procedure", "document": "doc one"},
        {"query": "same words", "document": "doc two"},
    ]
    assert export.counts["same_answer_as_other_annotator"] == 1
    assert export.counts["submitted_responses"] == 4


def test_mapping_only_fields_collapses_annotators_to_one_pair():
    record = _record(
        "r1",
        "doc one",
        _response(ALICE, "submitted", 1, query="a"),
        _response(BOB, "submitted", 2, query="b"),
    )
    export = _export([record], columns={"generated_query": "field", "document": "field"})
    assert export.rows == [{"generated_query": "generated for r1", "document": "doc one"}]


def test_a_discard_does_not_veto_another_annotators_submission():
    record = _record(
        "r1",
        "doc one",
        _response(ALICE, "discarded", 1),
        _response(BOB, "submitted", 2, query="bob's query"),
    )
    export = _export([record])
    assert export.rows == [{"query": "bob's query", "document": "doc one"}]
    assert export.counts["records_with_discard_and_submit"] == 1
    assert export.info()["skipped"] == {}


def test_metadata_and_an_unanswered_optional_question():
    record = _record(
        "r1",
        "doc one",
        _response(ALICE, "submitted", 1, query="q"),  # hard_negative left empty
        source_url="https://example.org/doc-one",
    )
    columns = {"query": "question", "source_url": "metadata", "hard_negative": "question"}
    export = _export([record], columns=columns)
    assert export.rows == [
        {"query": "q", "source_url": "https://example.org/doc-one", "hard_negative": None}
    ]


# --- edits, watermark, fingerprint ----------------------------------------------------------
def test_an_edited_response_counts_with_its_latest_value_and_time():
    before = _record("r1", "doc one", _response(ALICE, "submitted", 1, query="first wording"))
    edited = _record("r1", "doc one", _response(ALICE, "submitted", 90, query="second wording"))
    first, second = _export([before]), _export([edited])
    assert second.rows == [{"query": "second wording", "document": "doc one"}]
    assert second.info()["watermark"] == (T0 + timedelta(minutes=90)).isoformat()
    assert first.fingerprint != second.fingerprint


def test_a_response_moved_back_to_draft_no_longer_counts():
    other = _record("r2", "doc two", _response(BOB, "submitted", 5, query="kept"))
    submitted = _record("r1", "doc one", _response(ALICE, "submitted", 10, query="q"))
    drafted = _record("r1", "doc one", _response(ALICE, "draft", 20, query="q"))
    before, after = _export([submitted, other]), _export([drafted, other])
    assert after.rows == [{"query": "kept", "document": "doc two"}]
    assert after.info()["watermark"] == (T0 + timedelta(minutes=5)).isoformat()
    assert before.fingerprint != after.fingerprint


def test_fingerprint_ignores_order_and_discards_and_follows_submissions():
    r1 = _record("r1", "d1", _response(ALICE, "submitted", 1, query="a"))
    r2 = _record("r2", "d2", _response(BOB, "submitted", 2, query="b"))
    r2_discarded_too = _record(
        "r2",
        "d2",
        _response(BOB, "submitted", 2, query="b"),
        _response(ALICE, "discarded", 7),
    )
    assert _export([r1, r2]).fingerprint == _export([r2, r1]).fingerprint
    assert _export([r1, r2]).fingerprint == _export([r1, r2_discarded_too]).fingerprint
    assert _export([r1, r2]).fingerprint != _export([r1]).fingerprint


def test_responses_after_the_snapshot_are_left_for_the_next_run():
    cutoff = T0 + timedelta(minutes=30)
    records = [
        _record("r1", "d1", _response(ALICE, "submitted", 10, query="early")),
        _record(
            "r2",
            "d2",
            _response(ALICE, "submitted", 20, query="early two"),
            _response(BOB, "submitted", 40, query="late two"),
        ),
        _record("r3", "d3", _response(BOB, "submitted", 30, query="at the cutoff")),
    ]
    export = _export(records, cutoff=cutoff)
    assert [r["query"] for r in export.rows] == ["early", "early two"]
    info = export.info()
    assert info["watermark"] == (T0 + timedelta(minutes=20)).isoformat()
    assert info["snapshot_at"] == cutoff.isoformat()
    assert info["counts"]["responses_after_snapshot"] == 2
    assert info["skipped"] == {"submitted_after_snapshot": 1}


def test_a_record_listed_again_on_the_next_page_is_read_once():
    first = _record("r1", "d1", _response(ALICE, "submitted", 1, query="a"))
    second = _record("r2", "d2", _response(ALICE, "submitted", 2, query="b"))
    export = AnnotationExport(dict(COLUMNS))
    export.new_page()
    export.add(first)
    export.add(second)
    export.new_page()
    export.add(second)  # the page boundary moved: r2 again
    assert [r["query"] for r in export.rows] == ["a", "b"]
    assert export.counts["records"] == 2 and export.counts["listed_twice"] == 1


def test_timestamps_are_utc():
    assert parse_time("2026-11-01T12:00:00") == T0
    assert parse_time("2026-11-01T13:00:00+01:00") == T0
    assert parse_time("2026-11-01T12:00:00Z") == T0


def test_a_run_without_url_or_key_says_which_connection_to_set(monkeypatch):
    monkeypatch.delenv("ARGILLA_API_URL", raising=False)
    monkeypatch.setenv("ARGILLA_API_KEY", "argilla.secret.key")
    with pytest.raises(InvalidInputError) as err:
        connection_from_env()
    assert "ARGILLA_API_URL is not set" in str(err.value)
    assert "argilla_default" in str(err.value)
    assert "argilla.secret.key" not in str(err.value)


# --- the CLI shorthand -------------------------------------------------------------------------
def test_argilla_shorthand_sets_source_and_dataset(tmp_path):
    from tasks.cli import _resolve_config, build_parser

    args = build_parser().parse_args(["prepare", "--run-dir", str(tmp_path), "--argilla", "pairs"])
    cfg = _resolve_config(args, tmp_path, "prepare")
    assert (cfg.source, cfg.argilla_dataset) == ("argilla", "pairs")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--source", "local"], "--argilla pairs conflicts with --source local"),
        (["--argilla-dataset", "other"], "--argilla pairs conflicts with --argilla-dataset other"),
    ],
)
def test_argilla_shorthand_conflicts_are_invalid_input(tmp_path, capsys, extra, expected):
    from tasks.cli import main
    from tasks.io import EXIT_INVALID_INPUT

    argv = ["prepare", "--run-dir", str(tmp_path), "--argilla", "pairs", *extra]
    assert main(argv, exit=lambda code: code) == EXIT_INVALID_INPUT
    assert expected in capsys.readouterr().err


# --- prepare with the Argilla source (export stubbed: no server here) ---------------------------
def _stub_export(monkeypatch, rows, watermark, annotations_fp):
    import tasks.sources.argilla as source

    def fake_load(cfg, **_):
        return [dict(r) for r in rows], {
            "type": "argilla",
            "dataset": "ws/pairs",
            "watermark": watermark,
            "annotations_fingerprint": annotations_fp,
            "counts": {"records": len(rows)},
        }

    monkeypatch.setattr(source, "load_argilla", fake_load)


def test_prepare_records_the_watermark_and_skips_when_nothing_changed(tmp_path, monkeypatch):
    from conftest import DEMO_MODEL, make_pairs

    from tasks.data import prepare
    from tasks.io import NothingToDo, last_success_file, read_json, write_json

    rows = make_pairs(40)
    cfg = _cfg(base_model=DEMO_MODEL, batch_size=4)
    runs = tmp_path / "runs" / "retrain_argilla"
    _stub_export(monkeypatch, rows, "2026-11-01T12:00:00+00:00", "aaaa")
    first = prepare(cfg, runs / "r1")
    manifest = read_json(runs / "r1" / "data" / "manifest.json")
    assert first["annotation_watermark"] == manifest["watermark"] == "2026-11-01T12:00:00+00:00"
    assert manifest["source"]["type"] == "argilla"
    write_json(
        last_success_file("retrain_argilla"),
        {"run_fingerprint": first["run_fingerprint"], "airflow_run_id": "r1"},
    )
    with pytest.raises(NothingToDo) as done:
        prepare(cfg, runs / "r2")
    assert done.value.summary["annotation_watermark"] == "2026-11-01T12:00:00+00:00"
    # Same pairs, but a submitted annotation changed (e.g. re-submitted): new data fingerprint.
    _stub_export(monkeypatch, rows, "2026-11-02T08:00:00+00:00", "bbbb")
    third = prepare(cfg, runs / "r3")
    assert third["data_fingerprint"] != first["data_fingerprint"]
    assert third["annotation_watermark"] == "2026-11-02T08:00:00+00:00"
