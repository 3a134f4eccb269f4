"""The exports, calibration sets and w8a16 models test_quantize_qnn checks, built once per version of the
export code (conftest.cached_artifacts; the prebuild builds them beside the bundles)."""

from __future__ import annotations

import json
from pathlib import Path

WIDTH = 128  # text encoder and VAE (and the dynamic exports' calibration)
UNET_QNN_WIDTH = 256
COMPONENTS = ("text_encoder", "unet", "vae_decoder", "vae_encoder")


def build_artifacts(folder: Path) -> None:
    """fp32 exports (fixed shapes for qnn, dynamic for int8), calibration sets, w8a16 qnn models."""
    from conftest import EXPORT_CACHE, cached_model_dir

    from engine.bundle.quantize import quantize_qnn
    from engine.export.calibration import MUSIC_PROMPTS, CalibrationSet, CalibrationSettings, capture_calibration_set
    from engine.export.export_cache import export_with_cache
    from engine.export.source import load_checkpoint

    checkpoint = load_checkpoint(str(cached_model_dir()))
    settings = CalibrationSettings(prompts=MUSIC_PROMPTS[:3], steps=4, captures=2, width=WIDTH, vae_samples=2)
    calibration = capture_calibration_set(checkpoint, settings)
    calibration.save(folder / "calibration.npz")
    settings = CalibrationSettings(prompts=MUSIC_PROMPTS[3:5], steps=3, captures=2, width=UNET_QNN_WIDTH,
                                   vae_samples=0)
    CalibrationSet(unet=capture_calibration_set(checkpoint, settings).unet).save(folder / "unet_qnn.npz")
    unet_samples = CalibrationSet.load(folder / "unet_qnn.npz").unet
    records = {}
    for kind in ("static", "dynamic", "qnn"):
        (folder / kind).mkdir()
    for component in COMPONENTS:
        static = folder / "static" / f"{component}.onnx"
        width = UNET_QNN_WIDTH if component == "unet" else WIDTH
        # The same export cache as the bundle fixtures: the dynamic exports are the fp32 bundle's own.
        export_with_cache(checkpoint, component, static, fixed_width=width, cache=EXPORT_CACHE)
        export_with_cache(checkpoint, component, folder / "dynamic" / f"{component}.onnx", fixed_width=None,
                          cache=EXPORT_CACHE)
        samples = unet_samples if component == "unet" else calibration.for_component(component)
        records[component] = quantize_qnn(static, folder / "qnn" / f"{component}.onnx", component,
                                          samples).to_dict()
    (folder / "qnn" / "records.json").write_text(json.dumps(records), encoding="utf-8")
