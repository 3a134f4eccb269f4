"""The app folder: `python packaging/build.py` builds dist/riffstudio/ with PyInstaller here (Linux, with
onnxruntime-qnn included to prove our hook), and the built `riffstudio-cli --self-test` passes in it,
engine process and one short loop included. About 70 s on the 2-core test machine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO
from engine_fixtures import engine_home

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def build(tmp_path_factory, fp32_bundle) -> Iterator[tuple[subprocess.CompletedProcess, Path]]:
    """The build, removed afterwards (600 MB with the QNN simulator: pytest keeps three runs' temporaries)."""
    out = tmp_path_factory.mktemp("app")
    with pytest.MonkeyPatch.context() as monkeypatch, engine_home(monkeypatch):
        monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
        done = subprocess.run([sys.executable, str(REPO / "packaging" / "build.py"), "--qnn",
                               "--dist", str(out / "dist"), "--work", str(out / "work"),
                               "--self-test-model", str(fp32_bundle)],
                              cwd=REPO, capture_output=True, text=True, timeout=900, env=dict(os.environ))
    yield done, out / "dist" / "riffstudio"
    shutil.rmtree(out, ignore_errors=True)


def test_built_app_folder_passes_its_self_test(build):
    done, folder = build
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "PASSED: riffstudio works on this machine" in done.stdout
    assert re.search(r"  ok    loop ", done.stdout) and re.search(r"\(app folder\)", done.stdout)
    # The frozen app finds scipy's FFT module by its file too (engine/codec/fft.py).
    assert re.search(r"  ok    codec .*pocketfft", done.stdout)
    assert (folder / "riffstudio").is_file() and (folder / "riffstudio-cli").is_file()


def test_built_app_folder_reports_its_size_and_holds_no_torch(build):
    done, folder = build
    size = re.search(r"app folder size (\d+) MB unpacked", done.stdout)
    assert size and int(size.group(1)) > 50
    names = {path.name.split(".")[0].lower() for path in folder.rglob("*")}
    assert not names & {"torch", "diffusers", "transformers", "qai_hub"}


def test_qnn_libraries_keep_their_package_folder(build):
    _, folder = build
    qnn = folder / "_internal" / "onnxruntime_qnn"
    names = {path.name for path in qnn.iterdir()}
    assert {"libonnxruntime_providers_qnn.so", "libQnnHtp.so"} <= names
    assert not any(part in name for name in names for part in ("Genie", "QnnGpu", "QnnSaver"))


def test_built_app_folder_gets_a_model_from_the_hub_and_makes_a_loop(build, tiny_sd_dir, tiny_templates, tmp_path):
    """What a producer on a Snapdragon laptop runs: the app folder (no torch) downloads the model from a local
    stand-in of the Hub, builds an int8 bundle and makes a loop with it. The tiny test model is not SD 1.5, so its
    templates come from the test cache, as a source install's export extra would have left them."""
    from fake_hub import FakeHub, FakeRepo

    _, folder = build
    cli = str(executable_in(folder))
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "HF_HOME": str(tmp_path / "hf"), "RIFFSTUDIO_TEMPLATE_CACHE": str(tiny_templates),
           "QT_QPA_PLATFORM": "offscreen"}
    with FakeHub([FakeRepo("riffusion/riffusion-model-v1", tiny_sd_dir)]) as hub:
        got = subprocess.run([cli, "model", "get", "--precision", "int8", "--out", str(tmp_path / "bundle")],
                             capture_output=True, text=True, timeout=300, env={**env, **hub.env()})
    assert got.returncode == 0, got.stdout[-2000:] + got.stderr[-2000:]
    assert (tmp_path / "bundle" / "manifest.json").is_file()
    with pytest.MonkeyPatch.context() as monkeypatch, engine_home(monkeypatch):
        tested = subprocess.run([cli, "--self-test", "--model", str(tmp_path / "bundle")], capture_output=True,
                                text=True, timeout=300, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-2000:]
    assert re.search(r"  ok    loop ", tested.stdout)


def executable_in(folder: Path) -> Path:
    return folder / ("riffstudio-cli.exe" if sys.platform == "win32" else "riffstudio-cli")


def test_an_app_folder_holding_torch_fails_the_build_check(build):
    """Last in this file: it plants a torch package in the built folder."""
    _, folder = build
    planted = folder / "_internal" / "torch"
    planted.mkdir()
    (planted / "__init__.py").write_text("")
    done = subprocess.run([sys.executable, str(REPO / "packaging" / "build.py"), "--check-only", str(folder),
                           "--no-self-test"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "_internal/torch" in done.stderr and "must never ship torch" in done.stderr
