"""`sertool export RUN_OR_ENSEMBLE DIR`: a model that leaves the tool, as an MLflow pyfunc model.

    run / ensemble -> its plan (as `predict` makes it: averages, stacked meta-models, nested ensembles)
    -> the training runs' fusion checkpoints (safetensors + config), the encoders they need (name, kind,
       layer, checkpoint, fingerprint; the tiny preset's weights copied in), label map, the plan's specs
    -> DIR: an MLflow pyfunc model (`tracking.pyfunc`), sertool's code included

`mlflow.pyfunc.load_model(DIR).predict(df)` takes a DataFrame with a `path` column (audio files; an
optional `transcript` column replaces Whisper ASR for that row) and answers exactly what `sertool
predict RUN FILES --format csv` prints: a row per window and one for the whole file. A file that cannot
be used gets one row with its `error` (the others are predicted). The paper encoders load by name (the
Hugging Face cache) or from the `--model-dir` given at export; `model_config={"model_dir": D}` at load
time points elsewhere. `mlflow models serve -m DIR --env-manager local` serves it.

`register_run` exports a run into its own logged model and registers that as a version of a registered
model with an alias (`sertool ensemble --register NAME`).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..audio import DEFAULT_MAX_SECONDS
from ..errors import BadInput, InvalidOption, NotFound, SertoolError
from ..labels import ATTRIBUTES, CLASS_NAMES, CLASSES
from ..store.layout import StoreLayout
from .predict import Plan, PredictConfig, load_plan, predict_file
from .predict_models import Loaded, build_encoders, download_checkpoints, encoder_sources, read_checkpoints

if TYPE_CHECKING:
    import pandas as pd

    from ..tracking.tracker import Tracker

FORMAT = "sertool.export/1"
LOADER = "sertool.jobs.export:load_bundle"
INPUTS = (("path", "string", True), ("transcript", "string", False))
COLUMNS = ("file", "window", "start_s", "end_s", "transcript", "pred_class", *(f"p_{c}" for c in CLASSES),
           *ATTRIBUTES, "error")
"""What the model answers: `sertool predict --format csv`'s columns, and `error` for a file it could not use."""
REQUIREMENTS = ("mlflow", "torch", "torchaudio", "transformers", "tokenizers", "safetensors", "numpy", "pandas",
                "soundfile", "rich")


@dataclass
class ExportReport:
    path: Path
    run: Any
    members: dict[str, dict[str, float]]
    """Target -> training run id -> weight (as `predict` reports it)."""
    encoders: dict[str, dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def _plan_dict(plan: Plan) -> dict[str, Any]:
    return {"run_id": plan.run.run_id, "name": plan.run.name, "kind": plan.run.kind,
            "spec": plan.spec.to_dict() if plan.spec is not None else None,
            "members": {m: _plan_dict(p) for m, p in plan.members.items()}}


def _plan_from(d: dict[str, Any]) -> Plan:
    from ..ensemble.spec import EnsembleSpec
    from ..tracking.records import RunInfo

    run = RunInfo(d["run_id"], d["name"], d["kind"], "FINISHED", "", "", None)
    spec = EnsembleSpec.from_dict(d["spec"]) if d["spec"] is not None else None
    return Plan(run, spec, {m: _plan_from(p) for m, p in d["members"].items()})


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in REQUIREMENTS:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            out.append(name)
    return out


def export_model(layout: StoreLayout, tracker: "Tracker", ref: str, out: str | Path, cfg: PredictConfig) -> ExportReport:
    """Write run or ensemble `ref` as a self-contained pyfunc model at `out` (see the module docstring)."""
    from .. import __file__ as package_init
    from ..tracking.pyfunc import MANIFEST, save_pyfunc

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SertoolError(f"{out}: exists and is not an empty directory; export into a new one")
    run = tracker.resolve_run(ref, cfg.experiment)
    notes: list[str] = []
    plan = load_plan(tracker, run, notes)
    members = plan.weights()
    run_ids = list(dict.fromkeys(r for w in members.values() for r in w))
    with tempfile.TemporaryDirectory(prefix="sertool-export-") as tmp:
        bundle = Path(tmp) / "sertool"
        checkpoints = download_checkpoints(tracker, run_ids, Path(tmp) / "download")
        _, wanted = read_checkpoints(checkpoints, "cpu")  # refuses members trained on other encoders
        sources = encoder_sources(layout, cfg, wanted)
        for rid, (weights, config, _) in checkpoints.items():
            (bundle / "checkpoints" / rid).mkdir(parents=True)
            shutil.copyfile(weights, bundle / "checkpoints" / rid / "model.safetensors")
            (bundle / "checkpoints" / rid / "config.json").write_text(json.dumps(config, indent=1))
        if any(src[2] == "tiny" for src in sources.values()):
            if not (layout.models / "tiny" / "tiny.json").exists():
                raise NotFound(f"{layout.models / 'tiny'}: the tiny preset is not built in this store; export from "
                               "the store the run's embeddings were made in")
            shutil.copytree(layout.models / "tiny", bundle / "models" / "tiny")
        build_encoders(wanted, sources, "cpu", bundle / "models", need_asr=False)  # every fingerprint, checked now
        encoders = {name: {"kind": k, "layer": layer, "preset": p, "model_dir": str(d) if d else None,
                           "fingerprint": wanted[name][0], "dim": wanted[name][2].get("dim")}
                    for name, (k, layer, p, d) in sources.items()}
        manifest = {"format": FORMAT, "loader": LOADER, "run": {"id": run.run_id, "name": run.name, "kind": run.kind},
                    "plan": _plan_dict(plan), "members": members, "encoders": encoders,
                    "classes": list(CLASSES), "label_map": {c: CLASS_NAMES.get(c, c) for c in CLASSES},
                    "attributes": list(ATTRIBUTES), "window_seconds": cfg.window_seconds, "max_seconds": cfg.max_seconds,
                    "datasets": [d.__dict__ for d in run.datasets]}
        (bundle / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str))
        save_pyfunc(out, bundle, inputs=INPUTS, outputs=[(c, _type(c)) for c in COLUMNS],
                    code=[Path(package_init).parent], requirements=_requirements(),
                    metadata={"sertool_run": run.run_id, "sertool_format": FORMAT})
    _drop_bytecode(out)
    return ExportReport(out, run, members, encoders, notes)


