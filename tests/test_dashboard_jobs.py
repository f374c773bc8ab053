"""The Status page's "Group unnamed faces again" as a job of the app's runner, driven the
way the browser drives it: real HTTP callbacks (POST /_dash-update-component) to a real
server on a generated library. A regrouping held at its first step (a gate on its
progress) shows that a second start is refused and that the progress is shown; then a
real one runs to the end and the faces are regrouped."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import plotly
import pytest
from sqlalchemy import func, select

from dashboard.app import create_app
from dashboard.pages import slideshow as slideshow_page
from dashboard.pages import status
from organizer import jobs
from organizer.db import Library
from organizer.models import ClusterRun
from organizer.testing import generate_library

from .conftest import chromium
from .hardening_tools import DashClient
from .job_tools import WAIT_S, Gate


@pytest.fixture()
def site(tmp_path: Path) -> Iterator[tuple[DashClient, Library, jobs.JobRunner, object]]:
    from werkzeug.serving import make_server

    generate_library(tmp_path / "lib.db", faces=300, named_people=3)
    lib = Library.open(f"sqlite:///{tmp_path / 'lib.db'}")
    app = create_app(lib)
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield DashClient(f"http://127.0.0.1:{server.server_port}"), lib, jobs.shared_runner(app.server.extensions), app
    finally:
        server.shutdown()
        lib.close()


def _runs(lib: Library) -> int:
    with lib.session() as s:
        return s.scalar(select(func.count()).select_from(ClusterRun)) or 0


def _text(node: object) -> str:
    """All the text in a callback answer (component JSON)."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict):
        return " ".join(_text(v) for k, v in node.items() if k in ("props", "children", "response") or
                        isinstance(v, (dict, list)))
    if isinstance(node, list):
        return " ".join(_text(v) for v in node)
    return ""


def _click(client: DashClient) -> dict:
    resp = client.call(client.find("status-regroup"), [1], [], ["status-regroup.n_clicks"])
    assert resp.status_code == 200, resp.text
    return resp.json()["response"]


def _poll(client: DashClient, job_id: str | None) -> dict:
    dep = client.find("status-regroup-tick", "n_intervals")
    resp = client.call(dep, [1], [job_id], ["status-regroup-tick.n_intervals"])
    assert resp.status_code == 200, resp.text
    return resp.json()["response"]


def test_group_again_runs_as_a_job_with_progress_and_refuses_a_second_run(site) -> None:  # type: ignore[no-untyped-def]
    client, lib, runner, app = site
    # the slideshow's exports and the regrouping share the app's one runner
    assert app.server.extensions[slideshow_page.EXTENSION_KEY].runner is runner
    runs = _runs(lib)

    gate = Gate()
    held = runner.start(status.REGROUP, lambda p: jobs.cluster_job(lib)(gate.wrap(p)), total=4)
    gate.wait_step()                                   # running, at "starting"
    answer = _click(client)
    assert "the faces are being grouped already" in _text(answer["app-alert"])
    assert set(answer) == {"app-alert"}                # nothing else changed: no second job
    assert [j.id for j in runner.jobs(status.REGROUP)] == [held.id]

    # the page opened meanwhile shows the running regrouping and does not offer a second
    with app.server.app_context():
        page = json.dumps(status.layout(lib), cls=plotly.utils.PlotlyJSONEncoder)
    assert "Grouping the unnamed faces: step 1 of 4" in page and '"disabled":true' in page.replace(" ", "")
    polled = _poll(client, held.id)
    assert "step 1 of 4" in _text(polled["status-regroup-status"])
    assert polled["status-regroup-tick"]["disabled"] is False

    gate.release(20)                                   # let it run to the end
    assert runner.wait(held.id, WAIT_S).state == "done", held.message
    polled = _poll(client, held.id)
    assert polled["status-regroup-tick"]["disabled"] is True
    assert "Grouped " in _text(polled["app-alert"]) and polled["app-refresh"]["data"]   # toast, page redrawn
    assert _runs(lib) == runs + 1

    # a real click: the job starts, its progress is polled until the toast says it is done
    answer = _click(client)
    job_id = answer["status-regroup-job"]["data"]
    assert runner.get(job_id) is not None and answer["status-regroup"]["disabled"] is True
    deadline = time.monotonic() + WAIT_S
    while True:
        polled = _poll(client, job_id)
        if polled["status-regroup-tick"]["disabled"]:
            break
        assert time.monotonic() < deadline, "the regrouping did not finish"
        time.sleep(0.1)
    assert "Grouped " in _text(polled["app-alert"]) and "faces into" in _text(polled["app-alert"])
    assert _runs(lib) == runs + 2
    assert _poll(client, "0" * 32)["status-regroup-tick"]["disabled"] is True   # an unknown job just stops polling


def test_the_synchronous_regroup_goes_through_a_runner_too(tmp_path: Path) -> None:
    generate_library(tmp_path / "lib.db", faces=200, named_people=3)
    lib = Library.open(f"sqlite:///{tmp_path / 'lib.db'}")
    runner = jobs.JobRunner()
    try:
        fb = status.regroup(lib, runner)
        assert fb.ok and fb.message.startswith("Grouped ") and fb.link == ("Review groups", "/review")
        job = runner.latest(status.REGROUP)
        assert job is not None and job.state == "done" and job.done == job.total == 4
    finally:
        lib.close()


@pytest.mark.browser
def test_group_again_in_chromium(site) -> None:  # type: ignore[no-untyped-def]
    """In a real browser: a page opened while a regrouping runs shows its progress with the
    button disabled; the end is a toast and the counts are drawn again; the button then
    starts a new regrouping that ends the same way."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    client, lib, runner, _app = site
    runs = _runs(lib)
    gate = Gate()
    held = runner.start(status.REGROUP, lambda p: jobs.cluster_job(lib)(gate.wrap(p)), total=4)
    gate.wait_step()
    driver = chromium("--disable-dev-shm-usage", "--window-size=1280,860")

    def grouped_toast(d) -> str | None:  # type: ignore[no-untyped-def]
        texts = [t.text for t in d.find_elements(By.CSS_SELECTOR, ".toast-ok")]
        return next((t for t in texts if "Grouped" in t), None)

    try:
        # the page is drawn again after a regrouping: an element found a moment ago may be gone
        wait = WebDriverWait(driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))
        driver.get(f"{client.base}/status")
        running = wait.until(lambda d: [e.text for e in d.find_elements(By.ID, "status-regroup-running")])[0]
        assert "step 1 of 4" in running
        assert not driver.find_element(By.ID, "status-regroup").is_enabled()
        gate.release(20)
        toast = wait.until(grouped_toast)
        assert "faces into" in toast and runner.get(held.id).state == "done"
        wait.until(lambda d: not d.find_elements(By.ID, "status-regroup-running"))
        wait.until(lambda d: all(b.is_enabled() for b in d.find_elements(By.ID, "status-regroup")))
        assert _runs(lib) == runs + 1
        for close in driver.find_elements(By.CSS_SELECTOR, ".toast-close"):
            close.click()
        wait.until(lambda d: grouped_toast(d) is None)
        driver.find_element(By.ID, "status-regroup").click()
        wait.until(grouped_toast)
        wait.until(lambda _d: _runs(lib) == runs + 2)
    finally:
        driver.quit()
