"""The mine step on a tiny model: what it mines from, when it mines, its cache, and what train
makes of it."""

from __future__ import annotations

import json

import pytest
from conftest import make_pairs, write_jsonl

from tasks.config import RunConfig
from tasks.data import prepare
from tasks.io import read_json, read_jsonl
from tasks.mine import candidate_pool, filtered_rows, mine, mining_decision, with_negatives
from tasks.train import row_negatives, train, training_columns, training_rows

pytestmark = pytest.mark.unit


def _config(data, model, **overrides):
    values = dict(
        data_path=str(data),
        base_model=str(model),
        matryoshka_dims=[64, 32],
        best_metric_dim=32,
        batch_size=8,
        epochs=1,
        eval_batch_size=32,
        mining_margin=0.0,
        # the tiny random model ranks few positives high: mine every pair regardless
        mining_max_positive_rank=0,
    )
    values.update(overrides)
    return RunConfig.from_mapping(values)


def _prepared(tmp_path, model, rows=None, **overrides):
    data = write_jsonl(tmp_path / "pairs.jsonl", rows or make_pairs(n_docs=60))
    cfg = _config(data, model, **overrides)
    run_dir = tmp_path / "run"
    prepare(cfg, run_dir)
    return cfg, run_dir


def test_the_decision_follows_the_mode_and_the_datas_own_negatives():
    def cfg(mode):
        return RunConfig(data_path="x", mine_negatives=mode)

    assert mining_decision(cfg("auto"), data_negatives=False)[0] is True
    assert mining_decision(cfg("auto"), data_negatives=True) == (
        False,
        "the data brings its own negatives (mine_negatives=auto keeps them)",
    )
    assert mining_decision(cfg("always"), data_negatives=True)[0] is True
    assert mining_decision(cfg("never"), data_negatives=False)[0] is False


def test_the_pool_is_training_and_extra_documents_never_held_out_ones():
    rows = [{"query": "q1", "document": "a"}, {"query": "q2", "document": "b"}]
    assert candidate_pool(rows, ["c", "held", "a"], held_out={"held", "b"}) == ["a", "c"]
    assert with_negatives([{"query": "q", "document": "d", "negative": "n"}], [["x", "y"]]) == [
        {"query": "q", "document": "d", "negatives": ["x", "y"]}
    ]


def test_mined_negatives_come_from_training_and_corpus_documents_only(tmp_path, tiny_model_dir):
    corpus = write_jsonl(
        tmp_path / "corpus.jsonl", [{"text": f"Extra passage {i} about cron"} for i in range(20)]
    )
    cfg, run_dir = _prepared(tmp_path, tiny_model_dir, num_negatives=2, corpus_path=str(corpus))
    summary = mine(cfg, run_dir)
    assert summary["mined"] is True and summary["negatives"] > 0
    manifest = read_json(run_dir / "negatives" / "manifest.json")
    assert manifest["settings"] == {
        "num_negatives": 2,
        "margin": 0.0,
        "range_min": 0,
        "max_positive_rank": 0,
    }
    assert manifest["counts"]["rows"] == len(read_jsonl(run_dir / "data" / "train.jsonl"))
    held_out = {
        r["document"]
        for name in ("val_pairs.jsonl", "eval_pairs.jsonl")
        for r in read_jsonl(run_dir / "data" / name)
    }
    assert held_out and manifest["held_out_documents_excluded"] == len(held_out)
    rows = read_jsonl(run_dir / "negatives" / "train.jsonl")
    train_docs = {r["document"] for r in rows}
    extra = {f"Extra passage {i} about cron" for i in range(20)}
    mined = {n for r in rows for n in r["negatives"]}
    assert mined and mined <= train_docs | extra and not mined & held_out
    positives: dict[str, set[str]] = {}
    for r in rows:
        positives.setdefault(r["query"], set()).add(r["document"])
    assert all(not set(r["negatives"]) & positives[r["query"]] for r in rows)
    assert all(len(r["negatives"]) <= 2 for r in rows)


def test_a_second_run_on_the_same_data_reads_the_cache(tmp_path, tiny_model_dir, capsys):
    cfg, run_dir = _prepared(tmp_path, tiny_model_dir)
    first = mine(cfg, run_dir)
    assert first["cached"] is False
    assert mine(cfg, run_dir) == first  # the step's output is there: nothing to redo
    other = tmp_path / "other"
    prepare(cfg, other)
    capsys.readouterr()
    again = mine(cfg, other)
    assert again["cached"] is True and "found in the cache" in capsys.readouterr().out
    assert read_jsonl(other / "negatives" / "train.jsonl") == read_jsonl(
        run_dir / "negatives" / "train.jsonl"
    )
    # other settings are another result
    wider = _config(cfg.data_path, tiny_model_dir, num_negatives=3)
    prepare(wider, tmp_path / "third")
    assert mine(wider, tmp_path / "third")["cached"] is False


