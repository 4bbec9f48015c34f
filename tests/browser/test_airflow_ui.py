"""The Airflow UI as a user meets it: a real headless Chromium against ``bin/airflow-ui``.

``bin/airflow-ui`` (what ``make airflow`` runs) starts the api-server, scheduler, dag-processor,
triggerer and the MLflow UI on a private state directory; the browser signs in with the login it
printed, opens the trigger form, refuses bad values, trains a tiny model from the form, reads the
run's report inside the UI and opens the Argilla connection form. Ctrl-C stops it all. The
screenshots of the form, its error and the report view are written to ``docs/screenshots/``.

The tests run in file order and share one UI and one browser (the run trained in one test is the
run whose report the next one reads).
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.config import config_fields

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "screenshots"
DAG_ID = "retrain_embeddings"
#: 03:00 on 29 February: unpausing the DAG from the form starts no catch-up nightly run.
LEAP_DAY_CRON = "0 3 29 2 *"
SECTIONS = list(dict.fromkeys(f.metadata["section"] for f in config_fields()))
TIMINGS: dict[str, float] = {}


def _unavailable(what: str, reason: str) -> None:
    message = f"{what} could not start: {reason}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _small_pairs(path: Path, n_docs: int = 30) -> Path:
    """A small data set: 2 questions about each of ``n_docs`` short passages."""
    rng = random.Random(7)
    topics = ["retries", "queues", "alerts", "backups", "metrics", "tokens", "caches", "shards"]
    rows = []
    for i in range(n_docs):
        a, b = rng.sample(topics, 2)
        doc = f"Passage {i} explains how {a} interact with {b} in service number {i}."
        rows.append({"query": f"how do {a} work with {b} in service {i}?", "document": doc})
        rows.append({"query": f"service {i}: {b} and {a}", "document": doc})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _shrink(path: Path) -> None:
    """Keep a screenshot small: a 64-colour palette PNG."""
    from PIL import Image

    with Image.open(path) as image:
        image.convert("RGB").quantize(colors=64).save(path, optimize=True)


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    from support.browser import AirflowUI

    root = tmp_path_factory.mktemp("airflow-ui")
    data = _small_pairs(root / "pairs.jsonl")
    # the state `make demo` leaves: its data set, which becomes the form's default data path
    demo = root / "state" / "demo" / "pairs.jsonl"
    demo.parent.mkdir(parents=True)
    subprocess.run(
        [sys.executable, "-m", "tasks", "demo-data", "--out", str(demo)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    launcher = AirflowUI(root / "state", env={"EMBED_RETRAIN_CRON": LEAP_DAY_CRON})
    try:
        launcher.start()
    except RuntimeError as exc:
        _unavailable("bin/airflow-ui", str(exc).splitlines()[0])
    TIMINGS["ui startup"] = launcher.startup_seconds
    launcher.data = data
    launcher.demo_data = demo
    yield launcher
    launcher.stop()


@pytest.fixture(scope="module")
def browser(ui):
    from support.browser import Browser

    chromium = Browser()
    try:
        chromium.start()
    except RuntimeError as exc:
        _unavailable("headless Chromium", str(exc))
    chromium.login(ui)
    yield chromium
    chromium.stop()


def _open_form(browser, ui) -> None:
    browser.open(f"{ui.url}/dags/{DAG_ID}")
    browser.click(browser.button(label="Trigger Dag"))
    browser.wait("the form's sections", lambda: browser.button(SECTIONS[-1]))


def _section(browser, name: str) -> None:
    header = browser.button(name)
    if header.get_attribute("aria-expanded") != "true":
        browser.click(header)
        browser.wait(
            f"the {name} section open", lambda: header.get_attribute("aria-expanded") == "true"
        )


def _field(browser, name: str):
    return browser.wait(name, lambda: browser.find(f"[name=element_{name}]"))


def _set_dims(browser, dims: list[int]) -> None:
    """Edit the JSON editor of ``matryoshka_dims`` as a user types into it."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    editor = browser.find("#element_matryoshka_dims .monaco-editor")
    browser.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", editor)
    inner = ", ".join(map(str, dims))
    # the editor closes a bracket by itself before whitespace: type the items, then wrap them
    (
        ActionChains(browser.driver)
        .move_to_element(editor)
        .click()
        .key_down(Keys.CONTROL)
        .send_keys("a")
        .key_up(Keys.CONTROL)
        .send_keys(inner)
        .send_keys(Keys.HOME)
        .send_keys("[")
        .send_keys(Keys.END)
        .send_keys("]")
        .perform()
    )
    browser.wait(f"dims {dims} in the editor", lambda: _editor_numbers(editor.text) == dims)


def _editor_numbers(text: str) -> list[int]:
    """The JSON list in the editor's text (which starts with its line numbers)."""
    if "[" not in text or "]" not in text:
        return []
    return json.loads(text[text.index("[") : text.rindex("]") + 1])


