"""The train step on a tiny model: outputs, checkpoints, resume after an interrupted attempt."""

from __future__ import annotations

import shutil

import pytest
from conftest import make_pairs, write_jsonl

from tasks.config import RunConfig
from tasks.data import prepare
from tasks.io import InvalidInputError, read_json, read_jsonl
from tasks.models import freeze_lower_layers, load_model, model_layers
from tasks.precision import precision_flags
from tasks.train import train

pytestmark = pytest.mark.unit


def _config(data, model, **overrides):
    values = dict(
        data_path=str(data),
        base_model=str(model),
        matryoshka_dims=[64, 32, 16],
        best_metric_dim=32,
        batch_size=8,
        epochs=1,
        eval_batch_size=32,
    )
    values.update(overrides)
    return RunConfig.from_mapping(values)


def test_train_writes_model_history_and_checkpoint(tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path / "pairs.jsonl", make_pairs(n_docs=40, negatives=True))
    cfg = _config(data, tiny_model_dir)
    run_dir = tmp_path / "run"
    prepare(cfg, run_dir)
    summary = train(cfg, run_dir)
    out = run_dir / "train"
    assert (out / "model" / "config.json").exists()
    assert (out / "model" / "modules.json").exists()
    assert summary["hard_negatives"] is True
    assert summary["steps"] > 0 and summary["resumed_from"] is None
    assert summary["best_checkpoint"] and "checkpoint-" in summary["best_checkpoint"]
    assert list((out / "checkpoints").glob("checkpoint-*"))
    history = read_json(out / "history.json")
    assert any("loss" in h for h in history)
    assert any("eval_val_dim_32_cosine_ndcg@10" in h for h in history)
    assert summary["hardware"]["device"] == "cpu" and summary["hardware"]["torch"]
    # a complete step is not redone
    assert train(cfg, run_dir)["train_runtime_s"] == summary["train_runtime_s"]


@pytest.mark.parametrize("mode", ["auto", "best", "last"])
def test_the_saved_model_is_the_checkpoint_keep_checkpoint_chose(tmp_path, tiny_model_dir, mode):
    import torch

    data = write_jsonl(tmp_path / "pairs.jsonl", make_pairs(n_docs=40))
    # a rate this high makes the tiny model's validation peak before the last epoch
    cfg = _config(data, tiny_model_dir, epochs=3, learning_rate=2e-3, keep_checkpoint=mode)
    run_dir = tmp_path / "run"
    prepare(cfg, run_dir)
    summary = train(cfg, run_dir)
    choice, last = summary["checkpoint"], summary["steps"]
    best = int(summary["best_checkpoint"].rsplit("-", 1)[1])
    assert best < last, "the run should validate best before its last step"
    assert (choice["mode"], choice["best_step"], choice["last_step"]) == (mode, best, last)
    assert choice["step"] == {"auto": choice["step"], "best": best, "last": last}[mode]
    assert choice["step"] in (best, last) and choice["reason"]
    if mode == "auto":  # the paired test ran on the scores kept during training
        assert choice["gain"] is not None and "paired z" in choice["reason"]
    saved = load_model(run_dir / "train" / "model").state_dict()
    kept = load_model(run_dir / "train" / "checkpoints" / f"checkpoint-{choice['step']}")
    assert all(torch.equal(saved[k], v) for k, v in kept.state_dict().items())


def test_retry_resumes_from_the_last_checkpoint(tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path / "pairs.jsonl", make_pairs(n_docs=40))
    run_dir = tmp_path / "run"
    cfg1 = _config(data, tiny_model_dir, val_fraction=0.0)
    prepare(cfg1, run_dir)
    first = train(cfg1, run_dir)
    # Simulate an attempt that died after epoch 1 of 2: its checkpoint is there, no summary.
    (run_dir / "train" / "summary.json").unlink()
    shutil.rmtree(run_dir / "train" / "model")
    cfg2 = _config(data, tiny_model_dir, val_fraction=0.0, epochs=2)
    second = train(cfg2, run_dir)
    assert second["resumed_from"] and second["resumed_from"].endswith(
        f"checkpoint-{first['steps']}"
    )
    assert second["steps"] == 2 * first["steps"]


