"""The ONNX Runtime encoder: exported locally from the packaged weights; fp32 gives torch's vectors (and
keeps its version), int8 close ones under a version of its own; rows come back in the order given; a
damaged file is a clear error; LABELROUTER_ENCODER_BACKEND selects it."""

from __future__ import annotations

import numpy as np
import pytest

from labelrouter.errors import ModelArtifactError
from labelrouter.models.encoder import encoder_for
from labelrouter.models.onnx_encoder import OnnxEncoder
from labelrouter.settings import load_settings

pytestmark = pytest.mark.slow

TEXTS = ["Your invoice for March is attached; payment is due on the 15th.",
         "Flight LH 400 to Frankfurt, boarding at gate B22",
         "hi",
         "Team offsite next week: agenda, rooms and who presents what. " * 20]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


def test_fp32_gives_torchs_vectors_and_int8_close_ones(encoder, cache_dir):
    reference = encoder.encode(TEXTS)
    fp32 = OnnxEncoder(cache_dir, quantized=False)
    int8 = OnnxEncoder(cache_dir, quantized=True)
    assert fp32.version == encoder.version and int8.version != encoder.version and "onnx-int8" in int8.version
    cos32 = (fp32.encode(TEXTS) * reference).sum(axis=1)
    cos8 = (int8.encode(TEXTS) * reference).sum(axis=1)
    assert cos32.min() > 0.9999 and cos8.min() > 0.97, (cos32, cos8)
    # sorted by length inside, returned in the caller's order; one text alone gives the same vector
    one = fp32.encode([TEXTS[2]])[0]
    assert np.allclose(one, fp32.encode(TEXTS)[2], atol=1e-5) and fp32.encode([]).shape == (0, 384)


def test_a_damaged_onnx_file_is_a_clear_error(cache_dir):
    damaged = cache_dir / "damaged"
    fresh = OnnxEncoder(cache_dir, quantized=True)
    target = damaged / "onnx" / fresh.file.parent.name / "model-int8.onnx"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not a model")
    with pytest.raises(ModelArtifactError, match="not a usable ONNX model.*delete it"):
        OnnxEncoder(damaged, quantized=True)


def test_the_setting_selects_the_backend(tmp_path, cache_dir):
    settings = load_settings(home=tmp_path, cache_dir=cache_dir, encoder_backend="onnx-int8")
    chosen = encoder_for(settings)
    assert isinstance(chosen, OnnxEncoder) and chosen.version.startswith("all-MiniLM-L6-v2-onnx-int8@")
    assert encoder_for(settings) is chosen  # once per process
