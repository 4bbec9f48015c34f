"""RunConfig and its three faces: Airflow Param specs, CLI options, MLflow params."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys

import jsonschema
import pytest

from tasks import config as config_module
from tasks.config import (
    BATCH_SAMPLERS,
    COLUMN_PRESETS,
    EVAL_CORPUS_CHOICES,
    GATE_METRICS,
    KEEP_CHECKPOINT,
    LOSSES,
    MINING_MODES,
    PRECISIONS,
    SCHEDULERS,
    SOURCES,
    ConfigError,
    RunConfig,
    add_cli_options,
    airflow_param_specs,
    config_fields,
    config_from_cli,
    config_to_cli_args,
)

pytestmark = pytest.mark.unit

CHOICE_FIELDS = {
    "source": SOURCES,
    "column_preset": COLUMN_PRESETS,
    "eval_corpus": EVAL_CORPUS_CHOICES,
    "lr_scheduler": SCHEDULERS,
    "batch_sampler": BATCH_SAMPLERS,
    "precision": PRECISIONS,
    "loss": LOSSES,
    "mine_negatives": MINING_MODES,
    "keep_checkpoint": KEEP_CHECKPOINT,
    "gate_metric": GATE_METRICS,
}
SECTIONS = {
    "Run",
    "Data",
    "Model",
    "Training",
    "Negatives",
    "Evaluation",
    "Tracking",
    "Promotion",
    "Publishing",
}
FIELD_NAMES = [f.name for f in dataclasses.fields(RunConfig)]


def _schema(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k != "default"}


def _valid(**overrides) -> dict:
    """A valid mapping for from_mapping, with overrides."""
    return {"data_path": "pairs.jsonl", **overrides}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_cli_options(parser)
    return parser


# --- Airflow Param specs ------------------------------------------------------------------------
def test_specs_cover_every_field_in_declaration_order():
    specs = airflow_param_specs()
    assert list(specs) == FIELD_NAMES == [f.name for f in config_fields()]


@pytest.mark.parametrize("name", FIELD_NAMES)
def test_spec_is_valid_json_schema_and_accepts_its_default(name):
    spec = airflow_param_specs()[name]
    schema = _schema(spec)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(spec["default"], schema)  # data_path's "" default included
    assert isinstance(spec["title"], str) and spec["title"].strip()
    assert isinstance(spec["description"], str) and len(spec["description"]) > 10
    assert spec["section"] in SECTIONS
    # The default is JSON-serialisable (Airflow stores params as JSON).
    assert json.loads(json.dumps(spec["default"])) == spec["default"]


def test_spec_types_match_field_types():
    specs = airflow_param_specs()
    assert specs["matryoshka_dims"]["type"] == "array"
    assert specs["matryoshka_dims"]["items"] == {"type": "integer", "minimum": 1}
    assert specs["matryoshka_dims"]["uniqueItems"] is True
    assert specs["use_negatives"]["type"] == "boolean"
    assert specs["epochs"]["type"] == "integer"
    assert (specs["epochs"]["minimum"], specs["epochs"]["maximum"]) == (1, 100)
    assert specs["learning_rate"]["type"] == "number"
    assert specs["learning_rate"]["exclusiveMinimum"] == 0.0
    assert specs["data_path"]["type"] == ["null", "string"]
    assert specs["data_path"]["default"] == (RunConfig().data_path or None)
    assert specs["base_model"]["type"] == "string"
    assert specs["base_model"]["minLength"] == 1


OPTIONAL_TEXTS = {
    "data_path",
    "hf_dataset",
    "hf_config",
    "hf_revision",
    "argilla_dataset",
    "argilla_workspace",
    "eval_path",
    "corpus_path",
    "query_column",
    "document_column",
    "negative_column",
    "hub_repo_id",
    "hub_dataset_repo_id",
}


def test_optional_texts_are_nullable_and_required_ones_are_not(monkeypatch):
    """Airflow's trigger form treats a param as required unless its type admits null: every text
    documented as optional must, every other param must not (the form then says it is required)."""
    monkeypatch.delenv("EMBED_DATA_PATH", raising=False)
    specs = airflow_param_specs(RunConfig())
    nullable = {n for n, s in specs.items() if isinstance(s["type"], list) and "null" in s["type"]}
    assert nullable == OPTIONAL_TEXTS
    for name in OPTIONAL_TEXTS:
        assert specs[name]["default"] is None, name
        jsonschema.validate(None, _schema(specs[name]))
    for name in set(specs) - OPTIONAL_TEXTS:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(None, _schema(specs[name]))


def test_null_means_not_set_in_the_config_and_on_the_cli(monkeypatch):
    monkeypatch.setenv("EMBED_DATA_PATH", "/env/default.jsonl")
    # what the form sends when optional boxes stay empty
    conf = {"data_path": "pairs.jsonl", "hub_repo_id": None, "eval_path": None, "hf_config": None}
    cfg = RunConfig.from_mapping(conf)
    assert (cfg.hub_repo_id, cfg.eval_path, cfg.hf_config) == ("", "", "")
    argv = config_to_cli_args({**cfg.to_dict(), "corpus_path": None})
    assert argv[argv.index("--corpus-path") + 1] == ""
    back = config_from_cli(_parser().parse_args(argv))
    assert back.corpus_path == "" and back.data_path == "pairs.jsonl"
    # a null data_path is "not set", not the environment's default: the rule then says what to do
    with pytest.raises(ConfigError, match="data_path is empty"):
        RunConfig.from_mapping({"data_path": None})
    # a required param that is null keeps its default
    assert RunConfig.from_mapping({**conf, "epochs": None}).epochs == RunConfig().epochs


def test_choice_fields_carry_enums_and_others_do_not():
    specs = airflow_param_specs()
    for name, spec in specs.items():
        if name in CHOICE_FIELDS:
            assert spec["enum"] == list(CHOICE_FIELDS[name]), name
            assert spec["default"] in spec["enum"]
        else:
            assert "enum" not in spec, name


def test_specs_take_defaults_from_the_given_config():
    cfg = RunConfig.from_mapping(_valid(epochs=7, matryoshka_dims=[64, 32], best_metric_dim=32))
    specs = airflow_param_specs(cfg)
    assert specs["epochs"]["default"] == 7
    assert specs["matryoshka_dims"]["default"] == [64, 32]
    assert specs["data_path"]["default"] == "pairs.jsonl"


def test_airflow_params_build_from_every_spec_and_resolve_defaults():
    from airflow.sdk import Param

    for name, spec in airflow_param_specs().items():
        param = Param(**spec)
        assert param.resolve() == spec["default"], name
        assert param.description == spec["description"]
        assert param.schema["title"] == spec["title"]
        assert param.schema["section"] == spec["section"]


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("source", "s3"),
        ("epochs", -1),
        ("epochs", 0),
        ("epochs", "abc"),
        ("batch_size", 1),
        ("matryoshka_dims", []),
        ("matryoshka_dims", [64, 64]),
        ("matryoshka_dims", [64, 0]),
        ("eval_fraction", 0.0),
        ("use_negatives", "yes"),
        ("precision", "int8"),
    ],
)
def test_airflow_param_rejects_bad_value(name, bad):
    from airflow.sdk import Param
    from airflow.sdk.definitions.param import ParamValidationError

    param = Param(**airflow_param_specs()[name])
    with pytest.raises(ParamValidationError):
        param.resolve(bad)
    # ... while a good value still resolves.
    assert param.resolve(airflow_param_specs()[name]["default"]) is not None


# --- CLI ------------------------------------------------------------------------------------
def _roundtrip(cfg: RunConfig) -> tuple[RunConfig, list[str]]:
    argv = config_to_cli_args(cfg.to_dict())
    return config_from_cli(_parser().parse_args(argv)), argv


def test_cli_round_trip_of_defaults():
    cfg = RunConfig.from_mapping(_valid())
    back, argv = _roundtrip(cfg)
    assert back == cfg
    assert "--use-negatives" in argv and "--no-use-negatives" not in argv
    assert argv[argv.index("--matryoshka-dims") + 1] == "384,256,128,64"


def test_cli_round_trip_of_non_defaults_including_bools_and_dims():
    cfg = RunConfig.from_mapping(
        _valid(
            source="huggingface",
            hf_dataset="org/name",
            hf_config="sub",
            hf_revision="v1",
            column_preset="zenml_distilabel",
            eval_corpus="eval",
            eval_fraction=0.25,
            val_fraction=0.0,
            matryoshka_dims=[64, 32, 16],
            best_metric_dim=16,
            epochs=1,
            batch_size=8,
            learning_rate=3e-5,
            use_negatives=False,
            lr_scheduler="linear",
            loss="cached_mnrl",
            precision="fp32",
            seed=0,
            base_model="/models/x",
        )
    )
    back, argv = _roundtrip(cfg)
    assert back == cfg
    assert back.use_negatives is False and back.matryoshka_dims == [64, 32, 16]
    assert back.learning_rate == pytest.approx(3e-5) and back.val_fraction == 0.0
    assert "--no-use-negatives" in argv
    assert argv[argv.index("--matryoshka-dims") + 1] == "64,32,16"
    for f in config_fields():  # every field is passed on, even empty strings
        flag = f.name.replace("_", "-")
        assert f"--{flag}" in argv or f"--no-{flag}" in argv


def test_cli_round_trip_through_the_real_step_parser():
    from tasks.cli import build_parser

    cfg = RunConfig.from_mapping(
        _valid(use_negatives=False, matryoshka_dims=[128, 64], best_metric_dim=64)
    )
    argv = ["prepare", "--run-dir", "x", *config_to_cli_args(cfg.to_dict())]
    assert config_from_cli(build_parser().parse_args(argv)) == cfg


def test_config_to_cli_args_skips_unknown_names_and_none():
    argv = config_to_cli_args(
        {
            "epochs": 2,
            "dag_run_note": "x",
            "seed": None,
            "use_negatives": "false",
            "matryoshka_dims": "[64, 32]",
        }
    )
    assert argv == ["--epochs", "2", "--no-use-negatives", "--matryoshka-dims", "64,32"]


def test_cli_options_default_to_none_so_config_defaults_apply(tmp_path):
    args = _parser().parse_args(["--data-path", "p.jsonl"])
    assert args.epochs is None and args.use_negatives is None
    assert config_from_cli(args) == RunConfig.from_mapping(_valid(data_path="p.jsonl"))


def test_config_file_is_read_and_explicit_options_win(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"data_path": "a.jsonl", "epochs": 5, "seed": 9}))
    cfg = config_from_cli(_parser().parse_args(["--config", str(path), "--epochs", "2"]))
    assert (cfg.data_path, cfg.epochs, cfg.seed) == ("a.jsonl", 2, 9)
    with pytest.raises(ConfigError, match="cannot read --config"):
        config_from_cli(_parser().parse_args(["--config", str(tmp_path / "missing.json")]))


def test_string_values_are_coerced():
    cfg = RunConfig.from_mapping(
        _valid(
            epochs="2",
            learning_rate="1e-4",
            use_negatives="false",
            matryoshka_dims="64, 32",
            best_metric_dim="32",
        )
    )
    assert (cfg.epochs, cfg.learning_rate, cfg.use_negatives) == (2, 1e-4, False)
    assert cfg.matryoshka_dims == [64, 32] and cfg.best_metric_dim == 32
    assert RunConfig.from_mapping(
        _valid(matryoshka_dims="[64, 32]", best_metric_dim=32)
    ).matryoshka_dims == [64, 32]


# --- MLflow ---------------------------------------------------------------------------------
def test_mlflow_params_are_flat_strings_for_every_field():
    cfg = RunConfig.from_mapping(
        _valid(matryoshka_dims=[64, 32], best_metric_dim=32, use_negatives=False, epochs=4)
    )
    params = cfg.mlflow_params()
    assert list(params) == FIELD_NAMES
    assert all(isinstance(v, str) for v in params.values())
    assert params["matryoshka_dims"] == "64,32"
    assert params["use_negatives"] == "False"
    assert params["epochs"] == "4"
    assert params["data_path"] == "pairs.jsonl"
    assert params["learning_rate"] == str(cfg.learning_rate)


# --- validation errors ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (
            {"matryoshka_dims": [32, 64], "best_metric_dim": 32},
            ["matryoshka_dims must go from large to small", "[64, 32]"],
        ),
        (
            {"matryoshka_dims": [64, 64, 32], "best_metric_dim": 32},
            ["matryoshka_dims has duplicates", "[64, 64, 32]"],
        ),
        ({"matryoshka_dims": [], "best_metric_dim": 32}, ["matryoshka_dims is empty"]),
        ({"matryoshka_dims": [64, -32], "best_metric_dim": 64}, ["positive"]),
        (
            {"matryoshka_dims": [64, 32], "best_metric_dim": 48},
            ["best_metric_dim=48 is not one of matryoshka_dims [64, 32]"],
        ),
        ({"epoch": 3}, ["unknown parameter(s) epoch", "valid names", "epochs"]),
        ({"source": "s3"}, ["source='s3' is not one of local, huggingface"]),
        ({"column_preset": "zenml"}, ["column_preset='zenml' is not one of", "zenml_distilabel"]),
        ({"eval_corpus": "train"}, ["eval_corpus='train' is not one of all, eval"]),
        ({"epochs": "abc"}, ["epochs='abc' is not a valid int"]),
        ({"epochs": 2.5}, ["epochs=2.5 is not a valid int"]),
        ({"learning_rate": "fast"}, ["learning_rate='fast' is not a valid float"]),
        ({"use_negatives": "maybe"}, ["use_negatives='maybe' is not a valid bool"]),
        ({"matryoshka_dims": "64,abc"}, ["matryoshka_dims='64,abc' is not a valid list[int]"]),
        ({"matryoshka_dims": [64.5]}, ["matryoshka_dims=[64.5] is not a valid list[int]"]),
        ({"epochs": 0}, ["epochs=0 is below its minimum 1"]),
        ({"batch_size": 100000}, ["batch_size=100000 is above its maximum 65536"]),
        ({"eval_fraction": 0}, ["eval_fraction=0.0 must be greater than 0.0"]),
        ({"eval_fraction": 0.5, "val_fraction": 0.5}, ["leave almost nothing to train on"]),
        ({"data_path": ""}, ["source is 'local' but data_path is empty"]),
        ({"source": "huggingface"}, ["source is 'huggingface' but hf_dataset is empty"]),
    ],
)
def test_invalid_config_raises_clear_config_error(overrides, fragments):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_mapping(_valid(**overrides))
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_max_seq_length_zero_means_chosen_from_the_data_and_positive_values_stay():
    spec = airflow_param_specs()["max_seq_length"]
    assert spec["default"] == 0 and spec["minimum"] == 0
    assert "0 = the model's own limit" in spec["description"]
    assert "99th percentile" in spec["description"]
    assert RunConfig.from_mapping(_valid(max_seq_length="128")).max_seq_length == 128
    with pytest.raises(ConfigError, match="max_seq_length=-1 is below its minimum 0"):
        RunConfig.from_mapping(_valid(max_seq_length=-1))


def test_config_error_is_a_value_error_and_none_values_keep_defaults():
    assert issubclass(ConfigError, ValueError)
    cfg = RunConfig.from_mapping(_valid(epochs=None, seed=None))
    assert (cfg.epochs, cfg.seed) == (RunConfig().epochs, RunConfig().seed)


def test_cli_rejects_invalid_values_with_config_error():
    with pytest.raises(ConfigError, match="is not one of"):
        config_from_cli(_parser().parse_args(["--data-path", "p", "--source", "s3"]))
    with pytest.raises(ConfigError, match="epochs='abc' is not a valid int"):
        config_from_cli(_parser().parse_args(["--data-path", "p", "--epochs", "abc"]))


def test_config_module_imports_nothing_heavy():
    """It is imported at DAG parse time: no torch, datasets or sentence-transformers."""
    code = (
        "import sys, tasks.config; "
        "print(sorted(m for m in ('torch', 'datasets', 'sentence_transformers', "
        "'transformers', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=str(config_module.__file__).rsplit("/tasks/", 1)[0],
        check=True,
    )
    assert out.stdout.strip() == "[]"
