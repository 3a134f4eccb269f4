"""Qualcomm AI Hub: NPU binaries compiled by Qualcomm's own toolchain for a `qnn` bundle (the `hub` extra).

`token.py` finds the API token's config file, `service.py` is the only code that touches `qai_hub` (and
turns its errors into one-line HubErrors), `compile.py` writes the compiled bundle, `latency.py` holds
the published device figures and reads profiles. The compiled models are QNN EP-context ONNX models: the
session code loads them as it loads its own context cache (engine/sessions.py).
"""
