"""Model export (conversion time only): torch -> ONNX, quantization, calibration.

Imports torch, diffusers, transformers, onnx and onnxruntime.quantization lazily; never used at run time.
"""