def test_precision_auto_is_fp32_on_cpu_and_bf16_needs_a_gpu():
    assert precision_flags("auto", "cpu") == {"bf16": False, "fp16": False, "tf32": False}
    assert precision_flags("fp32", "cpu")["bf16"] is False
    with pytest.raises(InvalidInputError, match="bf16"):
        precision_flags("bf16", "cpu")
    with pytest.raises(InvalidInputError, match="fp16"):
        precision_flags("fp16", "cpu")
    with pytest.raises(InvalidInputError, match="tf32"):
        precision_flags("tf32", "cpu")


def test_precision_auto_on_a_hopper_gpu_is_tf32_not_bf16(monkeypatch):
    """bf16 autocast measured ~2x slower than tf32 for small encoders: auto must not pick it."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (9, 0))
    assert precision_flags("auto", "cuda") == {"bf16": False, "fp16": False, "tf32": True}
    assert precision_flags("bf16", "cuda") == {"bf16": True, "fp16": False, "tf32": True}
    assert precision_flags("tf32", "cuda") == {"bf16": False, "fp16": False, "tf32": True}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (7, 5))
    assert precision_flags("auto", "cuda")["tf32"] is False  # Turing has no tf32


def test_resume_skips_and_removes_an_incomplete_checkpoint(tmp_path):
    from tasks.checkpoints import last_complete_checkpoint

    folder = tmp_path / "checkpoints"
    assert last_complete_checkpoint(folder) is None
    for step, complete in ((12, True), (24, True), (36, False)):
        ckpt = folder / f"checkpoint-{step}"
        ckpt.mkdir(parents=True)
        if complete:
            (ckpt / "trainer_state.json").write_text("{}")
    assert last_complete_checkpoint(folder) == str(folder / "checkpoint-24")
    assert not (folder / "checkpoint-36").exists()


def test_length_from_data_rounds_the_percentile_up_to_8_and_caps_it_at_the_limit():
    from tasks.seq_length import length_from_data

    assert length_from_data([10] * 99 + [300], limit=256) == 16  # 1 long text in 100: cut
    assert length_from_data([10] * 98 + [300, 300], limit=256) == 256  # 2 in 100: the limit
    assert length_from_data([12, 30, 41, 300], limit=256, percentile=75) == 48
    assert length_from_data([24, 17], limit=512, percentile=100) == 24
    assert length_from_data([1], limit=512) == 8
    assert length_from_data([], limit=384) == 384


def test_training_length_counts_every_column_with_its_prompt(tiny_model_dir):
    from tasks.seq_length import training_length

    model = load_model(tiny_model_dir, device="cpu")
    assert model.max_seq_length == 128
    short = {"anchor": ["a question"] * 60, "positive": ["a short answer here"] * 60}
    length, measured = training_length(model, short, None, seed=0)
    assert measured == 120 and length == 8  # "[CLS] a short answer here [SEP]" is 6 tokens
    prompted, _ = training_length(model, short, {"positive": "passage: " * 3}, seed=0)
    assert prompted == 16  # the prompt's tokens count too
    long = {**short, "negative": ["word " * 300] * 60}  # a third of the texts: the limit
    assert training_length(model, long, None, seed=0)[0] == 128


def _long_tail_pairs() -> list[dict]:
    """Short pairs, plus two documents longer than the tiny model's limit of 128 tokens."""
    rows = make_pairs(n_docs=150)
    for i in (0, 9):
        long_doc = rows[2 * i]["document"] + " " + "scheduler timetable " * 80
        rows[2 * i]["document"] = rows[2 * i + 1]["document"] = long_doc
    return rows


