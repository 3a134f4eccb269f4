"""ONNX Runtime sessions: settings, CPU sessions, QNN on the HTP back end (the simulator on x86_64
Linux) with CPU fallback disabled, and the EP context cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.errors import InvalidInputError, ModelBundleError, ProviderError
from engine.sessions import CONTEXT_KEY_NAME, SessionSettings, create_session, qnn_available

REPO = Path(__file__).resolve().parents[1]


def small_conv_model(path: Path) -> Path:
    """A little fp32 graph with the UNet's kinds of ops (Conv, GroupNorm-as-InstanceNorm, SiLU, MatMul,
    Softmax), fixed shapes, random weights: enough for sessions, quick on the simulator."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {
        "w_conv": rng.standard_normal((8, 4, 3, 3)).astype(np.float32) * 0.3,
        "b_conv": rng.standard_normal(8).astype(np.float32) * 0.1,
        "scale": rng.uniform(0.5, 1.5, 8).astype(np.float32),
        "bias": rng.standard_normal(8).astype(np.float32) * 0.1,
        "w_mm": rng.standard_normal((16, 16)).astype(np.float32) * 0.3,
        "shape": np.array([1, 8, 16], dtype=np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w_conv", "b_conv"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("InstanceNormalization", ["conv", "scale", "bias"], ["norm"]),
        helper.make_node("Sigmoid", ["norm"], ["sig"]),
        helper.make_node("Mul", ["norm", "sig"], ["silu"]),
        helper.make_node("Reshape", ["silu", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w_mm"], ["mm"]),
        helper.make_node("Softmax", ["mm"], ["y"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16])],
        [numpy_helper.from_array(value, name) for name, value in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, str(path))
    return path


def feeds(seed: int = 0) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((1, 4, 4, 4)).astype(np.float32)}


@pytest.fixture(scope="module")
def qdq_model(tmp_path_factory) -> Path:
    """The small model as a w8a16 QDQ model, made by our own quantize_qnn."""
    from engine.bundle.quantize import quantize_qnn

    folder = tmp_path_factory.mktemp("qdq")
    fp32 = small_conv_model(folder / "small.onnx")
    out = folder / "small.qnn.onnx"
    quantize_qnn(fp32, out, "unet", [feeds(seed) for seed in range(8)])
    return out


QNN = SessionSettings(provider="qnn", disable_cpu_fallback=True)


def test_settings_round_trip_through_a_dict():
    settings = SessionSettings(provider="qnn", intra_op_threads=4, htp_performance_mode="balanced",
                               context_cache=False, disable_cpu_fallback=True)
    data = json.loads(json.dumps(settings.to_dict()))
    assert SessionSettings.from_dict(data) == settings
    assert SessionSettings.from_dict({}) == SessionSettings()


@pytest.mark.parametrize("data", [{"provider": "cuda"}, {"intra_op_threads": -1}, {"htp_performance_mode": "max"},
                                  {"graph_optimization": "extreme"}, {"threads": 2}])
def test_settings_refuse_what_they_do_not_know(data):
    with pytest.raises(InvalidInputError):
        SessionSettings.from_dict(data)


def test_cpu_session_runs(tmp_path):
    session = create_session(small_conv_model(tmp_path / "m.onnx"), SessionSettings())
    (y,) = session.run(None, feeds())
    assert y.shape == (1, 8, 16)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-5)


def test_missing_or_broken_model_is_a_bundle_error(tmp_path):
    with pytest.raises(ModelBundleError, match="convert"):
        create_session(tmp_path / "absent.onnx", SessionSettings())
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelBundleError, match="convert"):
        create_session(broken, SessionSettings())


