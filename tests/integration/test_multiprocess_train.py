"""``python -m tasks train --train-processes 2`` on the CPU: two gloo processes under torchrun.

The two-process run must reproduce the single-process run: ``batch_size`` is the global batch and
the in-batch negatives are gathered across the processes, so with dropout off (and the plain
batch sampler, whose batches do not depend on their size) the losses and the model match.
"""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import make_pairs, run_cli, write_jsonl

from tasks.config import RunConfig
from tasks.data import prepare
from tasks.io import read_json, write_json
from tasks.models import load_model
from tasks.train import train

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def no_gpus(monkeypatch):
    """CPU processes (gloo) even on a host with GPUs; the launching process skips torch."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture
def deterministic_model(tmp_path, tiny_model_dir):
    """The tiny model with dropout off: its training is a function of the batches alone."""
    model_dir = tmp_path / "tiny-no-dropout"
    shutil.copytree(tiny_model_dir, model_dir)
    config = read_json(model_dir / "config.json")
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    write_json(model_dir / "config.json", config)
    return model_dir


def _prepared_run(run_dir, data, model_dir):
    cfg = RunConfig.from_mapping(
        dict(
            data_path=str(data),
            base_model=str(model_dir),
            matryoshka_dims=[64, 32],
            best_metric_dim=32,
            batch_size=8,
            batch_sampler="batch_sampler",
            epochs=1,
            eval_batch_size=32,
        )
    )
    prepare(cfg, run_dir)
    write_json(run_dir / "config.json", cfg.to_dict())  # as the prepare step does
    return cfg


def _losses(run_dir):
    return [h["loss"] for h in read_json(run_dir / "train" / "history.json") if "loss" in h]


def test_two_gloo_processes_train_like_one(tmp_path, deterministic_model):
    data = write_jsonl(tmp_path / "pairs.jsonl", make_pairs(n_docs=40))
    two, one = tmp_path / "two", tmp_path / "one"
    cfg = _prepared_run(two, data, deterministic_model)
    shutil.copytree(two, one)

    code, stdout, stderr = run_cli("train", "--run-dir", str(two), "--train-processes", "2")
    assert code == 0, stderr[-3000:]
    lines = stdout.strip().splitlines()
    summaries = [line for line in lines if line.startswith("{")]
    assert summaries == [lines[-1]]  # one summary line, the last one
    summary = json.loads(lines[-1])
    assert summary == read_json(two / "train" / "summary.json")
    # two ranks ran, with the gloo backend, and only rank 0 printed progress
    assert summary["train_processes"] == 2
    assert summary["batch_size"] == 8 and summary["per_process_batch_size"] == 4
    dist = summary["distributed"]
    assert dist["backend"] == "gloo" and dist["world_size"] == 2
    assert [r["rank"] for r in dist["ranks"]] == [0, 1]
    assert len({r["pid"] for r in dist["ranks"]}) == 2
    assert all(r["steps"] == summary["steps"] for r in dist["ranks"])
    assert sum(line.startswith("train: step 1/") for line in lines) == 1
    assert "launching 2 training processes" in stdout

    # the single-process reference, in this process
    reference = train(cfg, one)
    assert reference["distributed"] is None and reference["train_processes"] == 1
    assert summary["steps"] == reference["steps"] > 0
    assert _losses(two) == pytest.approx(_losses(one), abs=1e-3)
    assert summary["best_metric"] == pytest.approx(reference["best_metric"], abs=1e-3)
    # samples/s is the global figure: all pairs of the epoch over the runtime
    pairs = summary["train_pairs"] * summary["epochs"]
    throughput = summary["train_samples_per_second"] * summary["train_runtime_s"]
    assert throughput == pytest.approx(pairs, rel=0.05)

    # the saved model loads and embeds like the single-process one
    texts = ["question about the scheduler", "docker gpu volume"]
    trained = load_model(two / "train" / "model", device="cpu").encode(texts)
    expected = load_model(one / "train" / "model", device="cpu").encode(texts)
    assert trained.shape == (2, 64)
    assert trained == pytest.approx(expected, abs=1e-3)
    base = load_model(deterministic_model, device="cpu").encode(texts)
    assert abs(trained - base).max() > 1e-4  # and it did train

    # a finished step is not launched again
    code, again, stderr = run_cli("train", "--run-dir", str(two), "--train-processes", "2")
    assert code == 0, stderr[-3000:]
    assert "launching" not in again and json.loads(again.strip().splitlines()[-1]) == summary


def test_a_failure_in_the_processes_reaches_the_step_contract(tmp_path):
    """Rank 0's error (here: no prepared data) is the step's last stderr line and exit code."""
    code, stdout, stderr = run_cli(
        "train",
        "--run-dir",
        str(tmp_path / "not-prepared"),
        "--data-path",
        str(tmp_path / "pairs.jsonl"),
        "--train-processes",
        "2",
    )
    assert code == 1
    assert "launching 2 training processes" in stdout
    assert not any(line.startswith("{") for line in stdout.splitlines())
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "run the prepare step first" in last
