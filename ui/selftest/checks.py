"""The machine checks of the self-test: Python, ONNX Runtime, the QNN provider, Qt, audio, WAV files,
the spectrogram codec.

Each check returns a CheckResult and never raises: a broken part is a "fail" line naming it, so one
missing library does not hide what else works. Imports happen inside the checks, so a missing module
is reported, not a crash of the whole test.
"""

from __future__ import annotations

import io
import json
import platform
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from engine.errors import reason
from ui.selftest.report import CheckResult, Status

QT_PROBE_TIMEOUT_S = 60.0


def timed(name: str, check: Callable[[], tuple[Status, str, dict]]) -> CheckResult:
    """Run one check; any exception it lets out is that check's failure, in one line."""
    start = time.perf_counter()
    try:
        status, detail, data = check()
    except Exception as error:
        status, detail, data = "fail", f"{type(error).__name__}: {reason(error, 300)}", {}
    return CheckResult(name, status, detail, time.perf_counter() - start, data)


def python_platform() -> tuple[Status, str, dict]:
    frozen = bool(getattr(sys, "frozen", False))
    data = {"python": platform.python_version(), "implementation": platform.python_implementation(),
            "system": platform.system(), "release": platform.release(), "machine": platform.machine(),
            "executable": sys.executable, "frozen": frozen}
    build = "app folder" if frozen else "from source"
    return "ok", (f"Python {data['python']} on {data['system']} {data['release']} {data['machine']} "
                  f"({build})"), data


def onnx_runtime() -> tuple[Status, str, dict]:
    try:
        import onnxruntime as ort
    except ImportError:  # on Windows, often the C++ runtime its libraries need: say which, and where to get it
        import importlib.util

        from engine.vc_runtime import missing_runtime_line

        spec = importlib.util.find_spec("onnxruntime")
        folders = list(spec.submodule_search_locations or []) if spec else []
        runtime = missing_runtime_line(Path(folders[0]) / "capi", needs="ONNX Runtime needs") if folders else None
        if runtime:
            return "fail", runtime, {}
        raise

    providers = ort.get_available_providers()
    data = {"version": ort.__version__, "providers": providers}
    if "CPUExecutionProvider" not in providers:
        return "fail", f"onnxruntime {ort.__version__} has no CPU provider ({', '.join(providers)})", data
    return "ok", f"onnxruntime {ort.__version__}: {', '.join(providers)}", data


def qnn_provider() -> tuple[Status, str, dict]:
    """The NPU path. Absent (no wheel for this platform, no NPU) is a note; libraries that the package
    names but that are missing (a damaged install or app folder) are a failure."""
    try:
        import onnxruntime_qnn
    except ImportError:
        return "note", "onnxruntime-qnn is not installed here (no NPU path; the CPU is used)", {}
    from engine.sessions import qnn_available

    library = Path(onnxruntime_qnn.get_library_path())
    htp = Path(onnxruntime_qnn.get_qnn_htp_path())
    info = onnxruntime_qnn.build_and_package_info
    data = {"version": getattr(info, "__version__", "unknown"), "qnn_sdk": getattr(info, "qnn_version", "unknown"),
            "provider_library": str(library), "htp_library": str(htp)}
    missing = [path.name for path in (library, htp) if not path.is_file()]
    if missing:
        return "fail", f"onnxruntime-qnn lacks {', '.join(missing)} in {library.parent}", data
    from engine.vc_runtime import missing_runtime_line

    runtime = missing_runtime_line(library.parent)  # Windows' load failure would not name it
    if runtime:
        return "fail", runtime, data
    available, why = qnn_available()
    data["available"] = available
    if not available:
        return "note", f"onnxruntime-qnn {data['version']} (QNN {data['qnn_sdk']}) loads; {why}", data
    from engine.sessions import npu_present

    data["npu"] = npu_present()
    if not data["npu"]:  # a device that is not an NPU (the HTP simulator): jobs would not run on the NPU
        return "note", (f"onnxruntime-qnn {data['version']} (QNN {data['qnn_sdk']}) loads, but offers no NPU here, "
                        f"only {why} (the HTP simulator); jobs run on the CPU"), data
    return "ok", f"onnxruntime-qnn {data['version']} (QNN {data['qnn_sdk']}): {why}", data


def qt_window(command: list[str]) -> tuple[Status, str, dict]:
    """Open a window in a child process (`command` runs ui.selftest.qt_probe): Qt aborts a process whose
    platform plugin cannot start, and that must be this check's failure, not the self-test's end."""
    # No console window flashing up when the windowed app on Windows runs the console riffstudio-cli.
    flags = subprocess.CREATE_NO_WINDOW if sys.platform == "win32" else 0
    done = subprocess.run(command, capture_output=True, text=True, timeout=QT_PROBE_TIMEOUT_S, creationflags=flags)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        why = _first_complaint(done.stderr) or f"exit code {done.returncode}"
        return "fail", f"Qt cannot open a window ({why[:300]})", {"exit_code": done.returncode}
    data = json.loads(lines[-1])
    return "ok", f"PySide6 {data['pyside']} (Qt {data['qt']}) opened a window on '{data['platform']}'", data


