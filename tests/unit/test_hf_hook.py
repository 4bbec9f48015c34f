"""The Hugging Face hook: the ``huggingface_default`` connection as environment for steps."""

from __future__ import annotations

import json
import logging

import pytest

pytestmark = pytest.mark.unit

TOKEN = "hf_hookTestToken0123456789"


def _hook_env(monkeypatch, conn: dict | None) -> dict[str, str]:
    from embedding_ops.hf_hook import HuggingFaceHook

    if conn is None:
        monkeypatch.delenv("AIRFLOW_CONN_HUGGINGFACE_DEFAULT", raising=False)
    else:
        monkeypatch.setenv("AIRFLOW_CONN_HUGGINGFACE_DEFAULT", json.dumps(conn))
    return HuggingFaceHook().step_env()


def test_no_connection_gives_no_env(monkeypatch):
    assert _hook_env(monkeypatch, None) == {}


def test_password_is_the_token_and_host_the_endpoint(monkeypatch, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    env = _hook_env(
        monkeypatch,
        {"conn_type": "huggingface", "host": "https://hub.internal/", "password": TOKEN},
    )
    assert env == {"HF_TOKEN": TOKEN, "HF_ENDPOINT": "https://hub.internal"}
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err + caplog.text


def test_token_alone_keeps_the_public_hub(monkeypatch):
    env = _hook_env(monkeypatch, {"conn_type": "huggingface", "password": TOKEN})
    assert env == {"HF_TOKEN": TOKEN}


def test_token_from_extra_and_endpoint_from_host_port_schema(monkeypatch):
    env = _hook_env(
        monkeypatch,
        {
            "conn_type": "huggingface",
            "host": "hub.local",
            "port": 8080,
            "schema": "http",
            "extra": {"token": TOKEN},
        },
    )
    assert env == {"HF_TOKEN": TOKEN, "HF_ENDPOINT": "http://hub.local:8080"}


def test_host_without_schema_defaults_to_https(monkeypatch):
    env = _hook_env(monkeypatch, {"conn_type": "huggingface", "host": "hub.local"})
    assert env == {"HF_ENDPOINT": "https://hub.local"}


def test_hook_names_its_connection():
    from embedding_ops.hf_hook import HuggingFaceHook

    assert HuggingFaceHook.default_conn_name == "huggingface_default"
    assert HuggingFaceHook.conn_type == "huggingface"
    assert HuggingFaceHook.conn_name_attr == "hf_conn_id"
    assert HuggingFaceHook(hf_conn_id="other").hf_conn_id == "other"