def test_max_seq_length_0_cuts_only_the_training_batches_at_the_length_from_the_data(
    tmp_path, tiny_model_dir, monkeypatch, capsys
):
    from sentence_transformers.sentence_transformer.data_collator import (
        SentenceTransformerDataCollator,
    )

    widths: list[int] = []
    collate = SentenceTransformerDataCollator.__call__

    def recording(self, features):
        batch = collate(self, features)
        widths.extend(v.shape[1] for k, v in batch.items() if k.endswith("_input_ids"))
        return batch

    monkeypatch.setattr(SentenceTransformerDataCollator, "__call__", recording)
    data = write_jsonl(tmp_path / "pairs.jsonl", _long_tail_pairs())
    # without mined negatives, which would put the long documents in many more rows
    cfg = _config(data, tiny_model_dir, batch_size=16, mine_negatives="never")
    run_dir = tmp_path / "run"
    prepare(cfg, run_dir)
    train_texts = [t for r in read_jsonl(run_dir / "data" / "train.jsonl") for t in r.values()]
    assert any(len(t.split()) > 128 for t in train_texts)  # the long tail is in training
    summary = train(cfg, run_dir)
    chosen = summary["max_seq_length"]
    assert chosen < 128 == summary["model_max_seq_length"] and chosen % 8 == 0
    assert widths and max(widths) <= chosen  # without the cut one batch would be 128 wide
    assert f"max_seq_length {chosen} for the training batches, from the data" in (
        capsys.readouterr().out
    )
    # validation, the saved model and so the evaluate step keep the model's own limit
    assert load_model(run_dir / "train" / "model", device="cpu").max_seq_length == 128


def test_a_positive_max_seq_length_is_the_limit_everywhere(tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path / "pairs.jsonl", _long_tail_pairs())
    cfg = _config(data, tiny_model_dir, batch_size=16, max_seq_length=48)
    run_dir = tmp_path / "run"
    prepare(cfg, run_dir)
    summary = train(cfg, run_dir)
    assert summary["max_seq_length"] == summary["model_max_seq_length"] == 48
    assert load_model(run_dir / "train" / "model", device="cpu").max_seq_length == 48


def test_prepared_base_model_is_the_fingerprinted_snapshot(tmp_path, tiny_model_dir):
    """train and evaluate base read the snapshot prepare fingerprinted; the reference is
    resolved afresh, with no fingerprint, only when that snapshot is gone."""
    from tasks.models import prepared_base_model

    manifest = {"base_model": {"path": str(tiny_model_dir), "fingerprint": "abc"}}
    assert prepared_base_model(manifest, "pkg:not_installed") == (tiny_model_dir, "abc")
    gone = {"base_model": {"path": str(tmp_path / "gone"), "fingerprint": "abc"}}
    assert prepared_base_model(gone, str(tiny_model_dir)) == (tiny_model_dir, None)


def test_freeze_layers_trains_only_the_upper_layers(tmp_path, tiny_model_dir):
    """freeze_layers=1: the embeddings and the lowest layer leave training as they came, the
    layer above them does not; the summary says how many weights trained."""
    import torch

    data = write_jsonl(tmp_path / "pairs.jsonl", make_pairs(n_docs=40))
    cfg = _config(data, tiny_model_dir, freeze_layers=1, learning_rate=1e-3)
    run_dir = tmp_path / "run"
    prepare(cfg, run_dir)
    summary = train(cfg, run_dir)
    frozen = summary["frozen"]
    assert (frozen["layers"], frozen["of"]) == (1, 2)
    assert 0 < frozen["trainable_parameters"] < frozen["frozen_parameters"]
    before = load_model(tiny_model_dir)[0].auto_model
    after = load_model(run_dir / "train" / "model")[0].auto_model

    def same(a, b):
        return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))

    assert same(before.embeddings, after.embeddings)
    assert same(before.encoder.layer[0], after.encoder.layer[0])
    assert not same(before.encoder.layer[1], after.encoder.layer[1])
    # a model with fewer layers than asked is a setting to fix, said before training
    cfg_all = _config(data, tiny_model_dir, freeze_layers=2)
    prepare(cfg_all, tmp_path / "all")
    with pytest.raises(InvalidInputError, match="freeze_layers=2 leaves nothing to train"):
        train(cfg_all, tmp_path / "all")
    assert model_layers(tiny_model_dir) == 2
    # the same rule where config.json does not say (checked on the loaded model)
    with pytest.raises(InvalidInputError, match="has 2 layers; use at most 1"):
        freeze_lower_layers(load_model(tiny_model_dir), 3)
