"""This project as an Airflow provider: the connection types of its hooks and their forms.

Airflow learns connection types from installed provider distributions, not from the plugins
folder. ``pyproject.toml`` declares the ``apache_airflow_provider`` entry point of the
``embedding-retrain`` distribution, which points at :func:`get_provider_info`; once the project
is installed (``pip install --no-deps -e .``: ``make install``, the Airflow image), Admin ->
Connections offers the three types below in its "Connection Type" list, each with its own labels:

=============== ======================= ==============================================
type            default connection      form fields
=============== ======================= ==============================================
``argilla``     ``argilla_default``     Argilla URL, API key
``huggingface`` ``huggingface_default`` Endpoint (empty = huggingface.co), Token
``mlflow``      ``mlflow_default``      Tracking URI, Username, Password
=============== ======================= ==============================================

The forms are declared here (``ui-field-behaviour``, the Airflow 3.2+ way; hooks'
``get_ui_field_behaviour`` is deprecated), so the API server builds them without importing a
hook. Nothing here imports Airflow.

Example::

    airflow providers get embedding-retrain   # the provider and its connection types
"""

from __future__ import annotations

from typing import Any

#: connection type -> hook class, display name and form (hidden fields, labels, placeholders).
CONNECTION_TYPES: dict[str, dict[str, Any]] = {
    "argilla": {
        "hook-class-name": "embedding_ops.argilla_hook.ArgillaHook",
        "hook-name": "Argilla",
        "ui-field-behaviour": {
            "hidden-fields": ["login", "schema", "port"],
            "relabeling": {"host": "Argilla URL", "password": "API key"},
            "placeholders": {"host": "http://argilla:6900", "password": "argilla.apikey"},
        },
    },
    "huggingface": {
        "hook-class-name": "embedding_ops.hf_hook.HuggingFaceHook",
        "hook-name": "Hugging Face Hub",
        "ui-field-behaviour": {
            "hidden-fields": ["login", "schema", "port"],
            "relabeling": {"host": "Endpoint (empty = huggingface.co)", "password": "Token"},
            "placeholders": {"host": "https://huggingface.co", "password": "hf_..."},
        },
    },
    "mlflow": {
        "hook-class-name": "embedding_ops.mlflow_hook.MlflowHook",
        "hook-name": "MLflow",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port"],
            "relabeling": {"host": "Tracking URI", "login": "Username"},
            "placeholders": {"host": "http://mlflow:5000"},
        },
    },
}


def get_provider_info() -> dict[str, Any]:
    """The provider information Airflow validates against its ``provider_info.schema.json``."""
    return {
        "package-name": "embedding-retrain",
        "name": "Embedding retraining",
        "description": (
            "Connection types of the embedding retraining pipeline: Argilla, Hugging Face Hub "
            "and MLflow."
        ),
        "connection-types": [
            {"connection-type": conn_type, **form} for conn_type, form in CONNECTION_TYPES.items()
        ],
    }