def _trigger_button(browser):
    return browser.button("Trigger")


def _labels_with_required_mark(browser) -> set[str]:
    """The field labels the form marks required (``*``)."""
    marked = set()
    for label in browser.find_all("label[data-required]"):
        # textContent: labels of collapsed sections are in the page but not shown
        marked.add(label.get_attribute("textContent").replace("*", "").strip())
    return marked


def test_trigger_form_opens_with_every_section_and_an_enabled_trigger(ui, browser):
    started = time.monotonic()
    _open_form(browser, ui)
    for name in SECTIONS:
        assert browser.button(name).is_displayed(), name
    required = _labels_with_required_mark(browser)
    titles = {f.metadata["title"]: f for f in config_fields()}
    optional = {t for t, f in titles.items() if f.metadata.get("optional")}
    assert optional and not (optional & required), optional & required
    assert {"Base model", "Epochs", "Matryoshka dims"} <= required
    _section(browser, "Data")
    # help text under each field; an enum is a dropdown; the default data is the demo's
    browser.wait("the Data section's help", lambda: "pairs come from." in browser.text())
    assert _field(browser, "source").get_attribute("value") == "local"
    assert _field(browser, "data_path").get_attribute("value") == str(ui.demo_data)
    browser.driver.execute_script(
        "arguments[0].scrollIntoView({block: 'start'})", browser.button("Run")
    )
    trigger = _trigger_button(browser)
    assert trigger.is_enabled(), "the Trigger button is disabled with the form's defaults"
    _shrink(browser.screenshot(SHOTS / "trigger-form.png"))
    TIMINGS["form opens"] = time.monotonic() - started
    # ... and the defaults submit: a run is created with them (kept from starting by leaving the
    # DAG paused, then deleted, so that the next tests' runs are the only ones)
    # the form's "Unpause ... on trigger" box (a checkbox; the page's pause toggle is a switch)
    box = browser.wait(
        "the unpause box", lambda: browser.find("label[data-scope=checkbox][data-part=root]")
    )
    assert "npause" in box.get_attribute("textContent"), box.get_attribute("textContent")
    if box.get_attribute("data-state") == "checked":
        browser.click(box)
    browser.wait("the unpause box cleared", lambda: box.get_attribute("data-state") == "unchecked")
    browser.click(_trigger_button(browser))
    run = browser.wait("the run of the defaults", lambda: (ui.runs(DAG_ID) or [None])[0])
    assert run["conf"]["data_path"] == str(ui.demo_data), run["conf"]
    assert run["conf"]["hub_repo_id"] is None
    assert run["conf"]["matryoshka_dims"] == [384, 256, 128, 64]
    assert ui.api("GET", f"/api/v2/dags/{DAG_ID}")["is_paused"], "the form unpaused the DAG"
    # a queued run cannot be deleted: mark it failed first (paused, it never started a task)
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}"
    ui.api_raw("PATCH", path, json={"state": "failed"})
    ui.api_raw("DELETE", path)


def test_bad_values_are_refused_in_the_form(ui, browser):
    _open_form(browser, ui)
    runs_before = len(ui.runs(DAG_ID))
    _section(browser, "Training")
    batch = _field(browser, "batch_size")
    browser.type_into(batch, "0", exact=False)
    # the number box keeps to the param's bounds: 0 is below the minimum batch size of 2
    browser.wait("the batch size clamped to 2", lambda: batch.get_attribute("value") == "2")
    _section(browser, "Model")
    _set_dims(browser, [64, 384])
    browser.click(_trigger_button(browser))
    message = "matryoshka_dims must go from large to small, got [64, 384]; use [384, 64]"
    browser.wait("the rule's message in the form", lambda: message in browser.text())
    alert = browser.wait(
        "the error alert",
        lambda: [a for a in browser.find_all("[data-testid=error-alert]") if message in a.text],
    )[0]
    browser.driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", alert)
    _shrink(browser.screenshot(SHOTS / "trigger-form-error.png"))
    assert len(ui.runs(DAG_ID)) == runs_before, "a refused trigger created a run"


