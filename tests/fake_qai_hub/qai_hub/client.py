"""A stand-in for qai-hub 0.56 at the module boundary (the service cannot be reached from the tests).

Only what riffstudio calls, with qai-hub's own signatures (tests/test_model_compile.py compares them with
the installed package's through inspect.signature). Every call is appended to $FAKE_QAI_HUB_LOG as a JSON
line; $FAKE_QAI_HUB_FAIL = user | internal | rate | job makes the call named by $FAKE_QAI_HUB_FAIL_AT
(compile, the default; download; profile) fail as the service would.

A compiled model is what AI Hub's precompiled_qnn_onnx target gives: a zip of a folder holding
model.onnx (here the uploaded model itself, which the QNN provider compiles as it loads) and model.bin.
"""

from __future__ import annotations

import enum
import io
import itertools
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

_ids = itertools.count(1)
_downloads = itertools.count(1)


class Error(Exception):
    def __init__(self, message):
        super().__init__(message)


class InternalError(Error):
    def __init__(self, message):
        super().__init__(message)


class UserError(Error):
    def __init__(self, message):
        super().__init__(message)


class RateLimitedError(Error):
    pass


def _log(call: str, **details) -> None:
    path = os.environ.get("FAKE_QAI_HUB_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps({"call": call, **details}) + "\n")


def _maybe_fail(at: str) -> None:
    kind = os.environ.get("FAKE_QAI_HUB_FAIL", "")
    if not kind or os.environ.get("FAKE_QAI_HUB_FAIL_AT", "compile") != at:
        return
    if at == "download" and next(_downloads) < 2:
        return  # the second download fails: the first one is already inside the half-written bundle
    if kind == "user":
        raise UserError("Failed to authenticate.\n┌────┐\n│ Failure to authenticate is likely caused by a "
                        "bad or expired API token. │\n└────┘")
    if kind == "internal":
        raise InternalError("HTTPSConnectionPool(host='app.aihub.qualcomm.com', port=443): Max retries exceeded")
    if kind == "rate":
        raise RateLimitedError("Request was throttled. Expected available in 60 seconds.")


@dataclass
class Device:
    name: str = ""
    os: str = ""
    attributes: str | list[str] = field(default_factory=list)


class JobStatus:
    class State(enum.Enum):
        RUNNING = 3
        SUCCESS = 5
        FAILED = 6

    def __init__(self, state: JobStatus.State, message: str | None = None) -> None:
        self.state = state
        self.message = message

    @property
    def code(self) -> str:
        return self.state.name

    @property
    def success(self) -> bool:
        return self.state == JobStatus.State.SUCCESS

    @property
    def failure(self) -> bool:
        return self.state == JobStatus.State.FAILED

    @property
    def finished(self) -> bool:
        return self.success or self.failure


class Model:
    def __init__(self, source: Path) -> None:
        self.model_id = f"m{next(_ids)}"
        self.source = source


class Job:
    def __init__(self, kind: str) -> None:
        self.job_id = f"j{kind[0]}{next(_ids):04d}"
        self.url = f"https://app.aihub.qualcomm.com/jobs/{self.job_id}/"

    def get_status(self) -> JobStatus:
        if os.environ.get("FAKE_QAI_HUB_FAIL") == "job":
            return JobStatus(JobStatus.State.FAILED, "Compilation failed: unsupported op")
        return JobStatus(JobStatus.State.SUCCESS)

    def wait(self, timeout: int | None = None) -> JobStatus:
        _log("wait", job=self.job_id)
        return self.get_status()


class CompileJob(Job):
    def __init__(self, model: Path) -> None:
        super().__init__("compile")
        self.model = model

    def get_target_model(self) -> Model | None:
        return Model(self.model)

    def download_target_model(self, filename: str) -> str | None:
        _maybe_fail("download")
        _log("download_target_model", job=self.job_id, filename=filename)
        source = self.model / self.model.name if self.model.is_dir() else self.model
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("model.onnx/model.onnx", source.read_bytes())
            archive.writestr("model.onnx/model.bin", b"QNN context binary")
        path = filename if filename.endswith(".zip") else f"{filename}.onnx.zip"
        Path(path).write_bytes(buffer.getvalue())
        return path


LATENCY_US = {"text_encoder": 7400, "unet": 131000, "vae_decoder": 225100, "vae_encoder": 90000}


class InferenceJob(Job):
    def __init__(self, name: str) -> None:
        super().__init__("inference")
        self.name = name

    def download_profile(self, filename: str | None = None) -> dict | str:
        component = self.name.split()[1]
        return {"execution_summary": {"estimated_inference_time": LATENCY_US[component]}}


def submit_compile_job(model, device, name=None, input_specs=None, options="", single_compile=True,
                       calibration_data=None, retry=True, project=None):
    _maybe_fail("compile")
    path = Path(model)
    job = CompileJob(path)
    _log("submit_compile_job", job=job.job_id, model=path.name, is_dir=path.is_dir(), device=device.name,
         name=name, options=options)
    return job


def submit_inference_job(model, device, inputs=None, name=None, options="", retry=True, profile=True, project=None):
    _maybe_fail("profile")
    job = InferenceJob(name or "")
    shapes = {key: [list(array.shape) for array in arrays] for key, arrays in (inputs or {}).items()}
    _log("submit_inference_job", job=job.job_id, model=model.model_id, device=device.name, name=name,
         profile=profile, inputs=shapes)
    return job