def _first_complaint(stderr: str) -> str:
    """Qt's reason in its error output: the first line saying what could not be done, else the last."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    telling = [line for line in lines if any(word in line.lower() for word in ("could not", "cannot", "failed"))]
    return (telling or lines or [""])[0]


def audio_output() -> tuple[Status, str, dict]:
    """PortAudio and a default output device. No device is a warning (loops still render and drag into
    the DAW); PortAudio missing where its wheel bundles it (Windows, macOS) is a damaged install."""
    try:
        import sounddevice
    except OSError as error:
        status: Status = "warning" if sys.platform.startswith("linux") else "fail"
        hint = "; install libportaudio2 to hear loops in the app" if status == "warning" else ""
        return status, f"no audio output: {reason(error, 200)}{hint}", {}
    data = {"portaudio": sounddevice.get_portaudio_version()[1]}
    try:
        device = sounddevice.query_devices(kind="output")
    except Exception as error:
        return "warning", f"no audio output device ({reason(error, 200)}); playback is off", data
    data["device"] = device["name"]
    return "ok", f"{data['portaudio']}; output {device['name']!r}", data


def wav_round_trip() -> tuple[Status, str, dict]:
    """A loop's WAV as the export writes it (libsndfile's PCM + our acid/smpl/cue/LIST chunks), written
    to disk and read back: the samples through libsndfile, the chunks by walking the RIFF file."""
    import numpy as np
    import soundfile

    from plugin.wav_chunks import LoopInfo, add_loop_chunks

    rate, count = 44100, 22050
    audio = (0.5 * np.sin(2 * np.pi * 440 * np.arange(count) / rate)).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, rate, subtype="PCM_24", format="WAV")
    info = LoopInfo(num_samples=count, sample_rate=rate, bpm=120.0, beats=1, bar_starts=(0,),
                    name="self-test", comment="self-test", software="riffstudio")
    with tempfile.TemporaryDirectory(prefix="riffstudio-self-test-") as folder:
        path = Path(folder) / "self-test.wav"
        path.write_bytes(add_loop_chunks(buffer.getvalue(), info))
        back, back_rate = soundfile.read(path, dtype="float32")
        chunks = riff_chunks(path.read_bytes())
    error = float(np.max(np.abs(back - audio)))
    data = {"libsndfile": soundfile.__libsndfile_version__, "chunks": chunks, "max_error": error}
    missing = [tag for tag in ("acid", "smpl", "cue ", "LIST", "data") if tag not in chunks]
    if missing or back_rate != rate or back.shape != audio.shape or error > 1e-5:
        return "fail", (f"the WAV read back differs (chunks missing: {missing or 'none'}, rate {back_rate}, "
                        f"{back.shape[0]} samples, error {error:.2g})"), data
    return "ok", f"libsndfile {data['libsndfile']}; chunks {', '.join(c.strip() for c in chunks)}", data


# A two-tone clip's image decodes to about -19 dB sc_mel at the draft quality; a broken FFT or filterbank
# gives noise (about 0 dB).
CODEC_MAX_SC_MEL_DB = -10.0


def spectrogram_codec() -> tuple[Status, str, dict]:
    """Half a second of two tones to a spectrogram image and back: the decode is close, and the codec
    found its fast FFT (`engine.codec.fft`; without it every decode starts ~0.2 s slower)."""
    import numpy as np

    from engine.codec import DEFAULT_PARAMS, decode_image, encode_audio, fft, sc_mel

    rate = DEFAULT_PARAMS.sample_rate
    time_s = np.arange(rate // 2) / rate
    audio = (0.5 * np.sin(2 * np.pi * 440 * time_s) + 0.2 * np.sin(2 * np.pi * 1250 * time_s)).astype(np.float32)
    image = encode_audio(audio, rate).pixels
    decoded = decode_image(image, quality="draft")
    error = sc_mel(image, decoded)
    data = {"fft": fft.BACKEND, "sc_mel_db": error, "samples": int(decoded.shape[0])}
    if not np.isfinite(decoded).all() or decoded.shape[0] != audio.shape[0] or not error <= CODEC_MAX_SC_MEL_DB:
        return "fail", (f"the codec decodes a test tone wrongly ({decoded.shape[0]} samples, sc_mel {error:.1f} dB): "
                        "reinstall riffstudio"), data
    if fft.BACKEND != "pocketfft":
        return "warning", (f"sc_mel {error:.1f} dB; the fast FFT did not load, so each decode starts ~0.2 s slower "
                           "(a scipy other than the one riffstudio was built with?)"), data
    return "ok", f"sc_mel {error:.1f} dB on a test tone; FFT: scipy's pocketfft, loaded directly", data


def riff_chunks(wav: bytes) -> list[str]:
    """The top-level chunk tags of a RIFF/WAVE file, in order."""
    tags, position = [], 12
    while position + 8 <= len(wav):
        size = struct.unpack("<I", wav[position + 4 : position + 8])[0]
        tags.append(wav[position : position + 4].decode("latin-1"))
        position += 8 + size + (size & 1)
    return tags
