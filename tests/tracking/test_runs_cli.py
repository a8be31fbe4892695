"""`sertool runs` lists what was tracked; `sertool ui` really serves the store over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sertool.cli import app
from sertool.metrics import CCC, F1, best
from sertool.tracking.names import STAGE_TAG
from sertool.tracking.server import port_free, wait_healthy

CCC_VALENCE = {"ft-low": 0.31, "ft-high": 0.67, "ft-mid": 0.55}


@pytest.fixture(scope="module")
def runs_logged(tracker):
    for name, v in CCC_VALENCE.items():
        with tracker.start("train", run_name=name, tags={STAGE_TAG: "task2"}) as run:
            run.log_metrics({best(CCC["valence"]): v, best(F1): 0.25})
    with tracker.start("ensemble", run_name="ens-top2") as run:
        run.log_metrics({"dev_ccc_valence": 0.7})
    return tracker


@pytest.fixture
def env(store_uri, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "sertool-test")
    monkeypatch.setenv("COLUMNS", "160")


def test_runs_lists_and_sorts(runs_logged, env):
    runner = CliRunner()
    res = runner.invoke(app, ["runs", "--sort", "ccc_valence", "--kind", "train"])
    assert res.exit_code == 0, res.output
    positions = [res.output.index(name) for name in sorted(CCC_VALENCE, key=CCC_VALENCE.get, reverse=True)]
    assert positions == sorted(positions)  # best valence CCC first
    assert "task2" in res.output and "0.6700" in res.output and "ens-top2" not in res.output

    res = runner.invoke(app, ["runs", "--kind", "ensemble"])
    assert res.exit_code == 0 and "ens-top2" in res.output and "0.7000" in res.output  # dev_* shown for ensembles
    assert "ft-low" not in res.output

    res = runner.invoke(app, ["runs", "--experiment", "missing"])
    assert res.exit_code == 2 and "no experiment named 'missing'" in res.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_serves_the_tracking_store(runs_logged, store_uri, tmp_path):
    port = _free_port()
    sertool = Path(sys.executable).with_name("sertool")
    env = os.environ | {"MLFLOW_TRACKING_URI": store_uri}
    proc = subprocess.Popen(
        [str(sertool), "ui", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    seen: list[str] = []
    # A thread drains stdout line by line (select() on a buffered pipe can miss lines already read
    # into Python's buffer).
    reader = threading.Thread(target=lambda: seen.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        # `sertool ui` announces the URL only once the server answers /health: wait for that line.
        deadline = time.monotonic() + 90
        while not any(f"MLflow UI: {url}" in line for line in list(seen)) and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        assert any(f"MLflow UI: {url}" in line for line in list(seen)), f"no URL announced: {seen}"
        assert wait_healthy(url, timeout=10, proc=proc), "mlflow UI did not answer /health"
        query = "experiments/get-by-name?experiment_name=sertool-test"
        with urllib.request.urlopen(f"{url}/api/2.0/mlflow/{query}", timeout=10) as r:
            assert json.load(r)["experiment"]["name"] == "sertool-test"
        with urllib.request.urlopen(url + "/", timeout=10) as r:
            assert r.status == 200 and b"<html" in r.read(2000).lower()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
    assert "Traceback" not in "".join(seen)
    deadline = time.monotonic() + 15
    while not port_free("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert port_free("127.0.0.1", port), "the mlflow server outlived `sertool ui`"


def test_ui_on_all_interfaces_warns_that_it_has_no_authentication():
    res = CliRunner().invoke(app, ["--tracking-uri", "http://127.0.0.1:9", "ui", "--host", "0.0.0.0"])
    assert res.exit_code == 0
    assert "warning: --host 0.0.0.0 serves the UI to the network" in res.output and "no authentication" in res.output
    res = CliRunner().invoke(app, ["--tracking-uri", "http://127.0.0.1:9", "ui"])
    assert "warning" not in res.output
