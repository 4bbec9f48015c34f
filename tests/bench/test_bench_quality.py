"""The quality benchmark: its small form end to end on a tiny model (so it cannot rot), its data
sets (BEIR folders, the provider-shift split), its arms, figures, targets and merging."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.bench


def test_quality_benchmark_small(tmp_path, tiny_model_dir):
    from bench.quality import main

    out = tmp_path / "quality.json"
    extra = {"epochs": 1, "matryoshka_dims": [64, 32], "best_metric_dim": 32}
    result = main(
        [
            "--small",
            "--model",
            str(tiny_model_dir),
            "--arms",
            "ours,ours-pairs-no-mining,notebook-1",
            "--extra",
            json.dumps(extra),
            "--work",
            str(tmp_path / "work"),
            "--out",
            str(out),
        ]
    )
    demo = result["datasets"]["demo"]
    assert set(demo["runs"]) == {"ours", "ours-pairs-no-mining", "notebook-1"}
    for runs in demo["runs"].values():
        (run,) = runs
        assert set(run["metrics"]) == {"ndcg@10", "recall@10"}
        assert set(run["metrics"]["ndcg@10"]) == {"64", "32"}
        assert all(0.0 <= v <= 1.0 for v in run["metrics"]["recall@10"].values())
        assert run["seconds"]["train"] > 0
    assert demo["runs"]["notebook-1"][0]["train"]["negatives"]["per_pair"] == 0
    assert json.loads(out.read_text())["arms"]["notebook-1"]["use_negatives"] is False


def test_the_arms_are_ours_its_ablations_and_the_anchors():
    from bench.quality import ANCHOR_ARMS, PIECES, arms
    from tasks.config import RunConfig

    all_arms = arms()
    assert list(all_arms)[0] == "ours" and all_arms["ours"] == {}
    defaults = RunConfig().to_dict()
    for piece, off in PIECES.items():
        on = any(defaults[k] != v for k, v in off.items())
        assert (f"ours-no-{piece}" in all_arms) == (on and piece != "mining"), piece
    # mining on the pairs alone, with and without it
    assert all_arms["ours-pairs"] == {"use_negatives": False}
    assert all_arms["ours-pairs-no-mining"] == {"use_negatives": False, **PIECES["mining"]}
    for name, settings in ANCHOR_ARMS.items():
        assert name in all_arms
        # a hand-written recipe has none of our pieces, whatever the defaults are; it keeps the
        # best validation checkpoint (load_best_model_at_end) or, a notebook, the last one
        for off in PIECES.values():
            assert all(
                settings[k] in ("best", "last") if k == "keep_checkpoint" else settings[k] == v
                for k, v in off.items()
            ), name
    assert ANCHOR_ARMS["notebook-4"]["keep_checkpoint"] == "last"
    assert (
        ANCHOR_ARMS["phil-4"]["keep_checkpoint"] == ANCHOR_ARMS["seed"]["keep_checkpoint"] == "best"
    )
    assert ANCHOR_ARMS["phil-4"]["gradient_accumulation_steps"] == 16
    assert (
        ANCHOR_ARMS["notebook-4"]["epochs"] == 4 and ANCHOR_ARMS["notebook-4"]["batch_size"] == 32
    )


def test_a_beir_folder_becomes_pairs_and_a_single_split_is_held_out_by_prepare(tmp_path):
    from bench.quality_data import resolve
    from tasks.io import read_jsonl, write_jsonl

    beir = tmp_path / "beir"
    write_jsonl(
        beir / "corpus.jsonl", [{"_id": f"d{i}", "title": "", "text": f"doc {i}"} for i in range(4)]
    )
    write_jsonl(beir / "queries.jsonl", [{"_id": f"q{i}", "text": f"query {i}"} for i in range(4)])
    (beir / "qrels").mkdir()
    (beir / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq0\td0\t1\nq1\td1\t1\nq2\td3\t0\nq3\tmissing\t1\n"
    )
    ds = resolve(str(beir), tmp_path / "work")
    assert ds.eval == "" and ds.settings == {"eval_fraction": 0.3}
    assert ds.corpus.endswith("corpus.jsonl")
    assert read_jsonl(ds.train) == [
        {"query": "query 0", "positive": "doc 0"},
        {"query": "query 1", "positive": "doc 1"},
    ]
    (beir / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq2\td2\t1\n")
    both = resolve(str(beir), tmp_path / "work2")
    assert read_jsonl(both.train) == [{"query": "query 2", "positive": "doc 2"}]
    assert both.eval.endswith("pairs_test.jsonl") and both.settings == {}
    small = resolve(str(beir), tmp_path / "work3", max_train_pairs=1)
    assert len(read_jsonl(small.train)) == 1


def test_the_provider_shift_trains_on_one_hub_and_evaluates_on_the_other(tmp_path, monkeypatch):
    import bench.quality_data as qd
    from tasks.io import read_jsonl, write_jsonl

    shared = tmp_path / "shared"
    folder = shared / "gorilla_apibench"

    def pair(i, hub):
        return {"query": f"q{i}", "positive": f"p{i}", "positive_ids": [f"{hub}-{i:04d}"]}

    write_jsonl(folder / "pairs_train.jsonl", [pair(0, "torchhub"), pair(1, "huggingface")])
    write_jsonl(folder / "pairs_test.jsonl", [pair(2, "torchhub"), pair(3, "huggingface")])
    write_jsonl(folder / "corpus.jsonl", [{"_id": "x", "text": "t"}])
    monkeypatch.setattr(qd, "SHARED", shared)
    ds = qd.resolve("gorilla-shift", tmp_path / "work")
    assert [r["query"] for r in read_jsonl(ds.train)] == ["q0", "q2"]
    assert [r["query"] for r in read_jsonl(ds.eval)] == ["q1", "q3"]
    assert qd.available(["gorilla-shift", "zenml"]) == ["gorilla-shift"]


def _run(ndcg: dict[str, float], train_s: float) -> dict:
    return {
        "metrics": {"ndcg@10": ndcg, "recall@10": {d: v + 0.1 for d, v in ndcg.items()}},
        "seconds": {"prepare": 1.0, "mine": 1.0, "train": train_s - 1.0, "evaluate": 1.0},
        "train": {},
    }


def _result(seed: int, ours: float) -> dict:
    return {
        "model": "m",
        "arms": {"ours": {}, "phil-4": {}, "notebook-4": {}},
        "extra": {},
        "max_train_pairs": 0,
        "seeds": [seed],
        "datasets": {
            "set": {
                "base": {"ndcg@10": {"64": 0.2, "32": 0.1}, "recall@10": {"64": 0.3, "32": 0.2}},
                "runs": {
                    "ours": [_run({"64": ours, "32": ours - 0.05}, 30.0)],
                    "phil-4": [_run({"64": 0.25, "32": 0.15}, 40.0)],
                    "notebook-4": [_run({"64": 0.27, "32": 0.14}, 40.0)],
                },
            }
        },
        "machine": {"device_name": "cpu", "torch": "x", "sentence_transformers": "y", "date": "d"},
    }


def test_targets_compare_ours_with_the_best_anchor_at_every_dim_the_base_and_phils_time():
    from bench.quality_table import summarize, targets_line

    summary = summarize(_result(42, 0.30))["set"]
    t = summary["targets"]
    assert t["lead_over_best_anchor"] == pytest.approx({"64": 0.03, "32": 0.10})
    assert t["beats_best_anchor_by_margin"] is True
    assert t["no_dim_below_base"] is True
    assert t["smallest_dim_beats_base_at_largest"] is True  # 0.25 at 32 >= 0.2 at 64
    assert t["train_time_vs_phil_4"] == pytest.approx(30.0 / 40.0)
    line = targets_line(summary)
    assert "64: +0.030, 32: +0.100" in line and "train time 0.75x" in line
    weak = summarize(_result(42, 0.28))["set"]["targets"]
    assert weak["beats_best_anchor_by_margin"] is False  # +0.01 at 64
    assert summary["seconds"]["ours"] == {"train": 30.0, "run": 32.0}


def test_merge_combines_the_seeds_of_separate_runs(tmp_path):
    from bench.quality import LABELS, merge
    from bench.quality_table import markdown, summarize

    paths = []
    for seed, ours in ((42, 0.30), (43, 0.34)):
        path = tmp_path / f"q{seed}.json"
        path.write_text(json.dumps(_result(seed, ours)))
        paths.append(str(path))
    result = merge(paths)
    assert result["seeds"] == [42, 43]
    ours = summarize(result)["set"]["metrics"]["ours"]["ndcg@10"]["64"]
    assert ours == pytest.approx({"mean": 0.32, "spread": 0.04, "n": 2})
    assert "| ours (defaults) | 0.3200 ± 0.0200 (+0.120)" in markdown(result, LABELS)
    with pytest.raises(SystemExit, match="repeat"):
        merge([paths[0], paths[0]])
    # a later seed may run fewer arms; an arm's settings must not differ
    fewer = _result(44, 0.36)
    del fewer["arms"]["phil-4"], fewer["datasets"]["set"]["runs"]["phil-4"]
    (tmp_path / "fewer.json").write_text(json.dumps(fewer))
    three = summarize(merge([*paths, str(tmp_path / "fewer.json")]))["set"]["metrics"]
    assert three["ours"]["ndcg@10"]["64"]["n"] == 3 and three["phil-4"]["ndcg@10"]["64"]["n"] == 2
    changed = _result(44, 0.3)
    changed["arms"]["ours"] = {"epochs": 9}
    (tmp_path / "changed.json").write_text(json.dumps(changed))
    with pytest.raises(SystemExit, match="in arm ours"):
        merge([paths[0], str(tmp_path / "changed.json")])
    other = _result(44, 0.3) | {"model": "another"}
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="differs .* in model"):
        merge([paths[0], str(tmp_path / "other.json")])


def test_update_docs_replaces_only_its_own_block(tmp_path):
    from bench.common import update_docs

    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nintro\n\n<!-- bench:x -->\nold\n<!-- /bench:x -->\n\nafter\n")
    update_docs("x", "| new |", docs)
    text = docs.read_text()
    assert "| new |" in text and "old" not in text and "intro" in text and "after" in text
    update_docs("y", "table y", docs)
    assert "## y" in docs.read_text() and "<!-- bench:y -->\ntable y\n<!-- /bench:y -->" in (
        docs.read_text()
    )


def test_a_temporary_work_folder_goes_when_the_benchmark_ends_and_work_keeps_it(
    tmp_path, monkeypatch
):
    from pathlib import Path

    import bench.quality as quality

    seen: list[Path] = []

    def run(args):
        work = Path(args.work)
        (work / "runs" / "arm" / "train" / "checkpoints").mkdir(parents=True)
        seen.append(work)
        return {"datasets": {}}

    monkeypatch.setattr(quality, "run", run)
    monkeypatch.setattr(quality, "_datasets", lambda args: [])
    monkeypatch.setattr(quality, "markdown", lambda result, labels: "tables")
    quality.main(["--data", "gorilla"])
    assert seen[0].name.startswith("bench-quality-") and not seen[0].exists()
    kept = tmp_path / "work"
    quality.main(["--data", "gorilla", "--work", str(kept)])
    assert seen[1] == kept and (kept / "runs" / "arm" / "train" / "checkpoints").is_dir()
