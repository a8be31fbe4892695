"""`sertool export`: a run or ensemble as a self-contained MLflow pyfunc model in a directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._common import err, out, state
from ._options import MAX_SECONDS, ExperimentOpt, MaxSecondsOpt, ModelDirOpt, Preset


def export(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help="Run or ensemble: id, id prefix or name (as `sertool runs` shows).")],
    directory: Annotated[Path, typer.Argument(help="Where to write the model (a new or empty directory).")],
    preset: Annotated[
        Optional[Preset], typer.Option("--preset", help="Encoder weights (paper|tiny); default: as the store recorded.")
    ] = None,
    model_dir: ModelDirOpt = None,
    window_seconds: Annotated[
        float, typer.Option("--window-seconds", help="Longer files are predicted in windows of this length.")
    ] = 30.0,
    max_seconds: MaxSecondsOpt = MAX_SECONDS,
    experiment: ExperimentOpt = None,
) -> None:
    """Write RUN as an MLflow pyfunc model: `mlflow.pyfunc.load_model(DIR).predict(df)` with a `path` column
    answers what `sertool predict` prints; `mlflow models serve -m DIR --env-manager local` serves it."""
    from ..jobs.export import export_model
    from ..jobs.predict import PredictConfig

    cfg = PredictConfig(preset=preset.value if preset else None, model_dir=model_dir, window_seconds=window_seconds,
                        max_seconds=max_seconds, experiment=experiment)
    st = state(ctx)
    report = export_model(st.layout, st.tracker(experiment), run, directory, cfg)
    for note in report.notes:
        err.print(f"note: {note}", highlight=False)
    runs = sorted({r for w in report.members.values() for r in w})
    encoders = ", ".join(f"{n} ({e['preset']}, {e['fingerprint']})" for n, e in report.encoders.items())
    out.print(f"exported {report.run.name} ({report.run.run_id[:8]}, {report.run.kind}): {len(runs)} checkpoint(s); "
              f"encoders {encoders}", highlight=False)
    out.print(f"{report.path}: mlflow.pyfunc.load_model('{report.path}').predict(pd.DataFrame({{'path': [...]}})); "
              f"serve with `mlflow models serve -m {report.path} --env-manager local -h 127.0.0.1`", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
