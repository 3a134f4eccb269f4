"""The qnn bundle end to end on the QNN HTP back end (the simulator in onnxruntime-qnn's Linux wheel),
with CPU fallback disabled: every node of every model is proven to run on the NPU path."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import QNN_TEST_WIDTH

from engine.bundle import COMPONENTS, open_bundle
from engine.bundle.reference import snr_db
from engine.errors import InvalidInputError
from engine.generation.pipeline import LoopGenerator
from engine.generation.settings import GenerationSettings
from engine.sessions import SessionSettings, qnn_available

pytestmark = [pytest.mark.slow, pytest.mark.qnn,
              pytest.mark.skipif(not qnn_available()[0], reason="onnxruntime-qnn has no HTP back end here")]


def test_qnn_bundle_is_static_w8a16_and_scored_against_fp32(qnn_bundle):
    manifest = json.loads((qnn_bundle / "manifest.json").read_text())
    assert manifest["precision"] == "qnn" and manifest["fixed_shapes"] is True
    assert manifest["image_width"] == manifest["max_image_width"] == QNN_TEST_WIDTH
    for component in COMPONENTS:
        spec = manifest["components"][component]
        assert spec["quantization"] == "qdq_w8a16", component
        assert all(isinstance(d, int) for t in spec["inputs"] for d in t["shape"]), component
        assert spec["validation"]["snr_db_vs_fp32"] > 25, component
    assert manifest["components"]["text_encoder"]["inputs"][0]["dtype"] == "int32"


# The NPU's image against the CPU's emulation of the same Q/DQ graph (8-bit pixels; 46 dB measured).
NPU_VS_EMULATION_MIN_SNR_DB = 30.0


def test_qnn_bundle_generates_end_to_end_on_htp_without_cpu_fallback(qnn_bundle):
    strict = SessionSettings(provider="qnn", disable_cpu_fallback=True)
    generator = LoopGenerator(open_bundle(qnn_bundle), strict,
                              session_options={"htp_performance_mode": "sustained_high_performance"})
    result = generator.generate(GenerationSettings(prompt="funky slap bass", steps=1, width=QNN_TEST_WIDTH,
                                                   seed=3, scheduler="ddim"))
    assert result.provider == "qnn" and result.notes == []  # no mid-job fallback to the CPU
    assert result.image.shape == (512, QNN_TEST_WIDTH, 3) and result.image.std() > 0
    assert np.isfinite(result.latents).all()
    # The NPU's VAE decode is the quantised model's: the CPU's emulation of the same Q/DQ model decodes
    # the same latents to nearly the same image. (The VAE decoder is the slowest model on the simulator,
    # ~1 min at this width: this run is its NPU accuracy check too; the artifacts' test covers the others.)
    emulated = LoopGenerator(open_bundle(qnn_bundle), SessionSettings(provider="cpu")).decode_latents(result.latents)
    assert snr_db(emulated, result.image) >= NPU_VS_EMULATION_MIN_SNR_DB  # 46 dB here
    with pytest.raises(InvalidInputError, match="makes 256 px wide images only"):
        generator.generate(GenerationSettings(prompt="bass", steps=1, width=512, seed=1))



def test_reference_outputs_hold_on_the_npu(qnn_bundle):
    """What `model check --provider qnn` does per model, for the text encoder (the whole check takes
    minutes on the HTP simulator: it passed with all four models within 3 dB, see docs/qnn-notes.md):
    the NPU, CPU fallback disabled, scores its stored reference inputs within 3 dB of what the CPU's
    QDQ emulation scored at conversion."""
    from engine.bundle.reference import MAX_LOSS_DB, read_reference, run_feeds, snr_db
    from engine.sessions import create_session

    bundle = open_bundle(qnn_bundle)
    spec = bundle.manifest.components["text_encoder"]
    reference = read_reference(bundle.path / spec.reference)
    strict = bundle.session_settings(SessionSettings(provider="qnn", disable_cpu_fallback=True))
    session = create_session(bundle.component_path("text_encoder"), strict, cache_dir=bundle.cache_dir())
    here = snr_db(reference.expected, run_feeds(session, reference.feeds))
    assert here > spec.validation["reference_snr_db"] - MAX_LOSS_DB
