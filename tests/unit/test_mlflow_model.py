"""The register step's MLflow model writer against MLflow's own sentence_transformers flavor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.unit

#: What differs between any two saves of one model (ids, times, sizes of regenerated cards).
VOLATILE = {"model_uuid", "utc_time_created", "model_size_bytes"}


def _mlmodel(path: Path) -> dict:
    data = yaml.safe_load((path / "MLmodel").read_text())
    return {k: v for k, v in data.items() if k not in VOLATILE}


def test_writes_the_flavors_own_layout(tmp_path, tiny_model_dir):
    import mlflow.sentence_transformers
    from mlflow.models import Model
    from sentence_transformers import SentenceTransformer

    from tasks import mlflow_model

    example = ["How do I retrain the embedding model nightly?"]
    reqs = ["torch==2.13.0", "sentence-transformers==6.2.0"]
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    mlflow.sentence_transformers.save_model(
        model, str(theirs), input_example=example, pip_requirements=reqs, mlflow_model=Model()
    )
    mlflow_model.save_model(
        str(ours), Model(), model_dir=tiny_model_dir, input_example=example, pip_requirements=reqs
    )

    assert _mlmodel(ours) == _mlmodel(theirs)
    for name in ("requirements.txt", "conda.yaml", "python_env.yaml", "input_example.json"):
        assert (ours / name).read_text() == (theirs / name).read_text(), name
    data = mlflow_model.DATA_PATH
    files = {p.relative_to(ours / data) for p in (ours / data).rglob("*") if p.is_file()}
    assert files == {
        p.relative_to(theirs / data) for p in (theirs / data).rglob("*") if p.is_file()
    }
    loaded = mlflow.sentence_transformers.load_model(str(ours))
    np.testing.assert_array_equal(loaded.encode(example), model.encode(example))


def test_the_signature_follows_a_dense_layer(tmp_path, tiny_model_dir):
    """The output width is :func:`tasks.models.model_dimension` (tested per config layout in
    test_models.py); a Dense head changes it, and the signature must say so."""
    from mlflow.models import Model

    from tasks import mlflow_model
    from tasks.models import model_dimension

    assert model_dimension(tiny_model_dir) == 64
    model_dir = tmp_path / "dense"
    (model_dir / "2_Dense").mkdir(parents=True)
    for name in ("modules.json", "config.json"):
        (model_dir / name).write_text((tiny_model_dir / name).read_text())
    pooling = next(p for p in tiny_model_dir.iterdir() if p.name.endswith("Pooling"))
    (model_dir / pooling.name).mkdir()
    (model_dir / pooling.name / "config.json").write_text((pooling / "config.json").read_text())
    modules = json.loads((model_dir / "modules.json").read_text())
    modules.append({"idx": len(modules), "name": "2", "path": "2_Dense", "type": "x.Dense"})
    (model_dir / "modules.json").write_text(json.dumps(modules))
    (model_dir / "2_Dense" / "config.json").write_text(json.dumps({"out_features": 16}))
    assert model_dimension(model_dir) == 16
    out = tmp_path / "logged"
    mlflow_model.save_model(str(out), Model(), model_dir=model_dir)
    outputs = json.loads(yaml.safe_load((out / "MLmodel").read_text())["signature"]["outputs"])
    assert outputs[0]["tensor-spec"]["shape"] == [-1, 16]


def test_logging_does_not_import_sentence_transformers(tmp_path, tiny_model_dir):
    """The point of the writer: register logs and registers the model without the 10 s import
    of sentence-transformers (or torch) and without loading it."""
    script = f"""
import sys, mlflow
from tasks.mlflow_model import log_model
mlflow.set_tracking_uri("sqlite:///{tmp_path}/mlflow.db")
with mlflow.start_run():
    info = log_model({str(tiny_model_dir)!r}, name="model", registered_model_name="m",
                     input_example=["a question"])
print(info.registered_model_version, "torch" in sys.modules,
      "sentence_transformers" in sys.modules)
"""
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=root, check=True
    )
    assert out.stdout.split()[-3:] == ["1", "False", "False"], out.stderr[-2000:]
