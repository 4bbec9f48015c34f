"""The prepare step: loaders, column mapping, cleaning, the stable split, manifest, CLI errors."""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from pathlib import Path

import pytest
from conftest import DEMO_MODEL, last_json, make_pairs, run_cli, tiny_options, write_jsonl

from tasks.columns import PRESETS, ColumnMapping, resolve_columns
from tasks.config import COLUMN_PRESETS, RunConfig
from tasks.data import assign_split, build_retrieval_set, clean_pairs, prepare
from tasks.io import InvalidInputError, StepError, read_json, read_jsonl, write_json
from tasks.sources import load_source
from tasks.sources.huggingface import load_huggingface
from tasks.sources.local import load_local, read_file

pytestmark = pytest.mark.unit

ROWS = [
    {"query": "what is a dag", "document": "A DAG is a graph of tasks."},
    {"query": "how to retry", "document": "Set retries on the task."},
]


def _cfg(data_path, **overrides) -> RunConfig:
    return RunConfig.from_mapping(
        {"data_path": str(data_path), "base_model": DEMO_MODEL, "batch_size": 4, **overrides}
    )


def _split_pairs(run_dir: Path) -> dict[str, set[tuple[str, str]]]:
    """The (query, document) pairs of each split, read back from prepare's outputs."""
    data = run_dir / "data"
    out = {"train": {(r["query"], r["document"]) for r in read_jsonl(data / "train.jsonl")}}
    for name in ("val", "eval"):
        out[name] = {(r["query"], r["document"]) for r in read_jsonl(data / f"{name}_pairs.jsonl")}
    return out


def _docs(pairs: set[tuple[str, str]]) -> set[str]:
    return {d for _, d in pairs}


def _queries(pairs: set[tuple[str, str]]) -> set[str]:
    return {q for q, _ in pairs}


# --- loaders -----------------------------------------------------------------------------------
def test_read_jsonl_skips_blank_lines(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps(ROWS[0]) + "\n\n   \n" + json.dumps(ROWS[1]) + "\n", encoding="utf-8"
    )
    assert list(read_file(path)) == ROWS


def test_read_json_list(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(ROWS), encoding="utf-8")
    assert list(read_file(path)) == ROWS


def test_read_json_object_with_one_list_inside(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"version": 2, "name": "x", "data": ROWS}), encoding="utf-8")
    assert list(read_file(path)) == ROWS


def test_read_json_columnar_object(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps(
            {"query": [r["query"] for r in ROWS], "document": [r["document"] for r in ROWS]}
        ),
        encoding="utf-8",
    )
    assert list(read_file(path)) == ROWS


@pytest.mark.parametrize("payload", ['"just a string"', "[1, 2]", '{"a": 1}'])
def test_read_json_that_is_not_a_list_of_objects_is_invalid(tmp_path, payload):
    path = tmp_path / "p.json"
    path.write_text(payload, encoding="utf-8")
    with pytest.raises(InvalidInputError, match="expected a JSON list of objects"):
        list(read_file(path))


def test_read_csv_with_quoted_commas_and_newlines(tmp_path):
    path = tmp_path / "p.csv"
    rows = [{"query": "a, b?", "document": "line one\nline two"}, *ROWS]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["query", "document"])
        writer.writeheader()
        writer.writerows(rows)
    assert list(read_file(path)) == rows


