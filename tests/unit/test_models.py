"""Reading a saved model's embedding dimension from its config files (no torch)."""

from __future__ import annotations

import json

import pytest

from tasks.models import model_dimension

pytestmark = pytest.mark.unit

TRANSFORMER = {
    "idx": 0,
    "name": "0",
    "path": "",
    "type": "sentence_transformers.models.Transformer",
}


def _module(idx: int, path: str, kind: str) -> dict:
    return {"idx": idx, "name": str(idx), "path": path, "type": kind}


def _saved(tmp_path, modules: list[tuple[dict, dict]] | None, hidden: dict | None = None):
    """A model directory: ``config.json`` (``hidden``) and, unless None, ``modules.json`` with
    each module's ``config.json``."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    if hidden is not None:
        (model_dir / "config.json").write_text(json.dumps({"architectures": ["X"], **hidden}))
    if modules is not None:
        (model_dir / "modules.json").write_text(json.dumps([m for m, _ in modules]))
        for module, config in modules:
            if module["path"]:
                (model_dir / module["path"]).mkdir()
                (model_dir / module["path"] / "config.json").write_text(json.dumps(config))
    return model_dir


POOLING_V6 = "sentence_transformers.sentence_transformer.modules.pooling.Pooling"
POOLING_V5 = "sentence_transformers.models.Pooling"
DENSE = "sentence_transformers.models.Dense"
NORMALIZE = "sentence_transformers.models.Normalize"


@pytest.mark.parametrize(
    "modules, hidden, expected",
    [
        pytest.param(
            [(TRANSFORMER, {}), (_module(1, "1_Pooling", POOLING_V6), {"embedding_dimension": 48})],
            {"hidden_size": 96},
            48,
            id="sentence-transformers 6 pooling",
        ),
        pytest.param(
            [
                (TRANSFORMER, {}),
                (_module(1, "1_Pooling", POOLING_V5), {"word_embedding_dimension": 48}),
            ],
            {"hidden_size": 96},
            48,
            id="sentence-transformers 5 pooling",
        ),
        pytest.param(
            [
                (TRANSFORMER, {}),
                (_module(1, "1_Pooling", POOLING_V6), {"embedding_dimension": 48}),
                (_module(2, "2_Dense", DENSE), {"in_features": 48, "out_features": 16}),
                (_module(3, "3_Normalize", NORMALIZE), {}),
            ],
            {"hidden_size": 96},
            16,
            id="dense head",
        ),
        pytest.param(None, {"hidden_size": 96}, 96, id="transformers directory"),
        pytest.param(None, {"d_model": 512}, 512, id="transformers d_model"),
        pytest.param([(TRANSFORMER, {})], {"hidden_size": 96}, 96, id="no pooling config"),
        pytest.param(None, None, None, id="nothing to tell"),
    ],
)
def test_model_dimension_reads_each_config_layout(tmp_path, modules, hidden, expected):
    assert model_dimension(_saved(tmp_path, modules, hidden)) == expected


def test_model_dimension_of_a_saved_model(tiny_model_dir):
    """The tiny model as this sentence-transformers version saves it (64 dims, mean pooling)."""
    assert model_dimension(tiny_model_dir) == 64
