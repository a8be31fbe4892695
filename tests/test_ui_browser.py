"""A person's view: `sertool ui` serves MLflow's UI over the demo's tracking store, and headless Chromium
finds the ensemble run by name on the experiment's runs page.

MLflow's UI is a React app: the page arrives empty and fills in from the REST API, so the test waits
(bounded) for the run name to appear in the rendered text. A screenshot lands in the test's tmp dir.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
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
    """`sertool ui` on a free port over the demo's tracking store; stopped (SIGTERM) after the test."""
    from sertool.tracking.server import wait_healthy

    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": quick_demo.tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    sertool = shutil.which("sertool", path=str(Path(sys.executable).parent)) or "sertool"
    proc = subprocess.Popen([sertool, "ui", "--port", str(port)], env=env, cwd=quick_demo.directory,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_healthy(url, 90, proc):
            proc.kill()
            pytest.fail(f"sertool ui did not come up on {url}:\n{proc.communicate()[0]}")
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # sertool ui stops its mlflow server with it
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_browser_finds_the_ensemble_run(webdriver, quick_demo, ui_server, tmp_path):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from sertool.tracking import Tracker

    exp_id = Tracker(quick_demo.tracking_uri, experiment=quick_demo.experiment).experiment_id()
    run_name = quick_demo.ensembles[2].name
    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,900", f"--user-data-dir={tmp_path / 'chromium'}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    try:
        driver.set_page_load_timeout(PAGE_WAIT_S)
        driver.get(f"{ui_server}/#/experiments/{exp_id}/runs")
        WebDriverWait(driver, PAGE_WAIT_S, poll_frequency=0.5).until(
            lambda d: run_name in d.find_element(By.TAG_NAME, "body").text
        )
        shot = tmp_path / "mlflow-ui-runs.png"
        driver.save_screenshot(str(shot))
        body = driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.quit()
    assert shot.stat().st_size > 10_000
    # The same page lists the training runs the ensemble was built from.
    assert quick_demo.experiment in body and "demo-pretrain" in body
