"""Every registered encoder keeps the `Encoder` contract (lhotse-style: parametrized over the registry)."""

import numpy as np
import pytest

from sertool.encoders.base import Encoder
from sertool.encoders.registry import encoder_class, encoder_kinds

from encoder_helpers import speechlike


@pytest.mark.parametrize("kind", encoder_kinds())
def test_contract(kind, request):
    enc = request.getfixturevalue(kind)  # the session fixture of the same name
    assert isinstance(enc, Encoder) and encoder_class(kind) is type(enc)
    rec = enc.record
    assert (rec.kind, rec.name, rec.layer, rec.dtype) == (kind, kind, None, "float16")
    batch = ["hello there", "stop"] if enc.modality == "text" else [speechlike(0.7, 0), speechlike(1.1, 1)]
    frames = enc.embed(batch)
    assert len(frames) == 2
    for f in frames:
        assert f.dtype == np.float32 and f.ndim == 2 and f.shape[1] == rec.dim and len(f) > 0
        assert np.isfinite(f).all()
