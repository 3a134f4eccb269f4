"""Getting a model without torch: the Hub download, weight readers (safetensors, torch zip files), the
stripped ONNX templates and the map into them, the torch-free calibration, and the bundle build.

A producer's machine has no torch, so this package works with numpy, onnx, ONNX Runtime, safetensors,
tokenizers, huggingface_hub and the standard library; `engine/export/` stays the only room that imports
torch (it makes the templates).
"""
