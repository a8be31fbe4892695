"""sertool models as MLflow pyfunc models: what `mlflow.pyfunc.load_model` loads and `mlflow models serve` serves.

The pyfunc side is generic and tiny: `SertoolModel` finds, in the model's own `sertool` artifact folder,
an `export.json` naming the loader that builds a predictor from that folder (`jobs.export.load_bundle`),
and hands every DataFrame to it. So this room, the only one that imports mlflow, needs nothing of the
rooms above it, and what a model does is decided by the folder that `jobs.export` wrote.

The model is self-contained: the folder holds the checkpoints, the ensemble's weights or meta-models,
the label map and the encoders' names, checkpoints and fingerprints (and the tiny preset's weights,
which are small); the sertool package itself travels as the model's code (`code_paths`), so a fresh
process (`mlflow models serve --env-manager local`) imports the same code that wrote it.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow.pyfunc

BUNDLE = "sertool"
"""The artifact key (and folder name) of the model's own files."""
MANIFEST = "export.json"


class SertoolModel(mlflow.pyfunc.PythonModel):
    """Loads the predictor its bundle names, once; then answers DataFrames of audio paths."""

    def load_context(self, context: Any) -> None:
        bundle = Path(context.artifacts[BUNDLE])
        manifest = json.loads((bundle / MANIFEST).read_text())
        module, _, name = manifest["loader"].partition(":")
        loader = getattr(importlib.import_module(module), name)
        self._predict = loader(bundle, dict(context.model_config or {}))

    def predict(self, context, model_input, params=None):  # no hints: MLflow would read them as a schema
        return self._predict(model_input)


def save_pyfunc(path: str | Path, bundle: str | Path, *, inputs: Sequence[tuple[str, str, bool]],
                outputs: Sequence[tuple[str, str]], code: Sequence[str | Path] = (), requirements: Sequence[str] = (),
                metadata: Mapping[str, Any] | None = None) -> Path:
    """Write the pyfunc model at `path` (which must not exist or be empty) around the folder `bundle`.

    `inputs`: (column, type, required) of the DataFrame it takes; `outputs`: (column, type) of what it
    returns (the signature MLflow shows and checks inputs against)."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = ModelSignature(
        inputs=Schema([ColSpec(t, n, required=r) for n, t, r in inputs]),
        outputs=Schema([ColSpec(t, n) for n, t in outputs]),
    )
    mlflow.pyfunc.save_model(
        str(path), python_model=SertoolModel(), artifacts={BUNDLE: str(bundle)}, code_paths=[str(c) for c in code],
        signature=signature, pip_requirements=list(requirements), metadata=dict(metadata or {}),
    )
    return Path(path)
