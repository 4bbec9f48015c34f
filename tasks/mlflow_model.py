"""Log a saved sentence-transformers model directory as an MLflow ``sentence_transformers`` model,
without importing sentence-transformers or loading the model.

``mlflow.sentence_transformers.log_model`` wants a live ``SentenceTransformer``: the register
step had to import sentence-transformers (10 s and more on a small CPU), load the model, encode
the input example to infer a signature, save the weights again and then load the logged model a
second time to validate the example. The fine-tuned model is already on disk, so this module
writes the flavor's own layout from the directory:

- ``model.sentence_transformer/``: the saved model, copied;
- ``MLmodel`` with the ``python_function`` flavor (loader ``mlflow.sentence_transformers``) and the
  ``sentence_transformers`` flavor (its version, the transformer's source name and class), the
  signature (a string column in, a float32 ``(-1, dim)`` tensor out, ``dim`` from
  :func:`tasks.models.model_dimension`), the input example and the model size;
- ``requirements.txt``, ``conda.yaml`` and ``python_env.yaml``.

``mlflow.sentence_transformers.load_model`` and ``mlflow.pyfunc.load_model`` read it as they read
the flavor's own output; a test compares the two ``MLmodel`` files and loads the logged model.
Only ``tasks.tracking`` imports this module (it needs mlflow).
"""

from __future__ import annotations

import json
import shutil
from importlib.metadata import version
from pathlib import Path
from typing import Any

from tasks.models import model_dimension

#: The flavor's names and file layout (``mlflow.sentence_transformers``); kept here so that this
#: module does not import that package, which imports sentence-transformers' dependencies.
FLAVOR_NAME = "sentence_transformers"
LOADER_MODULE = "mlflow.sentence_transformers"
DATA_PATH = "model.sentence_transformer"
SOURCE_MODEL_NAME_KEY = "source_model_name"
MODEL_TYPE_KEY = "pipeline_model_type"


def transformer_metadata(model_dir: Path) -> dict[str, str]:
    """What the flavor records of the underlying transformers model: where it was loaded from
    (the flavor records the loaded model's ``name_or_path``, which is this directory) and its
    class, read from the saved ``config.json``."""
    config_file = Path(model_dir) / "config.json"
    if not config_file.exists():
        return {}
    config = json.loads(config_file.read_text())
    architectures = config.get("architectures") or []
    if not architectures:
        return {}
    return {
        SOURCE_MODEL_NAME_KEY: str(model_dir),
        MODEL_TYPE_KEY: architectures[0],
    }


def signature(dim: int | None) -> Any:
    """The signature the flavor infers from a text input example: one string column in, a
    ``float32`` tensor of shape ``(-1, dim)`` out."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([ColSpec("string")]),
        outputs=Schema([TensorSpec(np.dtype("float32"), (-1, dim if dim else -1))]),
    )


def save_model(
    path: str,
    mlflow_model: Any,
    *,
    model_dir: str | Path,
    input_example: Any = None,
    pip_requirements: list[str] | None = None,
    **_: Any,
) -> None:
    """Write the ``sentence_transformers`` flavor layout for the saved model in ``model_dir`` to
    ``path`` (``mlflow.models.Model.log`` calls this with its temporary directory)."""
    from mlflow.models.model import MLMODEL_FILE_NAME
    from mlflow.models.utils import _save_example
    from mlflow.pyfunc import add_to_model
    from mlflow.utils.environment import (
        _CONDA_ENV_FILE_NAME,
        _PYTHON_ENV_FILE_NAME,
        _REQUIREMENTS_FILE_NAME,
        _process_pip_requirements,
        _PythonEnv,
    )
    from mlflow.utils.file_utils import get_total_file_size, write_to
    from mlflow.utils.model_utils import _validate_and_prepare_target_save_path

    out = Path(path).absolute()
    _validate_and_prepare_target_save_path(str(out))
    _save_example(mlflow_model, input_example, str(out))
    mlflow_model.signature = signature(model_dimension(Path(model_dir)))
    shutil.copytree(model_dir, out / DATA_PATH, ignore=shutil.ignore_patterns(".*", "checkpoint-*"))
    add_to_model(
        mlflow_model,
        loader_module=LOADER_MODULE,
        data=DATA_PATH,
        conda_env=_CONDA_ENV_FILE_NAME,
        python_env=_PYTHON_ENV_FILE_NAME,
        model_config=None,
        code=None,
    )
    mlflow_model.add_flavor(
        FLAVOR_NAME,
        sentence_transformers_version=version("sentence-transformers"),
        code=None,
        **transformer_metadata(Path(model_dir)),
    )
    if size := get_total_file_size(str(out)):
        mlflow_model.model_size_bytes = size
    mlflow_model.save(str(out / MLMODEL_FILE_NAME))
    conda_env, requirements, _constraints = _process_pip_requirements(
        None, pip_requirements or [], None
    )
    with (out / _CONDA_ENV_FILE_NAME).open("w") as fh:
        import yaml

        yaml.safe_dump(conda_env, stream=fh, default_flow_style=False)
    write_to(str(out / _REQUIREMENTS_FILE_NAME), "\n".join(requirements))
    _PythonEnv.current().to_yaml(str(out / _PYTHON_ENV_FILE_NAME))


def log_model(
    model_dir: Path,
    *,
    name: str,
    registered_model_name: str | None = None,
    pip_requirements: list[str] | None = None,
    input_example: Any = None,
) -> Any:
    """Log ``model_dir`` to the active MLflow run as a ``sentence_transformers`` model (and
    register it when ``registered_model_name`` is given); returns MLflow's ``ModelInfo``."""
    import sys

    from mlflow.models import Model

    return Model.log(
        artifact_path=None,
        name=name,
        flavor=sys.modules[__name__],
        flavor_name=FLAVOR_NAME,
        registered_model_name=registered_model_name,
        model_dir=str(model_dir),
        input_example=input_example,
        pip_requirements=pip_requirements,
        # validating the example would load the model (and import sentence-transformers):
        # the tests load logged models instead
        validate_serving_input=False,
    )