def test_a_user_trains_a_tiny_model_from_the_form(ui, browser, tiny_model_dir):
    _open_form(browser, ui)
    _section(browser, "Data")
    browser.type_into(_field(browser, "data_path"), str(ui.data))
    _section(browser, "Model")
    browser.type_into(_field(browser, "base_model"), str(tiny_model_dir))
    _set_dims(browser, [64, 32])
    _section(browser, "Training")
    browser.type_into(_field(browser, "epochs"), "1")
    browser.type_into(_field(browser, "batch_size"), "4")
    browser.type_into(_field(browser, "best_metric_dim"), "32")
    browser.type_into(_field(browser, "learning_rate"), "0.001")
    started = time.monotonic()
    browser.click(_trigger_button(browser))
    run = browser.wait("the triggered run", lambda: (ui.runs(DAG_ID) or [None])[0], timeout=60)
    conf = run["conf"]
    assert conf["data_path"] == str(ui.data) and conf["matryoshka_dims"] == [64, 32]
    assert (conf["epochs"], conf["batch_size"], conf["learning_rate"]) == (1, 4, 0.001)
    assert conf["hub_repo_id"] is None and conf["eval_path"] is None  # left empty = not set
    deadline = time.monotonic() + 900
    state = run["state"]
    while state not in ("success", "failed") and time.monotonic() < deadline:
        time.sleep(3)
        state = ui.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}")["state"]
    TIMINGS["tiny run"] = time.monotonic() - started
    from support.browser import dump_logs

    tasks = ui.task_states(DAG_ID, run["dag_run_id"])
    assert state == "success", f"{state}: {tasks}\n{dump_logs(ui)}"
    assert tasks["train"] == "success" and tasks["register"] == "success", tasks
    # ... and the grid view shows it: the run's bar and every task of it as succeeded
    browser.open(f"{ui.url}/dags/{DAG_ID}/runs/{run['dag_run_id']}")
    browser.wait("the run page's success state", lambda: "Success" in browser.text(), timeout=60)
    browser.open(f"{ui.url}/dags/{DAG_ID}")
    browser.wait(
        "a succeeded run in the grid",
        lambda: browser.find_all(f"a[href*='{run['dag_run_id']}']"),
        timeout=60,
    )
    ui.trained_run = run["dag_run_id"]


def test_report_view_shows_the_runs_table_and_chart(ui, browser):
    run_id = getattr(ui, "trained_run", None)
    if run_id is None:
        pytest.fail("no run was trained by the previous test", pytrace=False)
    from tasks.io import safe_name

    run_dir = ui.root / "runs" / DAG_ID / safe_name(run_id)
    metrics = json.loads((run_dir / "report" / "metrics.json").read_text())
    browser.open(f"{ui.url}/dags/{DAG_ID}/runs/{run_id}")
    browser.click(browser.button("Embedding report"))
    frame = browser.wait("the report view's frame", lambda: browser.find("iframe"), timeout=30)
    browser.driver.switch_to.frame(frame)
    try:
        body = browser.wait("the report table", lambda: browser.find("table"), timeout=30)
        text = browser.text()
        figure = f"{metrics['models']['finetuned']['metrics']['32']['ndcg@10']:.4f}"
        assert figure in text, (figure, text[:2000])
        assert "promot" in text.lower() or "reject" in text.lower()
        image = browser.wait("the chart", lambda: browser.find("img"))
        loaded = browser.driver.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", image
        )
        assert loaded and loaded > 100, "the chart did not load"
        assert body.is_displayed()
    finally:
        browser.driver.switch_to.default_content()
    _shrink(browser.screenshot(SHOTS / "report-view.png"))


def test_a_user_creates_the_argilla_connection_in_its_own_form(ui, browser):
    browser.open(f"{ui.url}/connections")
    browser.click(browser.button("Add Connection"))
    browser.type_into(_field_by_name(browser, "connection_id"), "argilla_default")
    select = browser.wait("the connection type box", lambda: browser.find("input[role=combobox]"))
    browser.click(select)
    select.send_keys("Argilla")
    browser.click(browser.wait("the Argilla type", lambda: _option(browser, "Argilla")))
    url = browser.wait("the Argilla URL field", lambda: _input_labelled(browser, "Argilla URL"))
    key = _input_labelled(browser, "API key")
    assert key is not None and key.get_attribute("type") == "password"
    shown = {label.text.replace("*", "").strip() for label in browser.find_all("label")}
    assert not {"Login", "Port", "Schema"} & shown, shown
    browser.type_into(url, "http://argilla.internal:6900")
    browser.type_into(key, "owner.apikey")
    _shrink(browser.screenshot(SHOTS / "connection-form.png"))
    browser.click(browser.button("Save"))
    saved = browser.wait(
        "the saved connection",
        lambda: ui.api("GET", "/api/v2/connections/argilla_default"),
        timeout=30,
    )
    assert saved["conn_type"] == "argilla" and saved["host"] == "http://argilla.internal:6900"


def _field_by_name(browser, name: str):
    return browser.wait(name, lambda: browser.find(f"input[name={name}]"))


def _input_labelled(browser, text: str):
    for label in browser.find_all("label"):
        if label.text.replace("*", "").strip() == text and label.get_attribute("for"):
            found = browser.find_all(f"[id='{label.get_attribute('for')}']")
            if found:
                return found[0]
    return None


def _option(browser, text: str):
    for option in browser.find_all("[role=option]"):
        if option.text.strip() == text and option.is_displayed():
            return option
    return None


def test_ctrl_c_stops_every_component(ui, browser):
    port = ui.port
    assert ui.stop() == 0, ui.output.read_text()[-2000:]
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the api-server still listens"
    print("browser tier timings (s):", {k: round(v, 1) for k, v in TIMINGS.items()})
