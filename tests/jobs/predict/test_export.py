"""`sertool export`: runs and ensembles as self-contained MLflow pyfunc models that answer what
`sertool predict` answers, loaded in-process and served by `mlflow models serve` on 127.0.0.1; and
`sertool ensemble --register` putting one in the Model Registry under an alias."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sertool.cli import app
from sertool.labels import ATTRIBUTES, CLASSES

NUMBERS = ["start_s", "end_s", *(f"p_{c}" for c in CLASSES), *ATTRIBUTES]


def sertool(setup, *args: str, store=None):
    res = CliRunner().invoke(app, ["--store", str(store or setup.layout.root), *args])
    assert res.exit_code == 0, res.output
    return res


def predicted(setup, run: str, files, *extra: str, store=None) -> pd.DataFrame:
    """What `sertool predict RUN FILES --format csv` prints, as a frame."""
    res = sertool(setup, "predict", run, *map(str, files), "--format", "csv", *extra, store=store)
    return pd.DataFrame(list(csv.DictReader(io.StringIO(res.stdout))))


def same(model: pd.DataFrame, cli: pd.DataFrame) -> None:
    assert list(model.file) == list(cli.file) and list(model.window) == list(cli.window)
    assert list(model.pred_class) == list(cli.pred_class)
    assert [t or "" for t in model.transcript] == list(cli.transcript)
    np.testing.assert_allclose(model[NUMBERS].to_numpy(float), cli[NUMBERS].to_numpy(float), atol=2e-6)


def test_an_exported_ensemble_predicts_what_sertool_predict_does(setup, cli_env, tmp_path):
    import mlflow.pyfunc

    out = tmp_path / "ens-nested"
    res = sertool(setup, "export", "ens-nested", str(out))
    assert "exported ens-nested" in res.stdout and "2 checkpoint(s)" in res.stdout
    manifest = json.loads((out / "artifacts" / "sertool" / "export.json").read_text())
    assert manifest["label_map"]["H"] == "Happy" and set(manifest["encoders"]) == {"whisper", "wavlm", "roberta"}
    assert all(e["fingerprint"] == setup.encoders[n].record.fingerprint for n, e in manifest["encoders"].items())
    assert (out / "code" / "sertool" / "jobs" / "export.py").exists()  # the code travels with the model
    assert (out / "artifacts" / "sertool" / "models" / "tiny" / "tiny.json").exists()  # its encoders' weights too

    model = mlflow.pyfunc.load_model(str(out))
    a = setup.audio
    got = model.predict(pd.DataFrame({"path": [str(a["short"]), str(a["long"]), str(a["broken"])]}))
    ok = got[got.error.isna()].reset_index(drop=True)
    same(ok, predicted(setup, "ens-nested", [a["short"], a["long"]]))  # Whisper ASR on both sides
    (bad,) = got[got.error.notna()].itertuples()
    assert bad.file == str(a["broken"]) and "broken.wav" in bad.error
    with_text = model.predict(pd.DataFrame({"path": [str(a["long"])], "transcript": ["hi there"]}))
    same(with_text, predicted(setup, "ens-nested", [a["long"]], "--transcript", "hi there"))


def test_a_stacked_ensemble_exports_with_its_meta_models(setup, stacked, cli_env, tmp_path, monkeypatch):
    import mlflow.pyfunc

    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", stacked.experiment)
    out = tmp_path / "stack"
    sertool(setup, "export", "stack-t2", str(out))
    manifest = json.loads((out / "artifacts" / "sertool" / "export.json").read_text())
    assert manifest["plan"]["spec"]["meta"]  # the meta-models, as plain numbers
    model = mlflow.pyfunc.load_model(str(out))
    got = model.predict(pd.DataFrame({"path": [str(setup.audio["short"])], "transcript": ["well then"]}))
    same(got, predicted(setup, "stack-t2", [setup.audio["short"]], "--transcript", "well then"))


def test_export_refuses_a_directory_in_use(setup, cli_env, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("mine")
    res = CliRunner().invoke(app, ["--store", str(setup.layout.root), "export", "tiny-a", str(tmp_path / "full")])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["x"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM to its process group (mlflow and the uvicorn worker it started), SIGKILL if it lingers."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    server.stdout.close()


@pytest.mark.slow
def test_mlflow_models_serve_answers_like_sertool_predict(setup, cli_env, tmp_path):
    out = tmp_path / "tiny-b"
    sertool(setup, "export", "tiny-b", str(out))
    port = _free_port()
    # mlflow execs `uvicorn` by name: the venv's bin must be on PATH, as it is where the venv is activated
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PATH": path}
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(out), "--env-manager", "local",
           "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow models serve did not come up:\n{server.stdout.read()[-3000:]}")
            time.sleep(0.5)
        a = setup.audio
        body = {"dataframe_split": {"columns": ["path", "transcript"],
                                    "data": [[str(a["short"]), "well then"], [str(a["long"]), "hi there"]]}}
        req = urllib.request.Request(f"{url}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            served = pd.DataFrame(json.loads(r.read())["predictions"])
    finally:
        _stop(server)
    short = predicted(setup, "tiny-b", [a["short"]], "--transcript", "well then")
    long = predicted(setup, "tiny-b", [a["long"]], "--transcript", "hi there")
    same(served.reset_index(drop=True), pd.concat([short, long], ignore_index=True))


def test_ensemble_register_puts_it_in_the_registry_under_an_alias(setup, stacked, cli_env, tmp_path, monkeypatch):
    import mlflow.pyfunc

    from sertool.tracking.registry import model_alias

    shutil.copytree(setup.layout.models, stacked.layout.models, dirs_exist_ok=True)  # the encoders it was made with
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", stacked.experiment)
    bad = CliRunner().invoke(app, ["--store", str(stacked.layout.root), "ensemble", "--register", "no/slash"])
    assert bad.exit_code == 2 and "--register" in bad.output
    res = sertool(setup, "ensemble", "--task", "2", "--method", "stack", "--top", "2", "--folds", "4",
                  "--stages", "task2", "--name", "reg-t2", "--register", "sertool-ser", "--alias", "submitted",
                  store=stacked.layout.root)
    assert "registered: sertool-ser version 1 (alias @submitted" in res.stdout
    version, run_id = model_alias(setup.tracker, "sertool-ser", "submitted")
    assert version == "1" and setup.tracker.get_run(run_id).name == "reg-t2"
    assert len(setup.tracker.get_run(run_id).model_ids) == 1  # the exported model is the ensemble run's output
    assert os.environ["MLFLOW_TRACKING_URI"] == setup.uri  # models:/ URIs resolve through MLflow's global URI
    model = mlflow.pyfunc.load_model("models:/sertool-ser@submitted")
    got = model.predict(pd.DataFrame({"path": [str(setup.audio["short"])], "transcript": ["well then"]}))
    same(got, predicted(setup, "reg-t2", [setup.audio["short"]], "--transcript", "well then"))
