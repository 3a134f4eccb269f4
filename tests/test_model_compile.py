"""`riffstudio model compile BUNDLE --device NAME [--profile]` against a fake qai-hub at the module
boundary (tests/fake_qai_hub: the service cannot be reached here), whose functions must keep the installed
qai-hub 0.56's signatures, so a drift of the real API fails here."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import REPO

FAKE = REPO / "tests" / "fake_qai_hub"
DEVICE = "Snapdragon X Elite CRD"
COMPONENTS = ("text_encoder", "unet", "vae_decoder", "vae_encoder")


@pytest.fixture
def bundle(tmp_path, qnn_bundle) -> Path:
    """A private copy of the tiny qnn bundle (compile rewrites it)."""
    copy = tmp_path / "bundles" / "qnn"
    shutil.copytree(qnn_bundle, copy, ignore=shutil.ignore_patterns("cache"))
    return copy


@pytest.fixture
def hub(tmp_path, run_cli):
    """Run `riffstudio ARGS` with the fake qai-hub and a token; returns (run, calls)."""
    token = tmp_path / "client.ini"
    token.write_text("[api]\napi_token = test-token\napi_url = https://app.aihub.qualcomm.com\n")
    log = tmp_path / "hub-calls.jsonl"

    def run(*args, **env):
        base = {"PYTHONPATH": os.pathsep.join([str(FAKE), str(REPO)]), "QAIHUB_CLIENT_INI": str(token),
                "FAKE_QAI_HUB_LOG": str(log), "XDG_CACHE_HOME": str(tmp_path / "cache")}
        return run_cli(*args, env={**base, **{key.upper(): str(value) for key, value in env.items()}})

    def calls() -> list[dict]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return run, calls


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(path.relative_to(folder).as_posix().encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_fake_hub_keeps_qai_hub_signatures():
    """Each function and method riffstudio calls, and the error types it catches, exist in the installed
    qai-hub with the fake's parameters (names, kinds, defaults)."""
    import importlib.util
    import sys

    import qai_hub as real
    from qai_hub import client as real_client

    spec = importlib.util.spec_from_file_location("fake_qai_hub_client", FAKE / "qai_hub" / "client.py")
    fake = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = fake
    spec.loader.exec_module(fake)

    def parameters(function) -> list[tuple[str, object, str]]:
        return [(p.name, p.kind, repr(p.default)) for p in inspect.signature(function).parameters.values()]

    pairs = [(fake.submit_compile_job, real.submit_compile_job), (fake.submit_inference_job, real.submit_inference_job),
             (fake.Device, real.Device), (fake.JobStatus.__init__, real_client.JobStatus.__init__)]
    for kind, real_kind in ((fake.CompileJob, real.CompileJob), (fake.InferenceJob, real.InferenceJob)):
        for name in ("wait", "get_status") + (("download_target_model", "get_target_model")
                                               if kind is fake.CompileJob else ("download_profile",)):
            pairs.append((getattr(kind, name), getattr(real_kind, name)))
    for ours, theirs in pairs:
        assert parameters(ours) == parameters(theirs), theirs.__qualname__
    for name in ("code", "success", "finished", "message"):
        assert hasattr(real_client.JobStatus(real_client.JobStatus.State.SUCCESS), name)
    assert issubclass(real.UserError, real_client.Error) and issubclass(real.InternalError, real_client.Error)
    assert issubclass(real_client.RateLimitedError, real_client.Error)
    assert "job_id" in inspect.signature(real_client.Job.__init__).parameters
    assert isinstance(inspect.getattr_static(real_client.Job, "url"), property)


