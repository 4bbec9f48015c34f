"""A real headless Chromium for the browser tier, and the product's UI started as users start it.

:class:`Browser` drives Debian's ``chromium`` through ``chromedriver`` (selenium), with the flags a
closed network needs (no background networking, no component updates). :class:`AirflowUI` runs
``bin/airflow-ui`` (what ``make airflow`` runs) on a private state directory and a free port, and
reads the URL and login it prints.

Example::

    with AirflowUI(tmp_path) as ui, Browser() as browser:
        browser.login(ui)
        browser.open(ui.url + "/dags/retrain_embeddings")
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from support.mlflow_server import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
UI_LINE = re.compile(
    r"Airflow UI: (?P<url>http://127\.0\.0\.1:\d+)\S*\s+"
    r"\(log in as (?P<user>\S+) / (?P<pw>\S+)\)"
)


def _which(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """Headless Chromium under selenium; :meth:`start` raises RuntimeError saying what is
    missing when it cannot run."""

    def __init__(self, *, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.driver: Any = None
        self._profile: str | None = None

    def start(self) -> Browser:
        try:
            from selenium import webdriver
            from selenium.common.exceptions import WebDriverException
            from selenium.webdriver.chrome.service import Service
        except ImportError:
            raise RuntimeError("selenium is not installed: run make install") from None
        binary = os.environ.get("CHROMIUM") or _which("chromium", "chromium-browser")
        driver = os.environ.get("CHROMEDRIVER") or _which("chromedriver")
        if not binary or not driver:
            raise RuntimeError(
                "Chromium or its driver is missing: apt-get install -y chromium chromium-driver"
            )
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        self._profile = tempfile.mkdtemp(prefix="embed-chromium-")
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={self._profile}"):
            options.add_argument(flag)
        try:
            self.driver = webdriver.Chrome(service=Service(driver), options=options)
        except WebDriverException as exc:
            raise RuntimeError(f"Chromium did not start: {exc.msg}") from None
        self.driver.set_page_load_timeout(60)
        return self

    def stop(self) -> None:
        if self.driver is not None:
            self.driver.quit()
            self.driver = None
        if self._profile:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    def __enter__(self) -> Browser:
        return self.start()

    def __exit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- helpers ------------------------------------------------------------------------------
    def wait(self, what: str, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        """Poll ``predicate`` until it returns something truthy; AssertionError after timeout."""
        deadline = time.monotonic() + (timeout or self.timeout)
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = predicate()
                if value:
                    return value
            except Exception as exc:  # noqa: BLE001 - the page is still rendering
                last_error = exc
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what} (last error: {last_error})")

    def open(self, url: str) -> None:
        self.driver.get(url)

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def button(self, text: str | None = None, *, label: str | None = None) -> Any:
        """The last visible button whose text (or aria-label) is exactly ``text`` (``label``)."""

        def find() -> Any:
            for element in reversed(self.find_all("button, [role=button], [role=tab], a")):
                if not element.is_displayed():
                    continue
                if text is not None and element.text.strip() == text:
                    return element
                if label is not None and element.get_attribute("aria-label") == label:
                    return element
            return None

        return self.wait(f"button {text or label!r}", find)

    def settled(self, element: Any, timeout: float = 10.0) -> Any:
        """``element`` scrolled to the middle of the window, once it has stopped moving.

        A section that is still opening (an animated collapse) moves the fields below it while
        they are clicked; a user waits until it is still, and so does this.
        """
        last: Any = None

        def still() -> bool:
            nonlocal last
            self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
            rect = self.driver.execute_script(
                "const r = arguments[0].getBoundingClientRect();"
                "return [r.x, r.y, r.width, r.height];",
                element,
            )
            same, last = rect == last, rect
            return same and rect[2] > 0 and rect[3] > 0

        self.wait("the element to stop moving", still, timeout=timeout)
        return element

    def click(self, element: Any, *, tries: int = 3) -> None:
        """Click ``element`` as a user does: once it is still; again if an overlay that was on
        its way out (an animation, a closing menu) took the click."""
        from selenium.common.exceptions import ElementClickInterceptedException

        for attempt in range(1, tries + 1):
            self.settled(element)
            try:
                element.click()
                return
            except ElementClickInterceptedException:
                if attempt == tries:
                    raise
                time.sleep(0.5)

    def type_into(self, element: Any, text: str, *, exact: bool = True, tries: int = 3) -> None:
        """Replace an input's content as a user would: select all, type, leave the field.

        A busy page re-renders the form on every keystroke and can drop one; a user types at the
        speed the page keeps up with and sees a dropped letter. With ``exact`` each character is
        typed once the field shows the ones before it, and the field is typed again (``tries``
        times in all) if it still does not hold ``text``. ``exact=False`` types in one go and
        leaves the field as the page made it (a number box that keeps to its bounds, say).
        """
        from selenium.webdriver.common.keys import Keys

        for attempt in range(1, tries + 1):
            self.click(element)
            element.send_keys(Keys.CONTROL, "a")
            element.send_keys(Keys.DELETE)
            if not exact:
                element.send_keys(text, Keys.TAB)
                return
            try:
                self._type_keeping_up(element, text)
            except AssertionError:
                pass  # a keystroke was lost: start the field again
            value = element.get_attribute("value")
            if value == text:
                element.send_keys(Keys.TAB)
                return
            if attempt == tries:
                raise AssertionError(f"typed {text!r} {tries} times, the field holds {value!r}")

    def _type_keeping_up(self, element: Any, text: str) -> None:
        """Type ``text`` one character at a time, each once the field shows those before it."""
        for i, char in enumerate(text):
            element.send_keys(char)
            typed = text[: i + 1]
            self.wait(
                f"the field to show {typed!r}",
                lambda typed=typed: element.get_attribute("value") == typed,
                timeout=5,
            )

    def text(self) -> str:
        return self.find("body").text

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        return path

    def login(self, ui: AirflowUI) -> None:
        """Sign in on the simple auth manager's login page with the login the UI printed."""
        self.open(ui.url + "/")
        user = self.wait("the login form", lambda: self.find("input[name=username]"))
        user.send_keys(ui.username)
        self.find("input[name=password]").send_keys(ui.password)
        self.click(self.button("Sign in"))
        self.wait("the signed-in home page", lambda: "/auth/login" not in self.driver.current_url)


