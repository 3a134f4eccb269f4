"""Fake qai-hub 0.56 for the tests (see client.py): the top-level names riffstudio uses."""

from qai_hub.client import (
    CompileJob,
    Device,
    Error,
    InferenceJob,
    InternalError,
    JobStatus,
    UserError,
    submit_compile_job,
    submit_inference_job,
)

__version__ = "0.56.0-fake"
__all__ = ["CompileJob", "Device", "Error", "InferenceJob", "InternalError", "JobStatus", "UserError",
           "submit_compile_job", "submit_inference_job"]