def test_data_with_negatives_keeps_them_unless_told_otherwise(tmp_path, tiny_model_dir):
    rows = make_pairs(n_docs=60, negatives=True)
    cfg, run_dir = _prepared(tmp_path, tiny_model_dir, rows=rows)
    kept = mine(cfg, run_dir)
    assert kept["mined"] is False and "brings its own negatives" in kept["reason"]
    assert not (run_dir / "negatives" / "train.jsonl").exists()
    replaced_cfg = _config(cfg.data_path, tiny_model_dir, mine_negatives="always")
    replaced = mine(replaced_cfg, run_dir)  # other settings: the step runs again
    assert replaced["mined"] is True
    mined_rows = read_jsonl(run_dir / "negatives" / "train.jsonl")
    assert all("negative" not in r and "negatives" in r for r in mined_rows)
    off = mine(_config(cfg.data_path, tiny_model_dir, mine_negatives="never"), run_dir)
    assert off["mined"] is False and off["reason"] == "mine_negatives=never"


def test_train_runs_the_mine_step_when_it_did_not_run_and_trains_on_every_negative(
    tmp_path, tiny_model_dir, capsys
):
    cfg, run_dir = _prepared(tmp_path, tiny_model_dir, num_negatives=2, wise_ft_points=1)
    summary = train(cfg, run_dir)
    out = capsys.readouterr().out
    assert "the mine step has not run for these settings; running it first" in out
    assert summary["negatives"] == {"source": "mined with the base model", "per_pair": 2}
    assert summary["hard_negatives"] is True
    assert json.loads((run_dir / "negatives" / "manifest.json").read_text())["used"] is True


def test_training_columns_give_every_row_as_many_negatives():
    rows = [
        {"query": "q1", "document": "d1", "negatives": ["d2", "d3"]},
        {"query": "q2", "document": "d2", "negatives": ["d1"]},
        {"query": "q3", "document": "d3", "negatives": []},
    ]
    columns = training_columns(rows, seed=0)
    assert list(columns) == ["anchor", "positive", "negative_1", "negative_2"]
    assert columns["negative_1"][:2] == ["d2", "d1"] and columns["negative_2"][0] == "d3"
    for i, row in enumerate(rows):
        picked = [columns["negative_1"][i], columns["negative_2"][i]]
        assert row["document"] not in picked and len(set(picked)) == 2
    assert list(training_columns([{"query": "q", "document": "d", "negative": "n"}], 0)) == [
        "anchor",
        "positive",
        "negative",
    ]
    assert list(training_columns([{"query": "q", "document": "d"}], 0)) == ["anchor", "positive"]
    assert row_negatives({"query": "q", "document": "d", "negative": "n"}) == ["n"]


def test_a_pool_where_nothing_passes_the_filters_trains_without_mined_negatives(
    tmp_path, tiny_model_dir
):
    """A margin no document can pass (the ceiling falls below every score) mines nothing: the
    run goes on without mined negatives and the manifest says why, rather than failing."""
    cfg, run_dir = _prepared(tmp_path, tiny_model_dir, mining_margin=1.0)
    summary = mine(cfg, run_dir)
    assert summary["mined"] is False
    assert "no document of the pool" in summary["reason"] and "mining_margin" in summary["reason"]
    _, negatives = training_rows(cfg, run_dir)
    assert negatives == {"source": "none", "per_pair": 0}


def test_the_cache_matches_picks_to_rows_in_their_order(tmp_path, tiny_model_dir):
    """The same pairs in another order are other rows at each position: no cache hit, so no row
    gets another row's negatives (which could be its own positive)."""
    rows = make_pairs(n_docs=60)
    cfg, run_dir = _prepared(tmp_path, tiny_model_dir, rows=rows)
    assert mine(cfg, run_dir)["cached"] is False
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    data = write_jsonl(shuffled / "pairs.jsonl", list(reversed(rows)))
    other = _config(data, tiny_model_dir)
    prepare(other, shuffled / "run")
    assert mine(other, shuffled / "run")["cached"] is False
    for row in read_jsonl(shuffled / "run" / "negatives" / "train.jsonl"):
        assert row["document"] not in row["negatives"]


