"""Each DAG run's report as an HTML page inside the Airflow UI (a FastAPI app, pure file reading).

The ``embedding_retrain`` plugin (``plugins/embedding_ui_plugin.py``) mounts :func:`create_app`
under ``/embedding-report`` in the Airflow API server and shows the run page as a tab of every DAG
run's page. Routes, relative to that prefix:

- ``GET /runs/{dag_id}``: the DAG's run directories, newest first, with each run's outcome;
- ``GET /runs/{dag_id}/{run_id}``: the run's report: the promotion gate's decision and reason, the
  charts, per-dim tables of base vs champion vs fine-tuned, links to the MLflow run and registered
  model version. A run whose report step has not finished gets a page that lists the steps done;
- ``GET /runs/{dag_id}/{run_id}/files/{name}``: one of the files the report step writes
  (:data:`tasks.report.OUTPUTS`), from that run's ``report/`` folder; any other name is a 404.

Everything is read from the run directory (``tasks.io.run_dir_for``: the API server needs the same
``EMBED_HOME`` / ``EMBED_ARTIFACT_ROOT`` as the workers); no torch, sentence-transformers or mlflow.
Every route requires the logged-in Airflow user to be allowed to read the DAG's runs: Airflow's own
check, ``requires_access_dag("GET", DagAccessEntity.RUN)``, which reads the UI's session cookie
(``_token``) or an ``Authorization: Bearer`` token.

Example::

    from fastapi.testclient import TestClient

    client = TestClient(create_app(access_check=lambda: None))  # no login, e.g. in tests
    client.get("/runs/retrain_embeddings/manual__2026-01-01T00:00:00+00:00").text
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from embedding_ops.mlflow_hook import MlflowHook
from tasks.io import artifact_root, run_dir_for, safe_name
from tasks.metrics import HEADLINE_METRICS
from tasks.report import OUTPUTS, kept_checkpoint
from tasks.tracking import default_tracking_uri

if TYPE_CHECKING:
    from fastapi import FastAPI

#: The MLflow UI's address as the browser reaches it (e.g. ``http://127.0.0.1:5000``).
MLFLOW_UI_ENV = "EMBED_MLFLOW_UI_URL"
#: Each step task of the retrain DAG and the file that is there once it has finished.
STEP_MARKERS = (
    ("prepare", "data/manifest.json"),
    ("train", "train/summary.json"),
    ("evaluate_base", "eval/base.json"),
    ("evaluate_champion", "eval/champion.json"),
    ("evaluate_finetuned", "eval/finetuned.json"),
    ("report", "report/metrics.json"),  # the report step writes it last
    ("register", "register/result.json"),
    ("publish", "publish/result.json"),
)
MEDIA_TYPES = {
    ".png": "image/png",
    ".json": "application/json",
    ".md": "text/markdown; charset=utf-8",
}
CAPTIONS = {
    "ndcg_by_dim.png": "NDCG@10 by Matryoshka dimension",
    "gate_history.png": "Promotion gate history",
}
MODEL_LABELS = {"base": "base", "finetuned": "fine-tuned"}
#: Runs listed on a DAG's index page (newest first).
INDEX_LIMIT = 200

CSS = """
:root { color-scheme: light dark; --fg: #1f2933; --muted: #616e7c; --line: #d9e2ec;
  --bg: #ffffff; --panel: #f5f7fa; --ok: #2f9e44; --bad: #e03131; --link: #2f6fde; }
@media (prefers-color-scheme: dark) { :root { --fg: #e4e7eb; --muted: #9aa5b1;
  --line: #3e4c59; --bg: #1a202c; --panel: #243040; --link: #7aa7ff; } }
* { box-sizing: border-box; }
body { margin: 0; padding: 16px 20px 32px; font: 14px/1.5 system-ui, -apple-system,
  "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
a { color: var(--link); } code { font-size: 12.5px; word-break: break-all; }
.sub, .note { color: var(--muted); } .sub { margin: 0 0 16px; }
.banner { border-left: 5px solid var(--muted); background: var(--panel); padding: 10px 14px;
  border-radius: 4px; margin: 12px 0; }
.banner.promoted { border-color: var(--ok); } .banner.rejected { border-color: var(--bad); }
.banner strong { font-size: 15px; }
table { border-collapse: collapse; margin: 4px 0 12px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: right; }
th { font-weight: 600; background: var(--panel); }
td:first-child, th:first-child { text-align: left; }
tr.gate td { font-weight: 600; } .pos { color: var(--ok); } .neg { color: var(--bad); }
figure { margin: 8px 0 16px; } figure img { max-width: 100%; height: auto;
  border: 1px solid var(--line); border-radius: 4px; background: #fff; }
figcaption { color: var(--muted); font-size: 12px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dt { color: var(--muted); } dd { margin: 0; }
details summary { cursor: pointer; color: var(--link); margin: 8px 0; }
"""

# The UI shows plugin pages in an iframe sandboxed without ``allow-popups``, and MLflow refuses to
# be framed (X-Frame-Options SAMEORIGIN): a link to another site opens a new tab from the UI's own
# page (same origin as this one), or, outside the UI, as the browser does by itself.
SCRIPT = """
document.addEventListener("click", function (event) {
  var link = event.target.closest && event.target.closest("a[target=_blank]");
  if (!link || window.parent === window) { return; }
  try {
    var doc = window.parent.document, a = doc.createElement("a");
    a.href = link.href; a.target = "_blank"; a.rel = "noopener noreferrer";
    doc.body.appendChild(a); a.click(); a.remove();
    event.preventDefault();
  } catch (e) { /* the page above is another site's: leave the click to the browser */ }
});
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


#: Only this module's own style and script run on its pages; images come from its own routes.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; img-src 'self'; style-src {_csp_hash(CSS)}; "
    f"script-src {_csp_hash(SCRIPT)}; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)


# --- reading a run directory ---------------------------------------------------------------------
def run_directory(dag_id: str, run_id: str, root: Path | None = None) -> Path | None:
    """The run directory of ``dag_id``/``run_id`` if it exists, else None.

    Ids are made path-safe as the steps make them (``tasks.io.safe_name``); ids that would name
    the artifact root or a folder above it (``.``, ``..``, empty) have no run directory.
    """
    if not _is_plain_name(dag_id) or not _is_plain_name(run_id):
        return None
    path = run_dir_for(dag_id, run_id, root)
    return path if path.is_dir() else None


def _is_plain_name(text: str) -> bool:
    return safe_name(text) not in ("", ".", "..")


def _read_json(path: Path) -> Any:
    """The JSON in ``path``; None when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def steps_done(run_dir: Path) -> list[str]:
    """The step tasks whose output is complete in ``run_dir``, in the DAG's order."""
    return [step for step, marker in STEP_MARKERS if (run_dir / marker).is_file()]


def report_file(run_dir: Path, name: str) -> Path | None:
    """``run_dir/report/name`` when ``name`` is one of the report step's files and exists."""
    if name not in OUTPUTS:
        return None
    path = run_dir / "report" / name
    return path if path.is_file() else None


# --- MLflow links --------------------------------------------------------------------------------
def deployment_tracking_uri() -> str | None:
    """The tracking URI steps are given: the ``mlflow_default`` connection's, else the API
    server's ``MLFLOW_TRACKING_URI`` (None when neither is set)."""
    try:
        env = MlflowHook().step_env()
    except Exception:  # no metadata DB, a secrets backend down: no link is better than no page
        env = {}
    return env.get("MLFLOW_TRACKING_URI") or os.environ.get("MLFLOW_TRACKING_URI") or None


def http_base(uri: str | None) -> str | None:
    """``uri`` without credentials, query or trailing slash if it is an http(s) URL, else None.

    ``http://***@mlflow:5000/`` -> ``http://mlflow:5000``; ``sqlite:///...`` -> None.
    """
    if not uri:
        return None
    parts = urlsplit(uri.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def mlflow_ui_base(recorded_uri: str | None = None) -> str | None:
    """The MLflow UI's base URL for links, or None when there is no MLflow server to link to.

    ``$EMBED_MLFLOW_UI_URL`` when set; else the tracking URI the run was registered with
    (``register/result.json``) when it is http(s); for a run without one, the deployment's
    (:func:`deployment_tracking_uri`) when it is http(s).
    """
    explicit = (os.environ.get(MLFLOW_UI_ENV) or "").strip()
    if explicit:
        return explicit.rstrip("/")
    return http_base(recorded_uri or deployment_tracking_uri())


def mlflow_links(registered: dict[str, Any], base: str) -> dict[str, str]:
    """Links into the MLflow UI at ``base`` for register's result: ``run`` and ``version``."""
    links = {}
    if registered.get("mlflow_run_id"):
        links["run"] = f"{base}/#/runs/{quote(str(registered['mlflow_run_id']), safe='')}"
    if registered.get("registered_model") and registered.get("model_version"):
        name = quote(str(registered["registered_model"]), safe="")
        version = quote(str(registered["model_version"]), safe="")
        links["version"] = f"{base}/#/models/{name}/versions/{version}"
    return links


# --- HTML ----------------------------------------------------------------------------------------
def esc(value: Any) -> str:
    """``value`` as text safe inside HTML elements and quoted attributes."""
    return html.escape(str(value), quote=True)


def page(title: str, body: str) -> str:
    """A whole HTML document: ``title`` (escaped here) and ``body`` (HTML, escaped by callers)."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n"
        f"<body>\n{body}\n<script>{SCRIPT}</script></body></html>\n"
    )


def _link(href: str, text: str, *, external: bool = False, download: bool = False) -> str:
    """An ``<a>``; ``external``: to another site (http(s) only, else just the text), new tab."""
    if external and urlsplit(href).scheme not in ("http", "https"):
        return esc(text)
    attrs = ' target="_blank" rel="noopener noreferrer"' if external else ""
    attrs += " download" if download else ""
    return f'<a href="{esc(href)}"{attrs}>{esc(text)}</a>'


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: Any, signed: bool = False) -> str:
    if not _is_number(value):
        return "&ndash;"
    text = f"{value:+.4f}" if signed else f"{value:.4f}"
    if not signed:
        return text
    css = "pos" if value > 0 else "neg" if value < 0 else ""
    return f'<span class="{css}">{text}</span>' if css else text


def _value(models: dict[str, Any], model: str, dim: Any, metric: str) -> Any:
    return (((models.get(model) or {}).get("metrics") or {}).get(str(dim)) or {}).get(metric)


def _delta(new: Any, old: Any) -> float | None:
    return new - old if _is_number(new) and _is_number(old) else None


def metric_names(metrics: dict[str, Any]) -> list[str]:
    """Every metric in ``metrics.json``: the report's headline metrics first, then the others."""
    seen: set[str] = set()
    for block in (metrics.get("models") or {}).values():
        for values in (block.get("metrics") or {}).values():
            seen.update(values)
    headline = [m for m in HEADLINE_METRICS if m in seen]
    return headline + sorted(seen - set(headline))


def metric_table(metrics: dict[str, Any], metric: str, gate: dict[str, Any] | None) -> str:
    """One metric per dim: base, champion (when there is one), fine-tuned and the deltas."""
    models = metrics.get("models") or {}
    champion = "champion" in models
    head = ["dim", "base"]
    if champion:
        head.append(f"champion v{models['champion'].get('version')}")
    head += ["fine-tuned", "vs base"]
    if champion:
        head.append("vs champion")
    gate_dim = str(gate.get("dim")) if gate and gate.get("metric") == metric else None
    rows = []
    for dim in metrics.get("dims") or []:
        base = _value(models, "base", dim, metric)
        tuned = _value(models, "finetuned", dim, metric)
        cells = [esc(dim), _number(base)]
        if champion:
            cells.append(_number(_value(models, "champion", dim, metric)))
        cells += [_number(tuned), _number(_delta(tuned, base), signed=True)]
        if champion:
            champ = _value(models, "champion", dim, metric)
            cells.append(_number(_delta(tuned, champ), signed=True))
        css = ' class="gate" title="the gate dim"' if str(dim) == gate_dim else ""
        rows.append(f"<tr{css}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    header = "".join(f"<th>{esc(h)}</th>" for h in head)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def gate_section(gate: dict[str, Any], applied: bool) -> str:
    """The promotion decision, its reason and its rule (``applied``: as register applied it)."""
    promoted = bool(gate.get("promoted"))
    verdict = "Promoted to champion" if promoted else "Not promoted"
    if not applied:
        verdict += " (proposed: the register step has not applied it yet)"
    css = "promoted" if promoted else "rejected"
    if gate.get("reference") == "champion":
        reference = f"champion v{gate.get('reference_version')}"
    else:
        reference = "the base model"
    rule = ""
    margin, tolerance = gate.get("margin"), gate.get("tolerance")
    if _is_number(margin) and _is_number(tolerance):
        rule = (
            f'<div class="note">Rule: {esc(gate.get("metric"))} at dim {esc(gate.get("dim"))} '
            f"must beat {esc(reference)} by more than {margin:.4f}, and no dim may fall more "
            f"than {tolerance:.4f}.</div>"
        )
    return (
        f'<div class="banner {css}"><strong>{esc(verdict)}</strong>'
        f"<div>{esc(gate.get('reason', ''))}</div>{rule}</div>"
    )


def mlflow_section(registered: dict[str, Any] | None) -> str:
    """The MLflow run and model version: links, or how to open the MLflow UI on the store."""
    if not registered:
        return '<p class="note">Not in MLflow yet: the register step has not finished.</p>'
    run_id = str(registered.get("mlflow_run_id"))
    model = f"{registered.get('registered_model')} v{registered.get('model_version')}"
    recorded = registered.get("tracking_uri")
    base = mlflow_ui_base(recorded)
    items = [("MLflow run", esc(run_id)), ("model version", esc(model))]
    if registered.get("champion_version"):
        items.append(("champion after this run", esc(f"v{registered['champion_version']}")))
    if base:
        links = mlflow_links(registered, base)
        if "run" in links:
            items[0] = ("MLflow run", _link(links["run"], run_id, external=True))
        if "version" in links:
            items[1] = ("model version", _link(links["version"], model, external=True))
        hint = ""
    else:
        store = recorded or default_tracking_uri()
        command = f"mlflow ui --backend-store-uri {store} --host 127.0.0.1 --port 5000"
        hint = (
            '<p class="note">This run is in an MLflow store without a server. Open the MLflow UI '
            f"on it with <code>{esc(command)}</code> (the venv's <code>.venv/bin/mlflow</code>), "
            f"then http://127.0.0.1:5000; set <code>{MLFLOW_UI_ENV}</code> on the Airflow API "
            "server to get links here.</p>"
        )
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f"<dl>{rows}</dl>{hint}"


def _run_facts(run_dir: Path) -> str:
    """Base model, data, training and the Hub push of the run, from the steps' own files."""
    manifest = _read_json(run_dir / "data" / "manifest.json") or {}
    train = _read_json(run_dir / "train" / "summary.json") or {}
    published = _read_json(run_dir / "publish" / "result.json") or {}
    items = []
    if (manifest.get("base_model") or {}).get("ref"):
        items.append(("base model", f"<code>{esc(manifest['base_model']['ref'])}</code>"))
    counts = manifest.get("counts") or {}
    if counts:
        items.append(
            (
                "data",
                esc(
                    f"{counts.get('train_pairs')} training pairs, {counts.get('eval_queries')} "
                    f"eval queries over {counts.get('eval_corpus')} documents"
                ),
            )
        )
    if train:
        text = f"{train.get('epochs')} epoch(s), {train.get('steps')} steps"
        runtime = train.get("train_runtime_s")
        if _is_number(runtime):
            text += f" in {runtime:.0f} s" if runtime >= 10 else f" in {runtime:.1f} s"
        device = (train.get("hardware") or {}).get("device_name")
        text += f" on {device}" if device else ""
        items.append(("training", esc(text)))
        if train.get("checkpoint"):
            reason = train["checkpoint"].get("reason", "")
            items.append(("checkpoint", esc(f"{kept_checkpoint(train)}: {reason}")))
        negatives = train.get("negatives") or {}
        if negatives.get("per_pair"):
            items.append(
                ("negatives", esc(f"{negatives['per_pair']} per pair, {negatives['source']}"))
            )
        alpha = (train.get("wise_ft") or {}).get("alpha")
        if _is_number(alpha) and alpha < 1:
            items.append(("weights", esc(f"base + {alpha:g} x (fine-tuned - base)")))
    if published.get("url"):
        items.append(("published", _link(published["url"], published["url"], external=True)))
    return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _header(dag_id: str, run_id: str) -> str:
    index = _link(f"../{quote(dag_id, safe='')}", f"all runs of {dag_id}")
    return (
        f"<h1>Embedding report</h1><p class='sub'>DAG <code>{esc(dag_id)}</code> &middot; run "
        f"<code>{esc(run_id)}</code> &middot; {index}</p>"
    )


def render_run(dag_id: str, run_id: str, run_dir: Path) -> str:
    """The report page of a run whose report step has finished (``report/metrics.json``)."""
    metrics = _read_json(run_dir / "report" / "metrics.json") or {}
    registered = _read_json(run_dir / "register" / "result.json")
    gate = (registered or {}).get("gate") or _read_json(run_dir / "report" / "gate.json")
    gate = gate or metrics.get("gate")
    files = f"./{quote(run_id, safe='')}/files/"
    parts = [_header(dag_id, run_id)]
    if gate:
        parts.append(gate_section(gate, applied=bool(registered)))
    parts += ["<h2>MLflow</h2>", mlflow_section(registered), "<h2>Run</h2>", _run_facts(run_dir)]
    names = metric_names(metrics)
    headline = [m for m in names if m in HEADLINE_METRICS]
    others = [m for m in names if m not in HEADLINE_METRICS]
    for metric in headline[:1]:  # the first headline metric (NDCG@10) above the charts
        parts += [f"<h2>{esc(metric)}</h2>", metric_table(metrics, metric, gate)]
    charts = [n for n in OUTPUTS if n.endswith(".png") and report_file(run_dir, n)]
    if charts:
        parts.append("<h2>Charts</h2>")
    for name in charts:
        caption = CAPTIONS.get(name, name)
        parts.append(
            f'<figure><img src="{esc(files + quote(name))}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )
    for metric in headline[1:]:
        parts += [f"<h2>{esc(metric)}</h2>", metric_table(metrics, metric, gate)]
    if others:
        parts.append("<details><summary>Every other metric</summary>")
        for metric in others:
            parts += [f"<h2>{esc(metric)}</h2>", metric_table(metrics, metric, gate)]
        parts.append("</details>")
    downloads = [
        _link(files + quote(n), n, download=True)
        for n in OUTPUTS
        if not n.endswith(".png") and report_file(run_dir, n)
    ]
    if downloads:
        parts.append(f"<p class='note'>Files: {' &middot; '.join(downloads)}</p>")
    return page(f"Embedding report: {dag_id} {run_id}", "\n".join(parts))


def render_pending(dag_id: str, run_id: str, run_dir: Path) -> str:
    """The page of a run whose report step has not finished: why, and the steps done so far."""
    done = steps_done(run_dir)
    manifest = _read_json(run_dir / "data" / "manifest.json") or {}
    if manifest.get("nothing_to_do"):
        message = (
            f"This run had nothing to do: {manifest['nothing_to_do']}. Every step after "
            "prepare was skipped, so there is no report."
        )
    else:
        listed = ", ".join(done) if done else "none yet"
        message = f"The report step has not finished for this run; steps done: {listed}."
    body = f"{_header(dag_id, run_id)}<div class='banner'><strong>{esc(message)}</strong></div>"
    return page(f"Embedding report: {dag_id} {run_id}", body)


def run_outcome(run_dir: Path) -> str:
    """One line for the index: the gate decision and version, or how far the run got."""
    registered = _read_json(run_dir / "register" / "result.json")
    if registered:
        decision = (registered.get("gate") or {}).get("decision", "registered")
        model = f"{registered.get('registered_model')} v{registered.get('model_version')}"
        return f"{model}: {decision}"
    gate = _read_json(run_dir / "report" / "gate.json")
    if gate and (run_dir / "report" / "metrics.json").is_file():
        return f"{gate.get('decision')} (not registered)"
    if (_read_json(run_dir / "data" / "manifest.json") or {}).get("nothing_to_do"):
        return "nothing to do"
    done = steps_done(run_dir)
    return f"in progress or failed after: {done[-1]}" if done else "no step finished"


def _run_dirs(dag_dir: Path) -> list[tuple[float, Path]]:
    runs = []
    for path in dag_dir.iterdir():
        if path.is_dir() and not path.name.startswith("."):
            runs.append((path.stat().st_mtime, path))
    return sorted(runs, key=lambda item: item[0], reverse=True)


def render_index(dag_id: str, dag_dir: Path) -> str:
    """The run directories of a DAG, newest first, each linked to its report page."""
    runs = _run_dirs(dag_dir)
    rows = []
    for mtime, path in runs[:INDEX_LIMIT]:
        when = datetime.fromtimestamp(mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")
        link = _link(f"./{quote(dag_id, safe='')}/{quote(path.name, safe='')}", path.name)
        rows.append(f"<tr><td>{link}</td><td>{esc(run_outcome(path))}</td><td>{when}</td></tr>")
    more = ""
    if len(runs) > INDEX_LIMIT:
        more = f"<p class='note'>The newest {INDEX_LIMIT} of {len(runs)}.</p>"
    body = (
        f"<h1>Embedding reports</h1><p class='sub'>DAG <code>{esc(dag_id)}</code>: "
        f"{len(runs)} run director{'y' if len(runs) == 1 else 'ies'}</p>"
        "<table><thead><tr><th>run</th><th>outcome</th><th>last change</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>{more}"
    )
    return page(f"Embedding reports: {dag_id}", body)


def render_error(status_code: int, message: str) -> str:
    """An error page that says what happened in one readable line."""
    titles = {401: "Not logged in", 403: "Not allowed", 404: "Not found"}
    title = titles.get(status_code, "Error")
    body = f"<h1>{esc(title)}</h1><div class='banner rejected'>{esc(message)}</div>"
    return page(title, body)


def _error_message(status_code: int, detail: Any, dag_id: str | None) -> str:
    if status_code == 401:
        return f"Log in to Airflow to see this report ({detail})."
    if status_code == 403:
        what = f"the runs of DAG {dag_id}" if dag_id else "this DAG's runs"
        return f"Your Airflow user may not read {what} ({detail})."
    return str(detail)


# --- the app -------------------------------------------------------------------------------------
def airflow_run_access() -> Callable[..., Any]:
    """Airflow's check that the request's user may read the runs of the path's ``dag_id``.

    Imported here, not at module import: the API server's security module is large, and every
    Airflow process imports the plugins folder.
    """
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return requires_access_dag("GET", DagAccessEntity.RUN)


def create_app(*, access_check: Callable[..., Any] | None = None) -> FastAPI:
    """The report app: HTML pages and report files of run directories (see the module docstring).

    Args:
        access_check: a FastAPI dependency run before every route; default
            :func:`airflow_run_access` (the Airflow user must be allowed to read the DAG's runs).

    Returns:
        A FastAPI app to mount under a prefix (the plugin uses ``/embedding-report``).
    """
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import FileResponse, HTMLResponse
    from starlette.exceptions import HTTPException

    check = access_check or airflow_run_access()
    app = FastAPI(
        title="Embedding run reports",
        dependencies=[Depends(check)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"}

    def html_response(text: str, status_code: int = 200) -> HTMLResponse:
        return HTMLResponse(text, status_code=status_code, headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> HTMLResponse:
        message = _error_message(exc.status_code, exc.detail, request.path_params.get("dag_id"))
        response = html_response(render_error(exc.status_code, message), exc.status_code)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    def no_run(dag_id: str, run_id: str) -> HTTPException:
        return HTTPException(
            404,
            f"No run directory for run {run_id} of DAG {dag_id}: the run has not started a step "
            "yet, the DAG writes no run directories, or the Airflow API server's EMBED_HOME / "
            "EMBED_ARTIFACT_ROOT differs from the workers'.",
        )

    @app.get("/runs/{dag_id}", response_class=HTMLResponse)
    def dag_index(dag_id: str) -> HTMLResponse:
        """The DAG's run directories, newest first."""
        dag_dir = artifact_root() / safe_name(dag_id)
        if not _is_plain_name(dag_id) or not dag_dir.is_dir():
            raise HTTPException(404, f"No run directories for DAG {dag_id}.")
        return html_response(render_index(dag_id, dag_dir))

    @app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse)
    def run_report(dag_id: str, run_id: str) -> HTMLResponse:
        """The run's report page, or what is missing for it."""
        run_dir = run_directory(dag_id, run_id)
        if run_dir is None:
            raise no_run(dag_id, run_id)
        if not (run_dir / "report" / "metrics.json").is_file():
            return html_response(render_pending(dag_id, run_id, run_dir))
        return html_response(render_run(dag_id, run_id, run_dir))

    @app.get("/runs/{dag_id}/{run_id}/files/{name}")
    def run_file(dag_id: str, run_id: str, name: str) -> FileResponse:
        """One of the report step's files (``tasks.report.OUTPUTS``) of the run; else 404."""
        run_dir = run_directory(dag_id, run_id)
        if run_dir is None:
            raise no_run(dag_id, run_id)
        path = report_file(run_dir, name)
        if path is None:
            raise HTTPException(404, f"No report file {name} in run {run_id} of DAG {dag_id}.")
        media_type = MEDIA_TYPES.get(path.suffix, "application/octet-stream")
        return FileResponse(
            path, media_type=media_type, headers={"X-Content-Type-Options": "nosniff"}
        )

    return app
