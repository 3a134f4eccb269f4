"""What Windows does differently, simulated on this machine where it can be (issue 25): the behaviours are
Windows', the code paths are the ones Windows runs.

- A venv's python.exe is a redirector: it starts the real interpreter as its child and waits (CPython
  bpo-35797), so the engine a client spawns is not the process it spawned.
- Windows refuses a rename while another process holds the target open (Defender, the indexer, OneDrive,
  Excel with summary.csv open): os.replace fails with a sharing violation for a moment.
- Windows' os.access says a folder is writable whatever its ACL says (it reads only the read-only attribute).
- A Windows machine may lack the Visual C++ runtime the QNN libraries link against (a System32 of our own).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.client import EngineClient
from engine.process import launch

pytestmark = pytest.mark.usefixtures("home")

# A launcher that runs its arguments as a child process and waits for it, as a Windows venv's python.exe does.
REDIRECTOR = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def test_a_client_attaches_to_the_engine_its_launcher_started(monkeypatch):
    started: list[list[str]] = []
    real = launch.serve_command

    def through_a_redirector(settings):
        command = [sys.executable, "-c", REDIRECTOR, *real(settings)]
        started.append(command)
        return command

    monkeypatch.setattr(launch, "serve_command", through_a_redirector)
    with EngineClient(name="venv-client", start_timeout_s=30) as client:
        assert started, "the client spawned no engine"
        launcher_pids = set(client._spawned.values())
        assert client.pid not in {popen.pid for popen in launcher_pids}  # the engine is the launcher's child
        assert client.ping() >= 0
        assert client.status().pid == client.pid
        client.shutdown()
    for popen in launcher_pids:
        assert popen.wait(timeout=30) == 0  # the launcher ends with its engine


def test_an_engine_started_by_someone_else_is_still_found(monkeypatch, tmp_path):
    """The token only tells the spawning client which engine is its own; any client attaches to a running one."""
    with EngineClient(name="first", start_timeout_s=30) as first, EngineClient(name="second", start=False) as second:
        assert second.pid == first.pid
        first.shutdown()


def test_a_rename_held_up_by_a_sharing_violation_is_retried(monkeypatch, tmp_path):
    from engine import atomic

    calls: list[tuple[str, str]] = []
    real = os.replace

    def busy_twice(src, dst):
        calls.append((str(src), str(dst)))
        if len(calls) <= 2:
            error = PermissionError(13, "The process cannot access the file because it is being used by another "
                                        "process")
            error.winerror = 32  # ERROR_SHARING_VIOLATION, as Windows sets it
            raise error
        return real(src, dst)

    monkeypatch.setattr(os, "replace", busy_twice)
    out = tmp_path / "summary.csv"
    atomic.write_bytes_atomic(out, b"key,state\r\n")
    assert out.read_bytes() == b"key,state\r\n" and len(calls) == 3
    assert atomic.leftover_temporaries([out]) == []


def test_a_rename_that_stays_refused_fails_after_its_retries_with_the_reason(monkeypatch, tmp_path):
    from engine import atomic

    def always_busy(src, dst):
        error = PermissionError(13, "The process cannot access the file because it is being used by another process")
        error.winerror = 32
        raise error

    monkeypatch.setattr(os, "replace", always_busy)
    monkeypatch.setattr(atomic, "REPLACE_RETRY_S", 0.3)
    with pytest.raises(PermissionError):
        atomic.write_bytes_atomic(tmp_path / "x.json", b"{}")
    assert list(Path(tmp_path).iterdir()) == []  # no temporary left behind


def test_a_plain_permission_error_is_not_retried(monkeypatch, tmp_path):
    from engine import atomic

    calls = []

    def denied(src, dst):
        calls.append(src)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", denied)
    with pytest.raises(PermissionError):
        atomic.write_bytes_atomic(tmp_path / "x.json", b"{}")
    assert len(calls) == 1


def test_only_a_real_npu_is_taken_by_auto(qnn_bundle, fp32_bundle):
    """The QNN provider lists a device for what it can run on; the x86_64 wheel's HTP back end is a simulator
    it lists as a CPU device (as the x64 Windows build's is): `auto` must not count it as the NPU."""
    from engine.bundle import open_bundle
    from engine.generation.providers import choose_provider
    from engine.sessions import npu_present, qnn_available

    available, why = qnn_available()
    assert available, why  # the simulator is here (CI installs onnxruntime-qnn)
    assert not npu_present()
    settings, reason = choose_provider("auto", open_bundle(qnn_bundle))
    assert settings.provider == "cpu" and "only the HTP simulator" in reason
    settings, reason = choose_provider("qnn", open_bundle(qnn_bundle))
    assert settings.provider == "qnn" and reason == "QNN's HTP simulator (no NPU here), as asked"
    settings, reason = choose_provider("auto", open_bundle(fp32_bundle))
    assert settings.provider == "cpu" and reason == "CPU: fp32 bundle (no NPU here)"  # not the simulator's name


def test_a_windows_fatal_exception_is_read_as_the_crash_reason():
    """faulthandler writes "Windows fatal exception: ..." for an access violation (a driver's crash) where a
    POSIX system writes "Fatal Python error: ...": the next engine must name it as its predecessor's end."""
    from engine.process.server import _last_line

    log = ('Windows fatal exception: access violation\n\nThread 0x000015a4 (most recent call first):\n'
           '  File "engine\\sessions.py", line 120 in create_session\n')
    assert _last_line(log) == "Windows fatal exception: access violation"


def test_the_npus_dsp_libraries_are_found_beside_the_provider(tmp_path):
    """onnxruntime-qnn leaves ADSP_LIBRARY_PATH unset; the HTP's DSP side needs it to find its skeletons."""
    import subprocess

    code = ("import os, onnxruntime_qnn\nfrom pathlib import Path\nfrom engine.sessions import qnn_available\n"
            "assert qnn_available()[0]\n"
            "assert os.environ['ADSP_LIBRARY_PATH'] == str(Path(onnxruntime_qnn.get_library_path()).parent)\n"
            "print('ok')")
    env = {k: v for k, v in os.environ.items() if k != "ADSP_LIBRARY_PATH"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.stdout.strip() == "ok", result.stderr
    mine = subprocess.run([sys.executable, "-c", "import os; from engine.sessions import qnn_available; "
                           "qnn_available(); print(os.environ['ADSP_LIBRARY_PATH'])"],
                          capture_output=True, text=True, timeout=120, env={**env, "ADSP_LIBRARY_PATH": str(tmp_path)})
    assert mine.stdout.strip() == str(tmp_path), mine.stderr  # the user's own value is kept


def test_the_memory_ceiling_sees_this_processs_memory():
    """On every platform (Windows has no `resource` module: it read 0 there, so the ceiling ignored what was
    loaded): this process, with numpy and ONNX Runtime imported, holds tens of MB at least."""
    import numpy as np
    import onnxruntime  # noqa: F401

    from engine.process.memory import rss_bytes

    before = rss_bytes()
    held = np.ones(64 << 20, np.uint8)  # 64 MB, touched
    assert before > 20 << 20 and rss_bytes() >= before + (48 << 20)
    del held


def test_a_job_stopped_by_a_shutdown_is_queued_again_without_counting_a_crash(tmp_path):
    """A shutdown, restart or logoff ends the engine mid-job; two such ends counted as crashes retired the job
    ("this job stopped the engine twice"). A job that was running before the machine booted is requeued as is;
    one running since the boot that finds its engine gone still counts."""
    import time

    from engine.process.boot import boot_time
    from engine.process.journal import Journal

    booted = boot_time()
    assert booted is not None and booted < time.time()  # this machine's own clock of its start
    journal = Journal(tmp_path / "journal.sqlite3")
    job, _ = journal.submit({"settings": {"prompt": "pad"}}, "batch", None)
    for _ in range(3):  # three shutdowns in a row, each after the job had started running
        journal.mark_running(job.id)
        assert journal.recover("the engine stopped without saying why", booted=time.time() + 1) == []
        assert (journal.get(job.id).state, journal.get(job.id).crashes) == ("queued", 0)
    journal.mark_running(job.id)
    journal.recover("killed by SIGKILL", booted=booted)  # running since this boot: a crash
    journal.mark_running(job.id)
    (failed,) = journal.recover("killed by SIGKILL", booted=booted)
    assert failed.id == job.id and failed.error_code == "engine_crashed"
    journal.close()


def test_the_apps_children_write_utf8_whatever_the_code_page(tmp_path):
    """A Windows console program writes in the ANSI code page; the app decodes its children as UTF-8. Asked
    by the app (as ui/app/child_output.py asks), a child writes UTF-8 even where its code page is cp1252."""
    import subprocess

    missing = tmp_path / "Zoë" / "漢字.wav"
    command = [sys.executable, "-m", "ui.cli.main", "loop", str(missing), "--bpm", "120", "--out",
               str(tmp_path / "out.wav")]
    cp1252 = {**os.environ, "PYTHONIOENCODING": "cp1252", "PYTHONUTF8": "0"}
    plain = subprocess.run(command, capture_output=True, timeout=60, env=cp1252)
    asked = subprocess.run(command, capture_output=True, timeout=60, env={**cp1252, "RIFFSTUDIO_UTF8_OUTPUT": "1"})
    assert plain.returncode == asked.returncode == 2
    with pytest.raises(UnicodeDecodeError):  # what the app got: "Zo\xeb" is not UTF-8
        plain.stderr.decode("utf-8")
    line = asked.stderr.decode("utf-8")
    assert "Zoë" in line and "漢字.wav" in line, line


def test_the_app_asks_its_children_for_utf8(qtbot):
    from PySide6.QtCore import QProcess

    from ui.app.child_output import UTF8_OUTPUT_ENV, asking_for_utf8

    process = asking_for_utf8(QProcess())
    assert process.processEnvironment().value(UTF8_OUTPUT_ENV) == "1"
    assert process.processEnvironment().contains("PATH")  # the app's own environment, plus the request


def test_a_windowed_programs_output_is_kept_in_the_app_log(tmp_path):
    """PyInstaller's windowed riffstudio.exe runs with sys.stdout and sys.stderr None: what the app prints for a
    bug was lost. The entry point sends both to the app log."""
    import subprocess

    log = tmp_path / "engine" / "app.log"
    code = ("import sys, traceback\nsys.stdout = None\nsys.stderr = None\n"
            "from pathlib import Path\nfrom ui.windowed_output import keep_windowed_output\n"
            f"assert keep_windowed_output(Path({str(log)!r})) == Path({str(log)!r})\n"
            "print('engine ready')\n"
            "try:\n    1 / 0\nexcept ZeroDivisionError:\n    traceback.print_exc()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    text = log.read_text(encoding="utf-8")
    assert "engine ready" in text and "ZeroDivisionError" in text
    from ui.windowed_output import keep_windowed_output

    assert keep_windowed_output() is None  # a console program (this test) keeps its own streams


def test_the_exe_manifest_makes_the_process_code_page_utf8():
    """A narrow-string Windows call (the QNN provider's LoadLibraryExA, its cache paths) cannot spell a user
    name outside the system code page; the programs' manifest makes that code page UTF-8. PyInstaller's own
    manifest writer (what the Windows build runs) keeps our settings and adds only its Common Controls."""
    import xml.dom.minidom

    from conftest import REPO
    from PyInstaller.utils.win32.winmanifest import create_application_manifest

    source = (REPO / "packaging" / "riffstudio.manifest").read_bytes()
    built = xml.dom.minidom.parseString(create_application_manifest(source))
    settings = {node.localName: node.firstChild.data for node in built.getElementsByTagName("*")
                if node.parentNode.localName == "windowsSettings"}
    assert settings == {"activeCodePage": "UTF-8", "longPathAware": "true"}
    level = built.getElementsByTagName("requestedExecutionLevel")[0]
    assert level.getAttribute("level") == "asInvoker"
    assert 'manifest=str(REPO / "packaging" / "riffstudio.manifest")' in (
        REPO / "packaging" / "riffstudio.spec").read_text()


def test_a_normal_and_an_elevated_client_each_get_their_own_engine(monkeypatch, run_cli):
    """An elevated client and a normal one shared one engine: the normal one could not open the elevated
    engine's pipe (it waited 60 s) nor stop it. Each privilege level now has its own engine, folders and
    journal; stopping one leaves the other."""
    from engine.process.paths import ELEVATED_TEST_ENV

    with EngineClient(name="normal", start_timeout_s=30) as normal:
        monkeypatch.setenv(ELEVATED_TEST_ENV, "1")
        with EngineClient(name="elevated", start_timeout_s=30) as elevated:
            assert elevated.pid != normal.pid and normal.ping() >= 0 and elevated.ping() >= 0
            monkeypatch.delenv(ELEVATED_TEST_ENV)
            assert "stopped" in run_cli("engine", "stop").stdout  # the normal level's engine
            monkeypatch.setenv(ELEVATED_TEST_ENV, "1")
            assert elevated.status().pid == elevated.pid  # the elevated one serves on
            elevated.shutdown()



@contextlib.contextmanager
def closed_to_us(folder: Path) -> Iterator[Path]:
    """`folder`, made one this process cannot create files in, as an ACL that refuses us makes one on Windows: by
    its mode (which binds a normal user), or for root, whom modes do not bind, by the immutable attribute."""
    import shutil
    import subprocess

    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root, whom a folder's mode does not bind, and chattr +i is not available here")
    try:
        yield folder
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


def test_a_folder_an_acl_closes_is_not_taken_for_writable(monkeypatch, tmp_path):
    """Windows' os.access reads only the read-only attribute, which folders ignore: it says yes to a folder whose
    ACL refuses us. The writability checks probe instead: they make (and remove) a file of their own there."""
    from engine.atomic import can_write_in

    monkeypatch.setattr(os, "access", lambda *args, **kwargs: True)  # Windows' answer for any folder
    (tmp_path / "closed").mkdir()
    with closed_to_us(tmp_path / "closed") as closed:
        assert not can_write_in(closed)
    assert can_write_in(tmp_path)
    assert list(tmp_path.iterdir()) == [tmp_path / "closed"]  # the probe left nothing


def test_npu_contexts_go_to_the_user_cache_when_the_bundles_cache_folder_refuses_us(monkeypatch, tmp_path,
                                                                                   fp32_bundle):
    """A bundle under Program Files (or a share) whose `cache` folder the user may not write: the compiled
    contexts go to the user's cache instead of failing minutes later, whatever os.access says."""
    import shutil

    from engine.bundle import open_bundle
    from engine.bundle.bundle import CACHE_FOLDER

    shutil.copytree(fp32_bundle, tmp_path / "bundle", copy_function=os.link)
    bundle = open_bundle(tmp_path / "bundle")
    (tmp_path / "bundle" / CACHE_FOLDER).mkdir(exist_ok=True)
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: True)  # Windows' answer for any folder
    assert bundle.cache_dir() == tmp_path / "bundle" / CACHE_FOLDER  # open to us: the bundle's own
    with closed_to_us(tmp_path / "bundle" / CACHE_FOLDER):
        assert bundle.cache_dir() == bundle.cache_dirs()[1] and bundle.cache_dir().is_dir()


def test_the_self_test_names_a_missing_visual_cpp_runtime(monkeypatch, tmp_path):
    """onnxruntime-qnn's provider and the QNN libraries link against Microsoft's C++ runtime, which a new
    Snapdragon laptop may lack: the provider's load then fails as "The specified module could not be found"
    (error 126), naming neither the DLL nor the fix. The self-test's QNN line names both. Simulated: Windows
    here, with a Windows folder of our own, first without the runtime, then with it."""
    from engine import vc_runtime
    from ui.selftest import checks

    monkeypatch.setattr(vc_runtime, "WINDOWS", True)
    system32 = tmp_path / "Windows" / "System32"
    system32.mkdir(parents=True)
    monkeypatch.setenv("SYSTEMROOT", str(system32.parent))
    status, line, _ = checks.qnn_provider()
    assert status == "fail", line
    assert "Visual C++ runtime (x64)" in line and "msvcp140.dll, vcruntime140.dll, vcruntime140_1.dll" in line
    assert "https://aka.ms/vs/17/release/vc_redist.x64.exe" in line and "\n" not in line
    for name in ("MSVCP140.dll", "VCRUNTIME140.dll", "vcruntime140_1.dll"):  # as the redistributable names them
        (system32 / name).write_bytes(b"MZ")
    status, line, _ = checks.qnn_provider()
    assert status != "fail" and "Visual C++" not in line, line  # on to the provider itself: the HTP simulator here
    assert vc_runtime.missing_runtime_line(tmp_path, machine="ARM64") is None
    (system32 / "MSVCP140.dll").unlink()
    arm64 = vc_runtime.missing_runtime_line(tmp_path, machine="ARM64")
    assert arm64 is not None and "(arm64)" in arm64 and "(msvcp140.dll)" in arm64 and "vc_redist.arm64.exe" in arm64


def test_the_app_folder_takes_the_runtime_from_the_redistributables_folder_first(monkeypatch, tmp_path):
    """packaging/riffstudio.spec copies the runtime into the app folder from the build machine: the Visual Studio
    redistributable's own folder where a developer prompt names it, else System32 (simulated Windows folders)."""
    from engine.vc_runtime import app_local_copies

    redist = tmp_path / "Redist" / "MSVC" / "14.42.34433"
    (redist / "arm64" / "Microsoft.VC143.CRT").mkdir(parents=True)
    for name in ("msvcp140.dll", "vcruntime140.dll", "concrt140.dll"):
        (redist / "arm64" / "Microsoft.VC143.CRT" / name).write_bytes(b"MZ")
    system32 = tmp_path / "Windows" / "System32"
    system32.mkdir(parents=True)
    (system32 / "VCRUNTIME140.dll").write_bytes(b"MZ")
    monkeypatch.setenv("SYSTEMROOT", str(system32.parent))
    monkeypatch.setenv("VCTOOLSREDISTDIR", str(redist))
    assert app_local_copies("ARM64") == [redist / "arm64" / "Microsoft.VC143.CRT" / name
                                         for name in ("msvcp140.dll", "vcruntime140.dll")]
    assert app_local_copies("AMD64") == [system32 / "VCRUNTIME140.dll"]  # no x64 folder: what System32 has
    monkeypatch.delenv("VCTOOLSREDISTDIR")
    assert app_local_copies("ARM64") == [system32 / "VCRUNTIME140.dll"]