def test_compile_uploads_every_model_and_writes_the_compiled_bundle(bundle, hub):
    run, calls = hub
    done = run("model", "compile", bundle, "--device", DEVICE)
    assert done.returncode == 0, done.stderr
    compiles = [c for c in calls() if c["call"] == "submit_compile_job"]
    assert [c["model"] for c in compiles] == [f"{c}.onnx" for c in COMPONENTS]
    assert {c["options"] for c in compiles} == {"--target_runtime precompiled_qnn_onnx"}
    assert {c["device"] for c in compiles} == {DEVICE}
    assert len([c for c in calls() if c["call"] == "download_target_model"]) == 4

    from engine.bundle import open_bundle

    compiled = open_bundle(bundle, hashes=True)  # every file's hash matches the new manifest
    hub_info = compiled.manifest.runtime["ai_hub"]
    assert hub_info["device"] == DEVICE
    for component, job in zip(COMPONENTS, compiles, strict=True):
        assert compiled.manifest.components[component].file == f"{component}_qnn/model.onnx/model.onnx"
        assert hub_info["components"][component]["job_id"] == job["job"]
        assert hub_info["components"][component]["source_file"] == f"{component}.onnx"
        assert (bundle / f"{component}_qnn" / "model.onnx" / "model.bin").is_file()
        assert (bundle / f"{component}.onnx").is_file()  # the source stays: compile again for another device
    assert compiled.manifest.runtime["qnn"]["context_cache"] is False
    assert f"compiled 4 models of {bundle}" in done.stdout
    assert not [p for p in bundle.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_compiled_bundle_loads_without_building_a_context_cache(bundle, hub):
    from engine.bundle import open_bundle
    from engine.sessions import SessionSettings, create_session, qnn_available

    if not qnn_available()[0]:
        pytest.skip("needs the onnxruntime-qnn HTP back end")
    run, _ = hub
    assert run("model", "compile", bundle, "--device", DEVICE).returncode == 0
    compiled = open_bundle(bundle)
    settings = compiled.session_settings(SessionSettings(provider="qnn"))
    assert settings.context_cache is False
    session = create_session(compiled.component_path("text_encoder"), settings, cache_dir=compiled.cache_dir())
    assert session.get_inputs()[0].name == "input_ids"
    assert not any(compiled.cache_dir().iterdir())  # loaded as it is, as our own context cache is


def test_compile_profile_prints_device_latency_beside_published(bundle, hub):
    run, calls = hub
    done = run("model", "compile", bundle, "--device", DEVICE, "--profile")
    assert done.returncode == 0, done.stderr
    profiles = [c for c in calls() if c["call"] == "submit_inference_job"]
    assert len(profiles) == 4 and all(c["profile"] is True and c["device"] == DEVICE for c in profiles)
    assert profiles[1]["inputs"]["sample"] == [[1, 4, 64, 32]]
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()
            if line.split()[:1] and line.split()[0] in COMPONENTS}
    assert rows["unet"] == ["131.0", "129.9"] and rows["vae_decoder"] == ["225.1", "227.6"]
    assert rows["text_encoder"] == ["7.4", "7.6"] and rows["vae_encoder"] == ["90.0", "-"]
    from engine.bundle import open_bundle

    assert open_bundle(bundle).manifest.runtime["ai_hub"]["components"]["unet"]["latency_ms"] == 131.0


def test_compile_without_a_token_says_how_to_set_one(bundle, hub, tmp_path):
    run, calls = hub
    before = tree_digest(bundle)
    done = run("model", "compile", bundle, "--device", DEVICE, qaihub_client_ini=tmp_path / "missing.ini")
    assert done.returncode == 6
    assert len(done.stderr.strip().splitlines()) == 1
    assert "qai-hub configure --api_token" in done.stderr and "QAIHUB_CLIENT_INI" in done.stderr
    assert calls() == [] and tree_digest(bundle) == before


@pytest.mark.parametrize(("failure", "at", "words"), [
    ("user", "compile", "refused"),
    ("internal", "compile", "could not be reached"),
    ("rate", "compile", "rate-limiting"),
    ("user", "download", "refused"),
    ("job", "compile", "failed"),
])
def test_hub_failures_are_one_line_and_leave_the_bundle_untouched(bundle, hub, failure, at, words):
    run, _ = hub
    before = tree_digest(bundle)
    done = run("model", "compile", bundle, "--device", DEVICE, fake_qai_hub_fail=failure, fake_qai_hub_fail_at=at)
    assert done.returncode == 6, done.stderr
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("riffstudio: ") and words in errors[0]
    assert "Traceback" not in done.stderr
    assert tree_digest(bundle) == before
    assert [p.name for p in bundle.parent.iterdir()] == ["qnn"]  # no half-written bundle beside it


def test_compile_refuses_a_cpu_bundle(hub, fp32_bundle, tmp_path):
    run, calls = hub
    done = run("model", "compile", fp32_bundle, "--device", DEVICE)
    assert done.returncode == 3 and "qnn" in done.stderr and calls() == []