def test_read_parquet_written_with_pyarrow(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "p.parquet"
    table = pa.table(
        {"query": ["q1", "q2", None], "document": ["d1", "d2", "d3"], "score": [1, 2, 3]}
    )
    pq.write_table(table, path)
    assert list(read_file(path)) == [
        {"query": "q1", "document": "d1", "score": 1},
        {"query": "q2", "document": "d2", "score": 2},
        {"query": None, "document": "d3", "score": 3},
    ]


def test_unreadable_parquet_is_invalid_input(tmp_path):
    path = tmp_path / "p.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(InvalidInputError, match="not a readable parquet file"):
        list(read_file(path))


def test_unsupported_file_type_is_invalid_input(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("hello", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"unsupported file type \.txt"):
        list(read_file(path))


def test_load_local_folder_of_mixed_files(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "data"
    write_jsonl(
        folder / "a.jsonl",
        [{"query": "qa1", "document": "da1"}, {"query": "qa2", "document": "da2"}],
    )
    (folder / "b.json").write_text(
        json.dumps({"rows": [{"query": "qb", "document": "db"}]}), encoding="utf-8"
    )
    (folder / "sub").mkdir()
    (folder / "sub" / "c.csv").write_text("query,document\nqc,dc\n", encoding="utf-8")
    pq.write_table(pa.table({"query": ["qd"], "document": ["dd"]}), folder / "sub" / "d.parquet")
    (folder / "notes.txt").write_text("ignored", encoding="utf-8")
    write_jsonl(folder / ".hidden.jsonl", [{"query": "hidden", "document": "hidden"}])

    records, info = load_local(folder)
    assert sorted(r["query"] for r in records) == ["qa1", "qa2", "qb", "qc", "qd"]
    assert info["type"] == "local"
    assert info["path"] == str(folder.resolve())
    assert {Path(f).name: n for f, n in info["files"].items()} == {
        "a.jsonl": 2,
        "b.json": 1,
        "c.csv": 1,
        "d.parquet": 1,
    }


def test_load_local_folder_without_data_files(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("x", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="holds no"):
        load_local(tmp_path / "empty")


def test_utf8_bom_is_ignored(tmp_path):
    """Excel and Notepad write a BOM; it must not end up in the first column name."""
    csv_path = tmp_path / "p.csv"
    csv_path.write_bytes(b"\xef\xbb\xbfquery,document\nq,d\n")
    assert list(read_file(csv_path)) == [{"query": "q", "document": "d"}]
    jsonl_path = tmp_path / "p.jsonl"
    jsonl_path.write_bytes(b"\xef\xbb\xbf" + json.dumps(ROWS[0]).encode() + b"\n")
    assert list(read_file(jsonl_path)) == [ROWS[0]]


def test_truncated_utf8_at_end_of_file_is_invalid_input(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(json.dumps(ROWS[0]).encode() + b'\n{"query": "caf\xc3')
    with pytest.raises(InvalidInputError, match="not UTF-8"):
        list(read_file(path))


def test_non_utf8_offset_is_exact_across_read_blocks(tmp_path):
    path = tmp_path / "p.jsonl"
    # a 2-byte character split by the 1 MiB block boundary, then a bad byte
    data = b"x" * ((1 << 20) - 1) + "é".encode() + b"\xff"
    path.write_bytes(data)
    with pytest.raises(InvalidInputError, match=f"byte 0xff at offset {len(data) - 1}"):
        list(read_file(path))


@pytest.mark.parametrize(
    ("body", "line", "fields"),
    [
        # an unquoted comma: the passage would lose everything after it
        ("query,document\nq1,d1\nq2,first half, second half\n", 3, 3),
        ("query,document\nq1,d1\nq2\n", 3, 1),
    ],
)
def test_a_csv_row_whose_field_count_differs_from_the_header_is_invalid(
    tmp_path, body, line, fields
):
    path = tmp_path / "p.csv"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(InvalidInputError) as err:
        load_local(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line} has {fields} fields where the header has 2")
    assert "quote fields that contain commas" in message and "\n" not in message


def test_numbers_used_as_text_are_counted_in_the_manifest(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = make_pairs(40)
    path = tmp_path / "p.parquet"
    table = {"query": [r["query"] for r in rows], "document": [r["document"] for r in rows]}
    pq.write_table(pa.table(table), path)
    extra = tmp_path / "ids.jsonl"
    write_jsonl(extra, [{"query": "which item has id 7", "document": 7}])
    folder = tmp_path / "data"
    folder.mkdir()
    path.rename(folder / "p.parquet")
    extra.rename(folder / "ids.jsonl")
    prepare(_cfg(folder), tmp_path / "run")
    manifest = read_json(tmp_path / "run" / "data" / "manifest.json")
    assert manifest["converted_to_text"] == {"document": 1}
    assert manifest["counts"]["pairs"] == 81
    mapping = ColumnMapping("query", "document", None, "auto")
    pairs, dropped = clean_pairs([{"query": 1, "document": "d"}], mapping)
    assert pairs == [{"query": "1", "document": "d"}] and not dropped


# --- column mapping ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        ({"query", "document"}, ("query", "document", None, "auto")),
        ({"query", "document", "negative", "id"}, ("query", "document", "negative", "auto")),
        ({"query", "positive"}, ("query", "positive", None, "auto")),
        ({"question", "context", "id"}, ("question", "context", None, "auto")),
        ({"question", "answer"}, ("question", "answer", None, "auto")),
        ({"anchor", "positive", "negative"}, ("anchor", "positive", "negative", "auto")),
        # ZenML distilabel: anchor is the documentation chunk, positive the question.
        (
            {"anchor", "positive", "negative", "distilabel_metadata", "url", "id"},
            ("positive", "anchor", None, "zenml_distilabel"),
        ),
    ],
)
def test_auto_column_detection(columns, expected):
    mapping = resolve_columns(columns, _cfg("x"))
    assert (mapping.query, mapping.document, mapping.negative, mapping.preset) == expected


def test_the_config_offers_every_preset_the_mapping_knows():
    assert COLUMN_PRESETS == ("auto", *PRESETS)


def test_explicit_presets():
    st = resolve_columns(
        {"anchor", "positive", "negative"}, _cfg("x", column_preset="sentence_transformers")
    )
    assert (st.query, st.document, st.negative) == ("anchor", "positive", "negative")
    zen = resolve_columns(
        {"anchor", "positive", "negative"}, _cfg("x", column_preset="zenml_distilabel")
    )
    assert (zen.query, zen.document, zen.negative) == ("positive", "anchor", None)
    with pytest.raises(InvalidInputError, match="columns: anchor, positive"):
        resolve_columns({"anchor", "positive"}, _cfg("x", column_preset="query_document"))


def test_explicit_column_overrides():
    m = resolve_columns(
        {"q", "passage", "hard", "extra"},
        _cfg("x", query_column="q", document_column="passage", negative_column="hard"),
    )
    assert (m.query, m.document, m.negative) == ("q", "passage", "hard")
    # An override of one column keeps the preset's other columns.
    m = resolve_columns(
        {"anchor", "positive", "title"},
        _cfg("x", column_preset="sentence_transformers", document_column="title"),
    )
    assert (m.query, m.document) == ("anchor", "title")
    # The ZenML interpretation can be overridden.
    m = resolve_columns(
        {"anchor", "positive", "distilabel_metadata"},
        _cfg("x", query_column="anchor", document_column="positive"),
    )
    assert (m.query, m.document) == ("anchor", "positive")


def test_bad_column_overrides():
    with pytest.raises(InvalidInputError, match="negative_column 'hn' not found.*document, query"):
        resolve_columns({"query", "document"}, _cfg("x", negative_column="hn"))
    with pytest.raises(InvalidInputError, match="both map to column 'query'"):
        resolve_columns({"query", "document"}, _cfg("x", document_column="query"))
    with pytest.raises(InvalidInputError, match="'question' not found.*columns: document, query"):
        resolve_columns({"query", "document"}, _cfg("x", query_column="question"))


def test_zenml_distilabel_rows_map_anchor_to_document(tmp_path):
    chunks = sorted({r["document"] for r in make_pairs(40)})
    rows = [
        {
            "anchor": chunk,
            "positive": f"How do I use feature {i}?",
            "negative": f"What is the weather like on day {i}?",
            "distilabel_metadata": {"statistics_generate": {"input_tokens": 10}},
            "url": f"https://docs.zenml.io/page-{i}",
            "id": i,
        }
        for i, chunk in enumerate(chunks)
    ]
    path = write_jsonl(tmp_path / "zenml.jsonl", rows)
    prepare(_cfg(path), tmp_path / "run")
    manifest = read_json(tmp_path / "run" / "data" / "manifest.json")
    assert manifest["columns"] == {
        "query": "positive",
        "document": "anchor",
        "negative": None,
        "preset": "zenml_distilabel",
    }
    splits = _split_pairs(tmp_path / "run")
    questions = {r["positive"] for r in rows}
    every = set().union(*splits.values())
    assert _docs(every) <= set(chunks) and _queries(every) <= questions
    assert len(every) == len(rows)
    assert not any("negative" in r for r in read_jsonl(tmp_path / "run" / "data" / "train.jsonl"))


# --- cleaning --------------------------------------------------------------------------------
def test_clean_pairs_strips_and_counts_drops():
    records = [
        {"query": "  what is x  ", "document": "\tX is a thing.\n"},
        {"query": "what is x", "document": "X is a thing."},  # duplicate once stripped
        {"query": "   ", "document": "doc"},
        {"query": "q2", "document": ""},
        {"query": "q3", "document": None},
        {"query": "q4"},
        {"query": ["a", "list"], "document": "d"},
        {"query": "q5", "document": {"a": 1}},
        {"query": True, "document": "d"},
        {"query": 42, "document": " answer doc "},
        {"query": "q6", "document": "d6", "negative": " d6 "},  # negative == document
        {"query": "q7", "document": "d7", "negative": " n7 "},
        {"query": "q8", "document": "d8", "negative": "   "},
    ]
    pairs, dropped = clean_pairs(records, ColumnMapping("query", "document", "negative", "auto"))
    assert pairs == [
        {"query": "what is x", "document": "X is a thing."},
        {"query": "42", "document": "answer doc"},
        {"query": "q6", "document": "d6"},
        {"query": "q7", "document": "d7", "negative": "n7"},
        {"query": "q8", "document": "d8"},
    ]
    assert dropped == Counter(duplicate_pair=1, empty_query=1, empty_document=3, non_text_value=3)


def test_same_query_with_two_documents_is_not_a_duplicate():
    records = [
        {"query": "q", "document": "d1"},
        {"query": "q", "document": "d2"},
        {"query": "q", "document": "d1 "},
    ]
    pairs, dropped = clean_pairs(records, ColumnMapping("query", "document", None, "auto"))
    assert [p["document"] for p in pairs] == ["d1", "d2"]
    assert dropped == Counter(duplicate_pair=1)


# --- split -----------------------------------------------------------------------------------
def test_split_is_stable_when_data_grows(tmp_path):
    small, large = make_pairs(40), make_pairs(120)
    assert all(row in large for row in small)  # make_pairs is a prefix-stable generator
    prepare(_cfg(write_jsonl(tmp_path / "small.jsonl", small)), tmp_path / "a")
    prepare(_cfg(write_jsonl(tmp_path / "large.jsonl", large)), tmp_path / "b")
    before, after = _split_pairs(tmp_path / "a"), _split_pairs(tmp_path / "b")
    assert all(before.values()), "every split should be used"
    for name in ("train", "val", "eval"):
        assert before[name] <= after[name], name  # nothing moved to another split
        assert len(after[name]) > len(before[name])
    assert sum(map(len, after.values())) == len(large)


def test_split_depends_only_on_the_document_text():
    doc = "Section 3 on docker: container image gpu."
    assert {assign_split(doc, 0.2, 0.1) for _ in range(3)} == {assign_split(doc, 0.2, 0.1)}
    docs = [f"document number {i}" for i in range(2000)]
    counts = Counter(assign_split(d, 0.2, 0.1) for d in docs)
    assert 0.16 < counts["eval"] / 2000 < 0.24 and 0.07 < counts["val"] / 2000 < 0.13
    # Growing eval_fraction only moves documents into eval, never out of it.
    assert all(
        assign_split(d, 0.3, 0.1) == "eval" for d in docs if assign_split(d, 0.2, 0.1) == "eval"
    )


def test_no_document_in_two_splits_and_no_query_in_train_and_eval(tmp_path):
    rows = make_pairs(64)
    # A query shared by every document of a topic: some of its documents land in eval.
    for doc in sorted({r["document"] for r in rows}):
        topic = doc.split(" on ", 1)[1].split(":", 1)[0]
        rows.append({"query": f"overview of {topic}", "document": doc})
    prepare(_cfg(write_jsonl(tmp_path / "p.jsonl", rows)), tmp_path / "run")
    splits = _split_pairs(tmp_path / "run")
    docs = {name: _docs(pairs) for name, pairs in splits.items()}
    assert not docs["train"] & docs["val"]
    assert not docs["train"] & docs["eval"]
    assert not docs["val"] & docs["eval"]
    queries = {name: _queries(pairs) for name, pairs in splits.items()}
    assert not queries["train"] & queries["eval"]
    assert not queries["val"] & queries["eval"]
    assert any(q.startswith("overview of") for q in queries["eval"])
    manifest = read_json(tmp_path / "run" / "data" / "manifest.json")
    dropped = manifest["dropped"]["query_in_eval_set"]
    assert dropped > 0
    dropped += manifest["dropped"].get("query_in_val_set", 0)
    assert sum(map(len, splits.values())) + dropped == len(rows)


def test_eval_path_pairs_are_all_in_eval_and_overlapping_source_pairs_dropped(tmp_path):
    rows = make_pairs(40)
    shared_doc = rows[20]["document"]  # two source pairs use it
    shared_query = rows[10]["query"]  # one source pair uses it
    eval_rows = [
        {"query": "new question about a shared doc", "document": shared_doc},
        {"query": shared_query, "document": "A brand new document on the same question."},
        *(
            {"query": f"held-out question {i}", "document": f"Held-out document {i}."}
            for i in range(3)
        ),
    ]
    source = write_jsonl(tmp_path / "p.jsonl", rows)
    eval_file = write_jsonl(tmp_path / "eval.jsonl", eval_rows)
    prepare(_cfg(source, eval_path=str(eval_file)), tmp_path / "run")
    splits = _split_pairs(tmp_path / "run")
    assert splits["eval"] == {(r["query"], r["document"]) for r in eval_rows}
    used = splits["train"] | splits["val"]
    assert shared_doc not in _docs(used)
    assert shared_query not in _queries(used)
    assert (rows[11]["query"], rows[11]["document"]) in used  # same doc as rows[10], other query
    assert len(used) == len(rows) - 3
    manifest = read_json(tmp_path / "run" / "data" / "manifest.json")
    assert manifest["dropped"] == {"document_in_eval_set": 2, "query_in_eval_set": 1}
    assert manifest["eval_path"] == str(eval_file)
    assert manifest["split"]["eval_fraction"] == 0.0
    assert manifest["counts"]["eval_pairs"] == 5


def test_eval_corpus_all_vs_eval(tmp_path):
    rows = make_pairs(40)
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    extra = write_jsonl(
        tmp_path / "corpus.jsonl",
        [{"text": f"Distractor {i}.", "title": "t"} for i in range(3)] + [{"text": "   "}],
    )
    prepare(_cfg(path), tmp_path / "all")
    prepare(_cfg(path, eval_corpus="eval", corpus_path=str(extra)), tmp_path / "eval")
    all_docs = {r["document"] for r in rows}
    corpus_all = set(read_json(tmp_path / "all" / "data" / "eval.json")["corpus"].values())
    assert corpus_all == all_docs
    eval_docs = _docs(_split_pairs(tmp_path / "eval")["eval"])
    corpus_eval = set(read_json(tmp_path / "eval" / "data" / "eval.json")["corpus"].values())
    assert corpus_eval == eval_docs | {"Distractor 0.", "Distractor 1.", "Distractor 2."}
    assert len(eval_docs) < len(all_docs)
    manifest = read_json(tmp_path / "eval" / "data" / "manifest.json")
    assert manifest["counts"]["eval_corpus"] == len(corpus_eval)


# --- negatives -------------------------------------------------------------------------------
def _negatives_run(tmp_path, rows, name, **overrides):
    prepare(_cfg(write_jsonl(tmp_path / f"{name}.jsonl", rows), **overrides), tmp_path / name)
    train = read_jsonl(tmp_path / name / "data" / "train.jsonl")
    return read_json(tmp_path / name / "data" / "manifest.json")["negatives"], train


def test_negatives_never_leak_held_out_documents_and_fill_the_minority(tmp_path):
    rows = make_pairs(40, negatives=True)  # negative = the next document, often a held-out one
    held_out = {r["document"] for r in rows if assign_split(r["document"], 0.2, 0.1) != "train"}
    negatives, train = _negatives_run(tmp_path, rows, "full")
    assert negatives["used"] is True
    assert negatives["removed_held_out_negatives"] > 0
    assert negatives["train_rows_with_negative"] + negatives["removed_held_out_negatives"] == len(
        train
    )
    assert negatives["filled_with_random_train_document"] == negatives["removed_held_out_negatives"]
    train_docs = {r["document"] for r in train}
    assert all(r["negative"] not in held_out for r in train)
    assert all(r["negative"] in train_docs or r["negative"] for r in train)
    assert all(r["negative"] != r["document"] for r in train)
    # deterministic
    again, train2 = _negatives_run(tmp_path, rows, "full-again")
    assert train2 == train


def test_negatives_dropped_when_most_rows_lack_one(tmp_path):
    rows = make_pairs(40, negatives=True)
    sparse = [
        {k: v for k, v in r.items() if not (k == "negative" and i % 4)} for i, r in enumerate(rows)
    ]
    negatives, train = _negatives_run(tmp_path, sparse, "sparse")
    assert negatives["used"] is False
    assert not any("negative" in r for r in train)

    negatives, train = _negatives_run(tmp_path, rows, "off", use_negatives=False)
    assert negatives["used"] is False
    assert not any("negative" in r for r in train)


# --- manifest, fingerprints, idempotency ------------------------------------------------------
def test_manifest_counts_and_dropped_reasons(tmp_path):
    rows = make_pairs(40)
    dirty = [
        dict(rows[0]),
        {"query": "  ", "document": "x"},
        {"query": "q", "document": ""},
        {"query": "q", "document": ["x"]},
    ]
    path = write_jsonl(tmp_path / "p.jsonl", rows + dirty)
    summary = prepare(_cfg(path), tmp_path / "run")
    data = tmp_path / "run" / "data"
    manifest = read_json(data / "manifest.json")
    counts = manifest["counts"]
    assert counts["records"] == 84 and counts["pairs"] == 80
    assert manifest["dropped"] == {
        "duplicate_pair": 1,
        "empty_query": 1,
        "empty_document": 1,
        "non_text_value": 1,
    }
    train = read_jsonl(data / "train.jsonl")
    eval_set, val_set = read_json(data / "eval.json"), read_json(data / "val.json")
    assert counts["train_pairs"] == len(train)
    assert counts["train_documents"] == len({r["document"] for r in train})
    assert counts["eval_queries"] == len(eval_set["queries"])
    assert counts["val_queries"] == len(val_set["queries"])
    assert counts["eval_corpus"] == len(eval_set["corpus"]) == 40
    assert counts["train_pairs"] + counts["val_pairs"] + counts["eval_pairs"] == 80
    assert manifest["columns"] == {
        "query": "query",
        "document": "document",
        "negative": None,
        "preset": "auto",
    }
    assert manifest["source"]["type"] == "local"
    assert manifest["source"]["files"] == {str(path.resolve()): 84}
    assert manifest["base_model"]["dimension"] == 384
    assert manifest["split"]["eval_fraction"] == 0.2
    assert summary == {
        "step": "prepare",
        "manifest": str(data / "manifest.json"),
        "train_pairs": counts["train_pairs"],
        "eval_queries": counts["eval_queries"],
        "eval_corpus": 40,
        "data_fingerprint": manifest["fingerprints"]["data"],
        "eval_fingerprint": manifest["fingerprints"]["eval"],
        "run_fingerprint": manifest["fingerprints"]["run"],
    }
    # Retrieval-set ids are consistent: every relevant doc id is in the corpus.
    for cids in eval_set["relevant_docs"].values():
        assert set(cids) <= set(eval_set["corpus"])


def test_fingerprints_are_stable_and_change_with_the_data(tmp_path):
    rows = make_pairs(40)
    first = write_jsonl(tmp_path / "first.jsonl", rows)
    shuffled = write_jsonl(tmp_path / "shuffled.jsonl", rows[::-1])
    changed_rows = [dict(r) for r in rows]
    changed_rows[5]["document"] += " (edited)"
    changed = write_jsonl(tmp_path / "changed.jsonl", changed_rows)

    def fingerprints(path, name):
        prepare(_cfg(path), tmp_path / name)
        return read_json(tmp_path / name / "data" / "manifest.json")["fingerprints"]

    fp1 = fingerprints(first, "r1")
    assert fingerprints(first, "r2") == fp1
    assert fingerprints(shuffled, "r3") == fp1  # row order does not matter
    fp4 = fingerprints(changed, "r4")
    assert fp4["data"] != fp1["data"]
    assert fp4["train"] != fp1["train"] or fp4["eval"] != fp1["eval"]


def test_prepare_is_idempotent_and_reruns_on_a_changed_config(tmp_path, capsys):
    path = write_jsonl(tmp_path / "p.jsonl", make_pairs(40))
    run = tmp_path / "run"
    first = prepare(_cfg(path), run)
    manifest_path = run / "data" / "manifest.json"
    old = 1_000_000_000_000_000_000
    os.utime(manifest_path, ns=(old, old))
    capsys.readouterr()

    second = prepare(_cfg(path), run)  # an equal, separately built config
    assert second == first
    assert manifest_path.stat().st_mtime_ns == old
    assert "already complete" in capsys.readouterr().out

    key = read_json(manifest_path)["config_key"]
    third = prepare(_cfg(path, eval_corpus="eval"), run)
    assert manifest_path.stat().st_mtime_ns != old
    assert read_json(manifest_path)["config_key"] != key
    assert third["eval_corpus"] < first["eval_corpus"]


# --- sources -----------------------------------------------------------------------------------
@pytest.fixture
def hf_offline(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets-cache")


def test_huggingface_source_loads_a_local_dataset_folder(tmp_path, hf_offline):
    folder = tmp_path / "hf-dataset"
    rows = make_pairs(40)
    write_jsonl(folder / "train.jsonl", rows)
    cfg = RunConfig.from_mapping(
        {
            "source": "huggingface",
            "hf_dataset": str(folder),
            "hf_split": "train",
            "base_model": DEMO_MODEL,
            "batch_size": 4,
        }
    )
    records, info = load_source(cfg)
    assert records == rows
    assert info["type"] == "huggingface" and info["dataset"] == str(folder)
    assert info["split"] == "train" and info["fingerprint"]
    summary = prepare(cfg, tmp_path / "run")
    manifest = read_json(tmp_path / "run" / "data" / "manifest.json")
    assert manifest["source"]["type"] == "huggingface"
    assert manifest["counts"]["pairs"] == len(rows)
    assert summary["train_pairs"] > 0


def test_huggingface_unknown_split_is_invalid_input(tmp_path, hf_offline):
    folder = tmp_path / "hf-dataset"
    write_jsonl(folder / "train.jsonl", ROWS)
    with pytest.raises(InvalidInputError, match="validation"):
        load_huggingface(str(folder), split="validation")


def test_huggingface_unknown_dataset_id_fails_cleanly(hf_offline):
    with pytest.raises((InvalidInputError, StepError), match="no-such-org/no-such-dataset"):
        load_huggingface("no-such-org/no-such-dataset-4f1c", split="train")


def test_unknown_source_in_an_unvalidated_config():
    with pytest.raises(InvalidInputError, match="unknown source 's3'"):
        load_source(RunConfig(source="s3"))


def test_empty_eval_split_is_invalid_input(tmp_path):
    rows = [r for r in make_pairs(40) if assign_split(r["document"], 0.2, 0.1) != "eval"]
    with pytest.raises(InvalidInputError, match="the eval split is empty"):
        prepare(_cfg(write_jsonl(tmp_path / "p.jsonl", rows)), tmp_path / "run")


# --- the CLI on bad input ------------------------------------------------------------------------
def _prepare_cli(tmp_path, model_dir, data_path, *extra):
    run = tmp_path / "run"
    return run, run_cli(
        "prepare",
        "--run-dir",
        str(run),
        "--data-path",
        str(data_path),
        "--base-model",
        str(model_dir),
        "--matryoshka-dims",
        "64,32,16",
        "--best-metric-dim",
        "32",
        "--batch-size",
        "4",
        *extra,
    )


def _cli_error(tmp_path, model_dir, data_path, *extra) -> str:
    """Run prepare; assert exit 3 with one ``error:`` line and no manifest; return the line."""
    run, (code, out, err) = _prepare_cli(tmp_path, model_dir, data_path, *extra)
    assert code == 3, (code, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert not (run / "data" / "manifest.json").exists()
    return lines[0]


def test_cli_prepare_succeeds_on_good_input(tmp_path, tiny_model_dir, pairs_file):
    run, (code, out, err) = _prepare_cli(tmp_path, tiny_model_dir, pairs_file)
    assert code == 0, err
    summary = last_json(out)
    assert summary["step"] == "prepare" and summary["train_pairs"] >= 4
    assert read_json(run / "config.json")["matryoshka_dims"] == [64, 32, 16]


def test_cli_missing_columns(tmp_path, tiny_model_dir):
    path = write_jsonl(tmp_path / "p.jsonl", [{"text": "a", "label": "b"}] * 3)
    message = _cli_error(tmp_path, tiny_model_dir, path)
    assert "'query', 'document' not found" in message
    assert "columns: label, text" in message


def test_cli_misnamed_query_column(tmp_path, tiny_model_dir, pairs_file):
    message = _cli_error(tmp_path, tiny_model_dir, pairs_file, "--query-column", "question")
    assert "'question' not found" in message
    assert "columns: document, query" in message


def test_cli_empty_file(tmp_path, tiny_model_dir):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"")
    message = _cli_error(tmp_path, tiny_model_dir, path)
    assert "is empty" in message and "p.jsonl" in message


def test_cli_all_strings_empty(tmp_path, tiny_model_dir):
    path = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"query": "  ", "document": "\t"},
            {"query": "", "document": " "},
            {"query": "q", "document": "   "},
        ],
    )
    message = _cli_error(tmp_path, tiny_model_dir, path)
    assert "no usable pairs" in message
    assert "empty_query=2" in message and "empty_document=1" in message


def test_cli_fewer_training_pairs_than_batch_size(tmp_path, tiny_model_dir):
    source = write_jsonl(tmp_path / "p.jsonl", make_pairs(3, queries_per_doc=1))
    eval_file = write_jsonl(tmp_path / "eval.jsonl", [{"query": "held out", "document": "Held."}])
    message = _cli_error(tmp_path, tiny_model_dir, source, "--eval-path", str(eval_file))
    assert "training pairs" in message and "batch_size=4" in message


def test_cli_non_utf8_jsonl(tmp_path, tiny_model_dir):
    path = tmp_path / "p.jsonl"
    path.write_bytes(json.dumps(ROWS[0]).encode() + b'\n{"query": "caf\xe9", "document": "d"}\n')
    message = _cli_error(tmp_path, tiny_model_dir, path)
    assert "not UTF-8" in message and "0xe9" in message and "p.jsonl" in message


def test_cli_dim_larger_than_the_model(tmp_path, tiny_model_dir, pairs_file):
    message = _cli_error(
        tmp_path,
        tiny_model_dir,
        pairs_file,
        "--matryoshka-dims",
        "128,64",
        "--best-metric-dim",
        "64",
    )
    assert "[128]" in message and "dimension 64" in message


def test_cli_unknown_source(tmp_path, tiny_model_dir, pairs_file):
    message = _cli_error(tmp_path, tiny_model_dir, pairs_file, "--source", "s3")
    assert "source='s3' is not one of local, huggingface" in message


def test_cli_data_path_does_not_exist(tmp_path, tiny_model_dir):
    message = _cli_error(tmp_path, tiny_model_dir, tmp_path / "nowhere.jsonl")
    assert "nowhere.jsonl does not exist" in message


def test_cli_malformed_json_line(tmp_path, tiny_model_dir):
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps(ROWS[0]) + "\n" + json.dumps(ROWS[1]) + "\n" + '{"query": "x", "document": }\n',
        encoding="utf-8",
    )
    message = _cli_error(tmp_path, tiny_model_dir, path)
    assert "p.jsonl:3 is not valid JSON" in message


# --- nothing to do when nothing changed --------------------------------------------------------
def test_unchanged_inputs_since_last_success_is_nothing_to_do(tmp_path, monkeypatch):
    from tasks.io import NothingToDo, last_success_file

    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "retrain_embeddings")
    path = write_jsonl(tmp_path / "p.jsonl", make_pairs(40))
    first = prepare(_cfg(path), tmp_path / "run1")
    write_json(
        last_success_file("retrain_embeddings"),
        {"run_fingerprint": first["run_fingerprint"], "airflow_run_id": "run1"},
    )
    with pytest.raises(NothingToDo) as info:
        prepare(_cfg(path), tmp_path / "run2")
    assert "unchanged since successful run run1" in info.value.summary["reason"]
    # a retry of that prepare says the same
    with pytest.raises(NothingToDo):
        prepare(_cfg(path), tmp_path / "run2")
    # force trains anyway; new data or a changed setting is work to do
    assert (
        prepare(_cfg(path, force=True), tmp_path / "run3")["run_fingerprint"]
        == (first["run_fingerprint"])
    )
    assert (
        prepare(_cfg(path, epochs=5), tmp_path / "run4")["run_fingerprint"]
        != (first["run_fingerprint"])
    )
    write_jsonl(path, make_pairs(41))
    assert prepare(_cfg(path), tmp_path / "run5")["run_fingerprint"] != first["run_fingerprint"]


