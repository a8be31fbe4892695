"""A person's view: `sertool ui` serves MLflow's UI over the demo's tracking store and prints the page to
open; headless Chromium, sent there, lands on the store's training runs (not MLflow's GenAI overview),
finds the ensemble run by name, and sees the Dataset column filled (each run's training and evaluation
data) and the Model column linking each run's checkpoint (an MLflow 3 logged model).

MLflow's UI is a React app: the page arrives empty and fills in from the REST API, so the test waits
(bounded) for the text to appear. A screenshot of what the test saw is written to the test's tmp dir;
the test prints its path (`pytest -rP` shows it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PAGE_WAIT_S = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def webdriver():
    """Selenium's webdriver module, or a skip (with the reason) where headless Chromium is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("headless Chromium is not installed: apt-get install -y chromium chromium-driver (.ci/run does it)")
    return webdriver


@pytest.fixture
def ui_server(quick_demo):
    """`sertool ui` on a free port over the demo's tracking store: (server URL, the page `sertool ui`
    printed); stopped (SIGTERM) after the test."""
    from sertool.tracking.server import wait_healthy

    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": quick_demo.tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    sertool = shutil.which("sertool", path=str(Path(sys.executable).parent)) or "sertool"
    proc = subprocess.Popen([sertool, "ui", "--port", str(port)], env=env, cwd=quick_demo.directory,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_healthy(url, 90, proc):
            proc.kill()
            pytest.fail(f"sertool ui did not come up on {url}:\n{''.join(lines)}")
        deadline = time.monotonic() + 30
        while not any(line.startswith("MLflow UI: ") for line in lines) and time.monotonic() < deadline:
            time.sleep(0.1)
        printed = next((line.split()[2] for line in lines if line.startswith("MLflow UI: ")), None)
        assert printed is not None, "".join(lines)
        yield url, printed
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # sertool ui stops its mlflow server with it
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_browser_lands_on_the_training_runs_with_data_and_models(webdriver, quick_demo, ui_server, tmp_path):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from sertool.tracking import Tracker

    base, printed = ui_server
    tracker = Tracker(quick_demo.tracking_uri, experiment=quick_demo.experiment)
    exp_id = tracker.experiment_id()
    assert printed == f"{base}/#/experiments/{exp_id}/runs?workflowType=machine_learning"
    exp = tracker.client.get_experiment(exp_id)
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"
    run_name = quick_demo.ensembles[2].name
    pretrain = tracker.find_runs(filter_string="attributes.run_name = 'demo-pretrain'")[0]
    model = tracker.client.get_logged_model(pretrain.model_ids[0])
    dataset = next(d for d in pretrain.datasets if d.context == "training")
    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1600,1000", f"--user-data-dir={tmp_path / 'chromium'}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    shot = tmp_path / "mlflow-ui-runs.png"
    try:
        driver.set_page_load_timeout(PAGE_WAIT_S)
        driver.get(printed)  # a first visit: no workflow type remembered in the browser
        WebDriverWait(driver, PAGE_WAIT_S, poll_frequency=0.5).until(
            lambda d: run_name in d.find_element(By.TAG_NAME, "body").text
            and dataset.name in d.find_element(By.TAG_NAME, "body").text
            and model.name in d.find_element(By.TAG_NAME, "body").text
        )
        driver.save_screenshot(str(shot))
        body = driver.find_element(By.TAG_NAME, "body").text
        where = driver.current_url
        links = [a.get_attribute("href") or "" for a in driver.find_elements(By.TAG_NAME, "a")]
    finally:
        driver.quit()
    print(f"screenshot of the runs page the test saw: {shot}")
    assert shot.stat().st_size > 10_000
    assert f"/experiments/{exp_id}/runs" in where  # still the runs table, not the GenAI overview or traces
    # the same page lists the training runs the ensemble was built from, each with its data and checkpoint
    assert quick_demo.experiment in body and "demo-pretrain" in body
    assert any(f"/models/{model.model_id}" in href for href in links)  # the Model column links the checkpoint