def test_filtered_rows_keep_a_negative_only_below_the_positive_less_the_margin():
    rows = [{"query": f"q{i}", "document": f"d{i}", "negative": f"n{i}"} for i in range(4)]
    positive = [0.80, 0.80, 0.80, -0.20]
    negative = [0.70, 0.78, 0.85, -0.25]  # kept; within 5% of .80; above it; below -0.21
    filtered, stats = filtered_rows(rows, positive, negative, margin=0.05)
    assert [r["negatives"] for r in filtered] == [["n0"], [], [], ["n3"]]
    assert all(
        r["query"] == o["query"] and r["document"] == o["document"] for r, o in zip(filtered, rows)
    )
    assert stats["rows"] == 4 and stats["negatives"] == 2 and stats["rejected_by_margin"] == 2
    assert stats["mean_negative_score"] == 0.225 and stats["mean_rejected_score"] == 0.815
    # a tie is a copy of the positive, even with no margin
    assert filtered_rows(rows[:1], [0.5], [0.5], margin=0.0)[0][0]["negatives"] == []


def test_filtering_the_datas_own_negatives_drops_copies_of_the_positive(
    tmp_path, tiny_model_dir, capsys
):
    """With filter_data_negatives the step scores the data's negatives with the base model: a
    negative that is the positive with one more character scores like it and is dropped; every
    decision is the mining rule applied to the base model's scores; train takes the rows, a
    dropped negative replaced by a random training document."""
    from sentence_transformers import SentenceTransformer

    rows = make_pairs(n_docs=60, negatives=True)
    for row in rows[::3]:
        row["negative"] = row["document"] + "!"
    cfg, run_dir = _prepared(
        tmp_path, tiny_model_dir, rows=rows, filter_data_negatives=True, mining_margin=0.01
    )
    summary = mine(cfg, run_dir)
    assert summary["filtered"] is True and summary["mined"] is False
    manifest = read_json(run_dir / "negatives" / "manifest.json")
    assert "filter_data_negatives" in manifest["reason"]
    prepared_rows = read_jsonl(run_dir / "data" / "train.jsonl")
    filtered = read_jsonl(run_dir / "negatives" / "train.jsonl")
    assert len(filtered) == len(prepared_rows)
    model = SentenceTransformer(str(tiny_model_dir))
    for before, after in zip(prepared_rows, filtered):
        q, d, n = model.encode(
            [before["query"], before["document"], before["negative"]], normalize_embeddings=True
        )
        keep = float(q @ n) <= float(q @ d) * 0.99
        if abs(float(q @ n) - float(q @ d) * 0.99) > 1e-4:  # clear of rounding at the ceiling
            assert after["negatives"] == ([before["negative"]] if keep else [])
        if before["negative"] == before["document"] + "!":
            assert after["negatives"] == []
    counts = manifest["counts"]
    assert counts["rejected_by_margin"] == sum(1 for r in filtered if not r["negatives"])
    assert counts["rejected_by_margin"] >= len(
        [r for r in prepared_rows if r["negative"].endswith("!")]
    )
    assert "kept" in capsys.readouterr().out
    # a second run of the same data reads the scores from the cache
    again = tmp_path / "again"
    prepare(cfg, again)
    assert mine(cfg, again)["cached"] is True
    assert read_jsonl(again / "negatives" / "train.jsonl") == filtered
    used, negatives = training_rows(cfg, run_dir)
    assert negatives == {"source": "the data's own, filtered with the base model", "per_pair": 1}
    columns = training_columns(used, cfg.seed)
    for i, row in enumerate(used):
        assert columns["negative"][i] != row["document"]
        if row["negatives"]:
            assert columns["negative"][i] == row["negatives"][0]
    # without the setting the data's negatives are used as they are
    plain = mine(_config(cfg.data_path, tiny_model_dir, mining_margin=0.01), run_dir)
    assert plain["filtered"] is False and plain["mined"] is False
    # a margin no negative passes: the run trains on the pairs alone, and says why
    strict = _config(cfg.data_path, tiny_model_dir, filter_data_negatives=True, mining_margin=1.0)
    none_kept = mine(strict, run_dir)
    assert none_kept["filtered"] is True and "training on the pairs alone" in none_kept["reason"]
    assert training_rows(strict, run_dir)[1] == {"source": "none", "per_pair": 0}