def test_nothing_to_do_exits_99_with_a_summary(tmp_path, tiny_model_dir, monkeypatch):
    from tasks.io import last_success_file

    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "retrain_embeddings")
    path = write_jsonl(tmp_path / "p.jsonl", make_pairs(40))
    options = tiny_options(path, tiny_model_dir)
    code, out, err = run_cli("prepare", "--run-dir", str(tmp_path / "a"), *options)
    assert code == 0, err
    write_json(
        last_success_file("retrain_embeddings"),
        {"run_fingerprint": last_json(out)["run_fingerprint"], "airflow_run_id": "a"},
    )
    code, out, err = run_cli("prepare", "--run-dir", str(tmp_path / "b"), *options)
    assert code == 99, err
    assert last_json(out)["nothing_to_do"] is True


# --- relevance, downstream invalidation, parameter-named errors --------------------------------
def test_matches_in_other_splits_count_as_relevant():
    rset = build_retrieval_set(
        [{"query": "q", "document": "A"}], ["A", "B", "C"], {"q": {"A", "B", "Z"}}
    )
    (qid,) = rset["queries"]
    relevant = {rset["corpus"][cid] for cid in rset["relevant_docs"][qid]}
    assert relevant == {"A", "B"}  # Z is not in the corpus, C is not a match


