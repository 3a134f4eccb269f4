"""The only code that calls qai-hub (0.56's API): compile, wait with progress, download, profile.

qai-hub's errors become one HubError line each: `UserError` (a refused token, 4xx: a bad device name or
model), `InternalError` (the network, 5xx) and `RateLimitedError` (429). Nothing here writes a bundle.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from engine.errors import HubError, reason

COMPILE_OPTIONS = "--target_runtime precompiled_qnn_onnx"


def qai_hub() -> Any:
    try:
        import qai_hub
    except ImportError:
        raise HubError("Qualcomm AI Hub needs the hub extra: pip install -e '.[hub]'") from None
    return qai_hub


def version() -> str:
    return str(getattr(qai_hub(), "__version__", "unknown"))


@contextlib.contextmanager
def hub_errors(doing: str) -> Iterator[None]:
    """qai-hub's failures while `doing` something, as one line with what to do."""
    hub = qai_hub()
    limited = getattr(hub, "RateLimitedError", None) or hub.client.RateLimitedError
    try:
        yield
    except limited as error:
        raise HubError(f"AI Hub is rate-limiting this account while {doing} ({reason(error, 200)}): wait a few "
                       "minutes and run the command again") from None
    except hub.UserError as error:
        raise HubError(f"AI Hub refused {doing} ({_first_line(error)}): check the API token "
                       "(`qai-hub configure --api_token TOKEN`), the device name and the bundle") from None
    except hub.InternalError as error:
        raise HubError(f"AI Hub could not be reached or failed while {doing} ({reason(error, 200)}): check the "
                       "network and try again later") from None


def submit_compile(model: Path, device_name: str, component: str) -> Any:
    """Upload `model` and compile it for the device (AI Hub's job is named after the component)."""
    hub = qai_hub()
    with hub_errors(f"compiling {component}"):
        return hub.submit_compile_job(str(model), hub.Device(device_name), name=f"riffstudio {component}",
                                      options=COMPILE_OPTIONS)


def submit_profile(target_model: Any, device_name: str, component: str, inputs: Mapping[str, list]) -> Any:
    """An inference job with profiling (qai-hub 0.56: submit_profile_job is deprecated)."""
    hub = qai_hub()
    with hub_errors(f"profiling {component}"):
        return hub.submit_inference_job(target_model, hub.Device(device_name), inputs=dict(inputs),
                                        name=f"riffstudio {component} profile", profile=True)


def wait(job: Any, what: str, report: Callable[[str], None]) -> None:
    """Block until `job` finishes (qai-hub's own wait draws its progress bar); HubError if it failed."""
    report(f"{what}: job {job.job_id} ({job.url})")
    with hub_errors(what):
        status = job.wait()
    if not status.success:
        raise HubError(f"AI Hub job {job.job_id} failed {what} ({status.message or status.code}); see {job.url}")
    report(f"{what}: done")


def download_target(job: Any, destination: Path, what: str) -> Path:
    with hub_errors(f"downloading {what}"):
        path = job.download_target_model(str(destination))
    if not path:
        raise HubError(f"AI Hub job {job.job_id} has no compiled model for {what}; see {job.url}")
    return Path(path)


def download_profile(job: Any, what: str) -> dict:
    with hub_errors(f"downloading the profile of {what}"):
        profile = job.download_profile()
    return profile if isinstance(profile, dict) else {}


def _first_line(error: BaseException) -> str:
    """qai-hub boxes its advice over many lines; the first non-empty one says what happened."""
    lines = [line.strip(" │┌┐└┘─") for line in str(error).splitlines()]
    return next((line for line in lines if line), type(error).__name__)[:200]
