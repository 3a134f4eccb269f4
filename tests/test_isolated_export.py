"""Every ONNX export runs in a child interpreter: the converting process never loads the exporter, so
no export inherits the caches and garbage of the ones before it (a VAE export that took seconds alone
took over ten minutes after the text encoder's and the UNet's in one process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
from pathlib import Path
from engine.export.export_cache import export_with_cache
from engine.export.source import load_checkpoint
cache = Path(sys.argv[3])
exported = export_with_cache(load_checkpoint(sys.argv[2]), "text_encoder", Path(sys.argv[4]), fixed_width=None,
                             cache=cache)
exporter = ("onnxscript", "onnx_ir", "torch.onnx._internal.exporter._core")
entries = [p for p in cache.iterdir() if p.is_dir()]
print(json.dumps({"loaded": sorted(m for m in sys.modules if m.startswith(exporter)),
                  "entries": [p.name for p in entries], "inode": entries[0].stat().st_ino,
                  "error": exported.max_abs_error_vs_torch, "outputs": [t.name for t in exported.outputs]}))
"""


@pytest.mark.slow
def test_exports_run_in_a_child_and_conversions_sharing_a_cache_export_once(tiny_sd_dir, tmp_path):
    """Two converters started together (as the fp32 and int8 conversions of one checkpoint may be), sharing
    an export cache: the export runs in a child of one of them, so neither loads the exporter; the other
    waits for it and reuses the entry: both see the same entry folder, never one replaced under the other."""
    cache, out = tmp_path / "cache", tmp_path / "out"
    out.mkdir()
    children = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(REPO), str(tiny_sd_dir), str(cache),
                                  str(out / f"text-{i}.onnx")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for i in range(2)]
    reports = []
    for child in children:
        stdout, stderr = child.communicate(timeout=300)
        assert child.returncode == 0, stderr[-2000:]
        reports.append(json.loads(stdout.strip().splitlines()[-1]))
    for report in reports:
        assert report["loaded"] == []  # the exporter ran elsewhere
        assert report["outputs"] == ["last_hidden_state"] and report["error"] < 1e-3
    assert len(reports[0]["entries"]) == 1 and reports[0]["entries"] == reports[1]["entries"]
    assert reports[0]["inode"] == reports[1]["inode"]  # exported once: a second export replaces the folder
    assert all((out / f"text-{i}.onnx").stat().st_size > 0 for i in range(2))
    assert sorted(p.name for p in out.iterdir()) == ["text-0.onnx", "text-1.onnx"]  # no scratch left behind