def test_val_queries_are_not_trained_on(tmp_path):
    rows = make_pairs(60, queries_per_doc=1)
    # the same query paired with a training document and a validation document
    train_doc = next(
        r["document"] for r in rows if assign_split(r["document"], 0.2, 0.1) == "train"
    )
    val_doc = next(r["document"] for r in rows if assign_split(r["document"], 0.2, 0.1) == "val")
    rows += [
        {"query": "shared question", "document": train_doc},
        {"query": "shared question", "document": val_doc},
    ]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    prepare(_cfg(path), tmp_path / "run")
    data = tmp_path / "run" / "data"
    assert all(r["query"] != "shared question" for r in read_jsonl(data / "train.jsonl"))
    manifest = read_json(data / "manifest.json")
    assert manifest["dropped"]["query_in_val_set"] == 1
    val = read_json(data / "val.json")
    (qid,) = [q for q, text in val["queries"].items() if text == "shared question"]
    assert {val["corpus"][c] for c in val["relevant_docs"][qid]} == {train_doc, val_doc}


def test_new_data_voids_later_steps_outputs(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", make_pairs(40))
    run_dir = tmp_path / "run"
    prepare(_cfg(path), run_dir)
    stale = run_dir / "eval" / "base.json"
    write_json(stale, {"stale": True})
    prepare(_cfg(path), run_dir)  # same config: nothing redone, nothing removed
    assert stale.exists()
    prepare(_cfg(path, eval_fraction=0.3), run_dir)
    assert not stale.exists()


def test_missing_eval_and_corpus_paths_name_their_parameter(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", make_pairs(40))
    with pytest.raises(InvalidInputError, match="^eval_path .* does not exist"):
        prepare(_cfg(path, eval_path=str(tmp_path / "nope.jsonl")), tmp_path / "r1")
    with pytest.raises(InvalidInputError, match="^corpus_path .* does not exist"):
        prepare(_cfg(path, corpus_path=str(tmp_path / "nope.jsonl")), tmp_path / "r2")


def test_long_csv_fields_load(tmp_path):
    path = tmp_path / "long.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["query", "document"])
        writer.writerow(["q", "x" * 200_000])
    assert len(list(read_file(path))[0]["document"]) == 200_000


def test_validation_corpus_keeps_the_val_documents_and_samples_the_rest():
    from tasks.data import validation_corpus

    docs = [f"doc {i}" for i in range(50)]
    val = [{"query": "q1", "document": "doc 7"}, {"query": "q2", "document": "doc 31"}]
    assert validation_corpus(val, docs, size=0) == docs  # 0 = every document
    assert validation_corpus(val, docs, size=50) == docs
    small = validation_corpus(val, docs, size=10, seed=3)
    assert len(small) == len(set(small)) == 10
    assert small[:2] == ["doc 31", "doc 7"] and set(small) <= set(docs)
    assert small == validation_corpus(val, list(reversed(docs)), size=10, seed=3)  # seeded
    assert small != validation_corpus(val, docs, size=10, seed=4)
    assert validation_corpus(val, docs, size=1) == ["doc 31", "doc 7"]  # never fewer


def test_prepare_caps_the_validation_corpus_but_never_the_eval_corpus(tmp_path):
    data = write_jsonl(tmp_path / "p.jsonl", make_pairs(120))
    prepare(_cfg(data, val_corpus_size=30), tmp_path / "run")
    out = tmp_path / "run" / "data"
    counts = read_json(out / "manifest.json")["counts"]
    val, evaluation = read_json(out / "val.json"), read_json(out / "eval.json")
    val_docs = {d for _, d in _split_pairs(tmp_path / "run")["val"]}
    assert counts["val_corpus"] == len(val["corpus"]) == 30 < counts["eval_corpus"] == 120
    assert val_docs <= set(val["corpus"].values())
    assert all(val["relevant_docs"][q] for q in val["queries"])  # every val query can hit
    assert len(evaluation["corpus"]) == 120
    prepare(_cfg(data), tmp_path / "full")  # the default 2000 keeps all 120 here
    assert read_json(tmp_path / "full" / "data" / "manifest.json")["counts"]["val_corpus"] == 120