class AirflowUI:
    """``bin/airflow-ui`` on ``root`` (its ``EMBED_HOME``) and a free port, stopped with SIGINT as
    a user's Ctrl-C stops it.

    :param env: extra environment (e.g. ``EMBED_RETRAIN_CRON``, ``EMBED_DATA_PATH``).
    """

    def __init__(
        self, root: Path, *, env: dict[str, str] | None = None, startup_timeout: float = 300.0
    ) -> None:
        self.root = Path(root)
        self.port = free_port()
        self.mlflow_port = free_port()
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.username = ""
        self.password = ""
        self.output = self.root / "airflow-ui.out"
        self.startup_seconds = 0.0
        self._client: httpx.Client | None = None
        self._token: str | None = None

    @property
    def log_dir(self) -> Path:
        return self.root / "airflow" / "ui-logs"

    def start(self) -> AirflowUI:
        self.root.mkdir(parents=True, exist_ok=True)
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "MLFLOW_", "EMBED_", "ARGILLA_", "PYTEST_"))
        }
        env = {**keep, "EMBED_HOME": str(self.root), **self.extra_env}
        started = time.monotonic()
        out = open(self.output, "w")  # noqa: SIM115 - the child keeps it open
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bin" / "airflow-ui"),
                "--port",
                str(self.port),
                "--mlflow-port",
                str(self.mlflow_port),
                "--startup-timeout",
                str(self.startup_timeout),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + self.startup_timeout + 60
        while time.monotonic() < deadline:
            match = UI_LINE.search(self.output.read_text(errors="replace"))
            if match:
                self.url, self.username, self.password = match["url"], match["user"], match["pw"]
                self.startup_seconds = time.monotonic() - started
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        text = self.output.read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"bin/airflow-ui did not print its URL:\n{text}")

    def stop(self) -> int | None:
        """Ctrl-C (SIGINT to its process group) and wait; the launcher's exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        if self._client is not None:
            self._client.close()
        return code

    def __enter__(self) -> AirflowUI:
        return self.start()

    def __exit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- REST, for what a test checks beside the page ------------------------------------------
    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """A REST API v2 call as the UI's user; the decoded JSON answer."""
        return self.api_raw(method, path, **kwargs).json()

    def api_raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self._client is None:
            self._client = httpx.Client(base_url=self.url, timeout=60.0)
        if self._token is None:
            resp = self._client.post(
                "/auth/token", json={"username": self.username, "password": self.password}
            )
            resp.raise_for_status()
            self._token = resp.json()["access_token"]
        resp = self._client.request(
            method, path, headers={"Authorization": f"Bearer {self._token}"}, **kwargs
        )
        resp.raise_for_status()
        return resp

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"order_by": "-run_after"})[
            "dag_runs"
        ]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        tis = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}


def dump_logs(ui: AirflowUI) -> str:
    """The tail of every component's log, for a failure message."""
    parts = []
    for log in sorted(ui.log_dir.glob("*.log")):
        parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-1500:]}")
    return "\n".join(parts) or json.dumps({"output": ui.output.read_text(errors="replace")})