def _type(column: str) -> str:
    return "double" if column in ("start_s", "end_s", *ATTRIBUTES) or column.startswith("p_") else "string"


def _drop_bytecode(out: Path) -> None:
    """The copied package's __pycache__ folders are this interpreter's; the model needs none."""
    for cache in list(out.glob("code/**/__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)


# -- inside the model ------------------------------------------------------------------------------------

def load_bundle(bundle: Path, config: dict[str, Any]) -> Any:
    """The predictor of an exported model's folder: DataFrame of `path` (+ `transcript`) -> `COLUMNS`.

    `config` (MLflow's model_config): `model_dir` (where the paper checkpoints are), `device`."""
    manifest = json.loads((bundle / "export.json").read_text())
    if manifest.get("format") != FORMAT:
        raise SertoolError(f"{bundle}: an export of format {manifest.get('format')!r}, this sertool reads {FORMAT}")
    device = str(config.get("device", "cpu"))
    cfg = PredictConfig(window_seconds=float(manifest["window_seconds"]),
                        max_seconds=float(manifest.get("max_seconds", DEFAULT_MAX_SECONDS)), device=device)
    checkpoints = {rid: (bundle / "checkpoints" / rid / "model.safetensors",
                         json.loads((bundle / "checkpoints" / rid / "config.json").read_text()), rid[:8])
                   for rid in sorted(p.name for p in (bundle / "checkpoints").iterdir())}
    models, wanted = read_checkpoints(checkpoints, device)
    override = config.get("model_dir")
    sources = {n: (e["kind"], e["layer"], e["preset"], Path(override or e["model_dir"]) if (override or e["model_dir"])
                   else None) for n, e in manifest["encoders"].items()}
    encoders, asr = build_encoders(wanted, sources, device, bundle / "models", need_asr=True)
    loaded = Loaded(models, encoders, asr)
    plan = _plan_from(manifest["plan"])

    def predict(df: "pd.DataFrame") -> "pd.DataFrame":
        return _predict_frame(loaded, plan, cfg, df)

    return predict


def _predict_frame(loaded: Loaded, plan: Plan, cfg: PredictConfig, df: "pd.DataFrame") -> "pd.DataFrame":
    import math

    import pandas as pd

    if "path" not in df.columns:
        raise BadInput("input", "the DataFrame needs a `path` column of audio files", field="path")
    rows: list[dict[str, Any]] = []
    texts = df["transcript"] if "transcript" in df.columns else [None] * len(df)
    for path, text in zip(df["path"], texts):
        given = None if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
        try:
            for p in predict_file(loaded, plan, Path(str(path)), replace(cfg, transcript=given)):
                d = p.to_dict()
                rows.append({"file": str(path), "window": str(d["window"]), "start_s": d["start_s"],
                             "end_s": d["end_s"], "transcript": d["transcript"], "pred_class": d["pred_class"],
                             **{f"p_{c}": d["probabilities"][c] for c in CLASSES},
                             **{a: d[a] for a in ATTRIBUTES}, "error": None})
        except BadInput as e:
            rows.append({"file": str(path), "error": str(e)})
    return pd.DataFrame(rows, columns=list(COLUMNS))


# -- into the registry ------------------------------------------------------------------------------------

_NAME = re.compile(r"^[\w][\w.\- ]{0,249}$")


def check_model_name(name: str) -> str:
    """A registered model name we accept (letters, digits, `_ - . space`): refused before any work."""
    if not _NAME.match(name):
        raise InvalidOption("register", f"{name!r}: use letters, digits, '_', '-', '.' and spaces")
    return name


@dataclass
class Registered:
    name: str
    version: str
    alias: str
    model_id: str


def register_run(layout: StoreLayout, tracker: "Tracker", run_id: str, name: str, alias: str, *,
                 experiment: str | None = None, cfg: PredictConfig | None = None) -> Registered:
    """Export run `run_id` as a pyfunc model, attach it to the run as a logged model, and register it as a
    new version of `name` with `alias` pointing at it."""
    from ..tracking.logger import clean_model_name
    from ..tracking.registry import log_model, register_model

    check_model_name(name)
    cfg = cfg or PredictConfig(experiment=experiment)
    run = tracker.get_run(run_id)
    with tempfile.TemporaryDirectory(prefix="sertool-register-") as tmp:
        export_model(layout, tracker, run_id, Path(tmp) / "model", cfg)
        model_id = log_model(tracker, run_id, Path(tmp) / "model", name=clean_model_name(run.name, "pyfunc"),
                             model_type="sertool-pyfunc")
    if model_id is None:
        raise SertoolError("this process does not log (a torchrun rank other than 0)")
    version = register_model(tracker, name, model_id, alias,
                             description="sertool speech emotion models (`sertool ensemble --register`)")
    return Registered(name, version, alias, model_id)