def test_sessions_import_no_torch():
    code = ("import sys, engine.sessions\n"
            "sys.exit(any(m in sys.modules for m in ('torch', 'diffusers', 'transformers')))")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_without_onnxruntime_qnn_qnn_is_unavailable_with_a_reason(tmp_path):
    """As on macOS or Linux ARM64, where onnxruntime-qnn has no wheel."""
    model = small_conv_model(tmp_path / "m.onnx")
    code = (
        "import sys; sys.modules['onnxruntime_qnn'] = None\n"
        "from engine.sessions import qnn_available, create_session, SessionSettings\n"
        "from engine.errors import ProviderError\n"
        "ok, reason = qnn_available(); print(ok); print(reason)\n"
        "try:\n"
        f"    create_session({str(model)!r}, SessionSettings(provider='qnn'))\n"
        "except ProviderError as error: print('ProviderError', error)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True).stdout
    lines = out.splitlines()
    assert lines[0] == "False"
    assert "not installed" in lines[1] and "--provider cpu" in lines[1]
    assert lines[2].startswith("ProviderError") and len(lines) == 3


@pytest.mark.qnn
def test_qnn_is_available_here():
    ok, reason = qnn_available()
    assert ok, reason
    assert "QNN" in reason


@pytest.mark.qnn
def test_qnn_session_puts_every_node_on_the_npu(qdq_model):
    session = create_session(qdq_model, QNN)  # fallback disabled: creation fails if any node is not QNN's
    (y,) = session.run(None, feeds(3))
    (expected,) = create_session(qdq_model, SessionSettings()).run(None, feeds(3))
    np.testing.assert_allclose(y, expected, atol=0.02)


@pytest.mark.qnn
def test_fp32_graph_is_refused_with_fallback_disabled(tmp_path):
    """HTP runs quantized graphs: an fp32 model cannot land on it whole, and says so in one line."""
    with pytest.raises(ProviderError, match="--provider cpu"):
        create_session(small_conv_model(tmp_path / "m.onnx"), QNN)


def context_files(cache: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(cache)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.rglob("*") if p.is_file()}


@pytest.mark.qnn
def test_context_cache_is_written_on_first_load_and_used_on_the_second(qdq_model, tmp_path):
    cache = tmp_path / "cache"
    first = create_session(qdq_model, QNN, cache)
    written = context_files(cache)
    assert any(name.endswith("model_ctx.onnx") for name in written)
    assert any(name.endswith(".bin") for name in written)
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no half-written folders left
    second = create_session(qdq_model, QNN, cache)
    assert context_files(cache) == written  # loaded, not rewritten
    np.testing.assert_array_equal(second.run(None, feeds(5))[0], first.run(None, feeds(5))[0])


@pytest.mark.qnn
@pytest.mark.parametrize("damage", ["garbage_binary", "truncated_binary", "missing_binary", "garbage_model",
                                    "stale_key"])
def test_damaged_or_stale_context_cache_is_rebuilt(qdq_model, tmp_path, damage):
    cache = tmp_path / "cache"
    expected = create_session(qdq_model, QNN, cache).run(None, feeds(7))[0]
    (folder,) = [p for p in cache.iterdir() if p.is_dir()]
    (binary,) = folder.glob("*.bin")
    if damage == "garbage_binary":
        binary.write_bytes(os.urandom(binary.stat().st_size))
    elif damage == "truncated_binary":
        binary.write_bytes(binary.read_bytes()[: binary.stat().st_size // 2])
    elif damage == "missing_binary":
        binary.unlink()
    elif damage == "garbage_model":
        (folder / "model_ctx.onnx").write_bytes(b"garbage")
    else:
        key = json.loads((folder / CONTEXT_KEY_NAME).read_text())
        key["qnn_sdk"] = "0.0.0"
        (folder / CONTEXT_KEY_NAME).write_text(json.dumps(key))
    session = create_session(qdq_model, QNN, cache)
    np.testing.assert_array_equal(session.run(None, feeds(7))[0], expected)
    assert json.loads((folder / CONTEXT_KEY_NAME).read_text())["qnn_sdk"] != "0.0.0"
    assert create_session(qdq_model, QNN, cache) is not None  # and the rebuilt cache loads


@pytest.mark.qnn
def test_a_changed_model_gets_a_new_context_and_the_old_one_goes(qdq_model, tmp_path):
    cache = tmp_path / "cache"
    create_session(qdq_model, QNN, cache)
    old = {p.name for p in cache.iterdir()}
    create_session(qdq_model, QNN, cache, model_digest="another model")
    new = {p.name for p in cache.iterdir()}
    assert len(new) == 1 and new != old


@pytest.mark.qnn
def test_unwritable_cache_costs_time_not_the_session(qdq_model, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    session = create_session(qdq_model, QNN, blocker / "cache")
    assert session.run(None, feeds())[0].shape == (1, 8, 16)


# A child limited to one CPU creates a session and lists the CPUs each of its threads may run on.
THREADS_OF_A_PINNED_PROCESS = """
import json, os, sys
from pathlib import Path
os.sched_setaffinity(0, {int(sys.argv[2])})
from engine.cpu_features import usable_cpus
from engine.sessions import SessionSettings, create_session
session = create_session(Path(sys.argv[1]), SessionSettings())
tasks = Path("/proc/self/task")
allowed = [(tasks / t / "status").read_text().split("Cpus_allowed_list:")[1].split()[0] for t in os.listdir(tasks)]
print(json.dumps({"threads_may_run_on": sorted(set(allowed)), "usable_cpus": usable_cpus()}))
"""


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs a per-process CPU set and two CPUs")
def test_a_session_in_a_process_limited_to_one_cpu_keeps_its_threads_there(tmp_path):
    """ONNX Runtime's default pool pins a thread to every physical core, outside the process's CPU set
    too (a batch worker given CPU 0 got a spinning thread on CPU 1): the default thread count follows
    the set, and the threads stay in it."""
    model = small_conv_model(tmp_path / "model.onnx")
    cpu = sorted(os.sched_getaffinity(0))[0]
    result = subprocess.run([sys.executable, "-c", THREADS_OF_A_PINNED_PROCESS, str(model), str(cpu)],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"threads_may_run_on": [str(cpu)], "usable_cpus": 1}
