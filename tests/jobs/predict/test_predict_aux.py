"""A checkpoint with auxiliary heads (`--aux gender --aux secondary`) predicts like any other: the heads
are part of the checkpoint and prediction leaves them out."""

from __future__ import annotations

import numpy as np

from sertool.audio import load_audio
from sertool.jobs.predict import PredictConfig, predict_files
from sertool.labels import AUX_TASKS

from .conftest import _log_checkpoint
from .test_predict import direct


def test_a_checkpoint_with_auxiliary_heads_predicts(setup, tmp_path):
    run_id, model = _log_checkpoint(setup.tracker, tmp_path, "tiny-aux", 5, setup.encoders, setup.experiment,
                                    aux=dict(AUX_TASKS))
    assert set(model.aux_heads) == {"gender", "secondary"}
    setup.models["tiny-aux"] = model
    cfg = PredictConfig(transcript="well then", experiment=setup.experiment)
    result = predict_files(setup.layout, run_id, [setup.audio["short"]], cfg, tracker=setup.tracker)
    (row,) = result.rows
    probs, attrs = direct(setup, "tiny-aux", load_audio(setup.audio["short"]), "well then")
    np.testing.assert_allclose(row.probs, probs, atol=1e-5)
    np.testing.assert_allclose(row.attrs, attrs, atol=1e-5)
