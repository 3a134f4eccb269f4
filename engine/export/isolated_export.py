"""Each ONNX export in a fresh interpreter, so no export inherits the state of the ones before it.

torch's dynamo exporter keeps process-wide state (compiled-graph caches, guards, fake-tensor modes,
onnx_ir graphs left to the garbage collector). A process that had already exported the text encoder and
the UNet took minutes, once past a ten-minute limit, to export the VAE decoder that a fresh process
exports in seconds; the slowdown grows with what the process did before, so it struck the test suite
and long conversions hardest. A child process per export starts clean every time and gives all its
memory back when it ends: the parent's peak no longer adds the exporter's.

The parent hands the child the one torch module it needs through `torch.save` in a private scratch
folder (the weights as they are in memory, whatever the checkpoint's source), and reads back a small
JSON result. Our own errors keep their type and one-line message across the boundary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from engine import errors
from engine.bundle.manifest import TensorSpec
from engine.errors import ModelBundleError
from engine.export.onnx_export import COMPONENT_OWNER, ExportedModel, export_component

RESULT_NAME = "result.json"
# Lines of the child's stderr quoted when it dies without a result (a crash, out of memory).
STDERR_TAIL = 3


def export_isolated(checkpoint: Any, component: str, path: Path, *, fixed_width: int | None) -> ExportedModel:
    """`export_component` of `checkpoint`'s `component` to `path`, run in a child interpreter."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{component}-export-", dir=path.parent) as scratch:
        work = Path(scratch)
        module_file = work / "module.pt"
        torch.save(getattr(checkpoint, COMPONENT_OWNER[component]), module_file)
        request = {"component": component, "module": str(module_file), "path": str(path),
                   "fixed_width": fixed_width, "result": str(work / RESULT_NAME)}
        log = work / "stderr.txt"
        with log.open("wb") as stderr:
            child = subprocess.run([sys.executable, "-m", "engine.export.isolated_export", json.dumps(request)],
                                   stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False)
        result_file = work / RESULT_NAME
        if not result_file.is_file():
            tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-STDERR_TAIL:]
            raise ModelBundleError(f"exporting {component} stopped (exit code {child.returncode}"
                                   f"{': ' + ' | '.join(tail) if tail else ''}): if it ran out of memory, close "
                                   "other programs and convert again")
        result = json.loads(result_file.read_text(encoding="utf-8"))
    if "error" in result:
        raise getattr(errors, result["error"]["type"], ModelBundleError)(result["error"]["message"])
    return ExportedModel(path=path, inputs=tuple(TensorSpec.from_dict(t) for t in result["inputs"]),
                         outputs=tuple(TensorSpec.from_dict(t) for t in result["outputs"]),
                         max_abs_error_vs_torch=result["max_abs_error_vs_torch"])




def _child(request: dict[str, Any]) -> None:
    """The child's side: load the module, export, write the result (our error types as data)."""
    import torch

    component = request["component"]
    result: dict[str, Any]
    try:
        module = torch.load(request["module"], weights_only=False, mmap=True)
        checkpoint = SimpleNamespace(**{COMPONENT_OWNER[component]: module})
        exported = export_component(checkpoint, component, Path(request["path"]),
                                    fixed_width=request["fixed_width"])
        result = {"inputs": [t.to_dict() for t in exported.inputs], "outputs": [t.to_dict() for t in exported.outputs],
                  "max_abs_error_vs_torch": exported.max_abs_error_vs_torch}
    except errors.RiffstudioError as error:
        result = {"error": {"type": type(error).__name__, "message": str(error)}}
    Path(request["result"]).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))
