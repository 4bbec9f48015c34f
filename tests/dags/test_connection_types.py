"""The hooks' connection types, registered as providers do it, as Airflow and its UI see them."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
from pathlib import Path

import pytest
from embedding_ops.provider_info import CONNECTION_TYPES, get_provider_info

pytestmark = pytest.mark.dag

ROOT = Path(__file__).resolve().parents[2]
TYPES = {
    "argilla": ("argilla_default", "Argilla URL", "API key"),
    "huggingface": ("huggingface_default", "Endpoint (empty = huggingface.co)", "Token"),
    "mlflow": ("mlflow_default", "Tracking URI", None),
}


def test_the_installed_distribution_declares_the_provider_entry_point():
    """``pip install -e .`` (make install) must have registered it: Airflow finds it only so."""
    points = importlib.metadata.entry_points(group="apache_airflow_provider")
    ours = [p for p in points if p.dist is not None and p.dist.name == "embedding-retrain"]
    assert ours, "run `pip install --no-deps -e .`: the provider entry point is not installed"
    assert ours[0].value == "embedding_ops.provider_info:get_provider_info"
    assert ours[0].load() is get_provider_info


def test_provider_info_is_valid_for_airflow_and_names_real_hooks():
    import airflow
    import jsonschema

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    assert {c["connection-type"] for c in info["connection-types"]} == set(TYPES)
    for conn_type, form in CONNECTION_TYPES.items():
        module, name = form["hook-class-name"].rsplit(".", 1)
        hook = getattr(importlib.import_module(module), name)
        # one meaning per type: the hook's own attributes agree with what the UI shows
        assert hook.conn_type == conn_type
        assert hook.hook_name == form["hook-name"]
        assert hook.default_conn_name == TYPES[conn_type][0]
        assert "get_ui_field_behaviour" not in hook.__dict__  # deprecated: declared here instead


def test_the_providers_manager_lists_the_types_with_their_forms():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "embedding-retrain" in manager.providers
    metas = {m.connection_type: m for m in manager.iter_connection_type_hook_ui_metadata()}
    for conn_type, (_, host_label, password_label) in TYPES.items():
        meta = metas[conn_type]
        assert meta.hook_class_name == CONNECTION_TYPES[conn_type]["hook-class-name"]
        assert meta.hook_name == CONNECTION_TYPES[conn_type]["hook-name"]
        assert meta.field_behaviour["relabeling"]["host"] == host_label
        if password_label:
            assert meta.field_behaviour["relabeling"]["password"] == password_label


def test_the_connection_form_metadata_the_ui_asks_for(airflow_db, monkeypatch):
    """``GET /ui/connections/hook_meta``: what Admin -> Connections builds its forms from."""
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "connection-types-tests-" + "x" * 64)
    client = TestClient(create_app())
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="a", role="admin"))
    response = client.get("/ui/connections/hook_meta", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    forms = {m["connection_type"]: m for m in response.json() if m["connection_type"] in TYPES}
    assert set(forms) == set(TYPES)
    argilla = forms["argilla"]
    assert argilla["hook_name"] == "Argilla"
    fields = argilla["standard_fields"]
    assert fields["host"]["title"] == "Argilla URL" and not fields["host"]["hidden"]
    assert fields["password"]["title"] == "API key" and not fields["password"]["hidden"]
    assert fields["login"]["hidden"] and fields["port"]["hidden"]
    assert forms["huggingface"]["standard_fields"]["password"]["title"] == "Token"
    assert forms["huggingface"]["standard_fields"]["login"]["hidden"]
    assert forms["mlflow"]["standard_fields"]["host"]["title"] == "Tracking URI"
    assert forms["mlflow"]["standard_fields"]["login"]["title"] == "Username"
    # a connection saved in that form is one the hook reads
    from embedding_ops.argilla_hook import ArgillaHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_ARGILLA_DEFAULT",
        json.dumps({"conn_type": "argilla", "host": "http://argilla:6900", "password": "k"}),
    )
    assert ArgillaHook().connection_values() == ("http://argilla:6900", "k")
