"""Getting a model in the desktop app: "Get Riffusion" in the empty state runs `riffstudio model get --json` as
a child process (ui/app/model_get_runner.py) against a local stand-in for the Hugging Face Hub (tests/fake_hub.py)
serving the tiny test model as riffusion's; pause, resume at the next start, cancel, offline; the Model dialog's
list of the models folder; and the window's process importing none of the model code.

Real widgets (offscreen), real child processes, every user folder in a private home (tests/engine_fixtures.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import fake_hub
import pytest
from conftest import REPO
from fake_hub import FakeHub, FakeRepo
from PySide6.QtCore import Qt

REPO_ID = "riffusion/riffusion-model-v1"
UNET_FILE = "unet/diffusion_pytorch_model.safetensors"
TIMEOUT_MS = 120_000
HEAVY = ("onnxruntime", "torch", "engine.sessions", "engine.model_get.get", "engine.model_get.bundle_build",
         "huggingface_hub")


@pytest.fixture
def hub(tiny_sd_dir: Path, tiny_templates: Path, home: Path, monkeypatch):
    """The tiny model served as riffusion's, and this process's environment (which the app's children inherit)
    pointed at it: the Hub's address, HF_HOME in the private home, the tiny architecture's template cache."""
    with FakeHub([FakeRepo(REPO_ID, tiny_sd_dir)]) as server:
        for name, value in {**server.env(), "HF_HOME": str(home / "hf"),
                            "RIFFSTUDIO_TEMPLATE_CACHE": str(tiny_templates)}.items():
            monkeypatch.setenv(name, value)
        yield server


@pytest.fixture
def held_unet(monkeypatch):
    """The hub sends the first 4 MB of the UNet's weights, then holds the rest until `release` is set (a slow
    link, so a test can pause or cancel mid-file); a Range request (the resume) is never held."""
    release = threading.Event()
    original = fake_hub._Handler._stream

    class Held:
        def __init__(self, out) -> None:
            self.out, self.sent = out, 0

        def write(self, data: bytes) -> int:
            if self.sent + len(data) > 4_000_000:
                release.wait(60)
            self.sent += len(data)
            return self.out.write(data)

        def __getattr__(self, name: str):
            return getattr(self.out, name)

    def stream(handler, hub, file, start, end) -> None:
        if file.path != UNET_FILE or start != 0 or release.is_set():
            return original(handler, hub, file, start, end)
        handler.wfile = Held(handler.wfile)
        try:
            original(handler, hub, file, start, end)
        finally:
            handler.wfile = handler.wfile.out

    monkeypatch.setattr(fake_hub._Handler, "_stream", stream)
    yield release
    release.set()


def open_window(qtbot, settings=None):
    from ui.app.settings import AppSettings
    from ui.app.window import MainWindow

    window = MainWindow(settings or AppSettings())
    qtbot.addWidget(window)
    window.show()
    return window


def click(qtbot, button) -> None:
    assert button.isVisible() and button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def wait_for_offer(qtbot, window) -> str:
    """The Get button's label once the plan (a child) has sized it."""
    qtbot.waitUntil(lambda: window.get_plan is not None, timeout=TIMEOUT_MS)
    return window.empty_state.get_button.text()


def downloads(home: Path) -> Path:
    return home / "cache" / "riffstudio" / "downloads" / REPO_ID.replace("/", "--")


def partial_unet(home: Path) -> list[Path]:
    return list(downloads(home).rglob(".diffusion_pytorch_model.safetensors.riffstudio-partial"))


def record(signal) -> list:
    """What `signal` carries each time (True for a signal without arguments)."""
    seen: list = []
    signal.connect(lambda *args: seen.append(args[0] if args else True))
    return seen


def test_get_riffusion_downloads_builds_into_the_models_folder_and_the_window_uses_it(qtbot, hub, home):
    from ui.app.settings import AppSettings, load_settings

    models = home / "my models"
    window = open_window(qtbot, AppSettings(get_precision="fp32", models_dir=str(models)))
    panel = window.empty_state
    assert panel.isVisible() and panel.browse_button.isVisible() and panel.convert_button.isVisible()
    assert wait_for_offer(qtbot, window) == "Get Riffusion (23 MB download, about 1 minute here)"
    progress = record(window.getter.progress)
    lines: list[str] = []
    window.getter.progress.connect(lambda _: lines.append(panel.status.text()))
    click(qtbot, panel.get_button)
    assert panel.progress.isVisible() and panel.pause_button.isVisible() and panel.cancel_button.isVisible()
    bundle = models / "riffusion-model-v1-fp32"
    qtbot.waitUntil(lambda: window.settings.bundle == str(bundle), timeout=TIMEOUT_MS)

    downloading = [p for p in progress if p.bytes is not None]
    building = [p for p in progress if p.bytes is None]
    assert downloading and building and progress.index(building[0]) > progress.index(downloading[-1])
    assert downloading[-1].bytes == downloading[-1].total == window.get_plan.total_bytes
    assert [p.fraction for p in progress] == sorted(p.fraction for p in progress)
    assert any(line.startswith(f"downloading {UNET_FILE} ") and " / 22.6 MB" in line for line in lines)
    assert any(line == "hashing files" for line in lines)
    assert (bundle / "manifest.json").is_file()
    # The window uses it as a chosen bundle: checked, loaded by the engine, remembered; the empty state is gone.
    qtbot.waitUntil(lambda: "runs on the CPU" in window.model_label.text(), timeout=TIMEOUT_MS)
    assert not panel.isVisible() and not window.model_message.isVisible()
    saved = load_settings()
    assert saved.bundle == str(bundle) and saved.unfinished_get == ""
    window.shutdown()


def test_pause_keeps_the_download_and_the_next_start_resumes_it_with_a_range_request(qtbot, hub, home, held_unet):
    from ui.app.model_get_runner import GetRequest
    from ui.app.settings import AppSettings, load_settings

    window = open_window(qtbot, AppSettings(get_precision="fp32"))
    panel = window.empty_state
    wait_for_offer(qtbot, window)
    progress = record(window.getter.progress)
    click(qtbot, panel.get_button)
    qtbot.waitUntil(lambda: any(p.stage == f"downloading {UNET_FILE}" for p in progress), timeout=TIMEOUT_MS)
    click(qtbot, panel.pause_button)
    qtbot.waitUntil(lambda: panel.resume_button.isVisible(), timeout=10_000)
    assert window.getter.state == "idle" and "Paused" in panel.status.text()
    held_unet.set()
    [partial] = partial_unet(home)
    assert 1_000_000 <= partial.stat().st_size <= 4_000_000
    remembered = GetRequest.from_text(load_settings().unfinished_get)
    assert remembered == GetRequest(precision="fp32", folder=str(home / "data" / "riffstudio" / "models"))
    window.shutdown()

    # The next start offers to resume, with what is left to download.
    window = open_window(qtbot, load_settings())
    panel = window.empty_state
    label = wait_for_offer(qtbot, window)
    assert label.startswith("Resume getting Riffusion (") and label.endswith(" MB left)")
    plan = window.get_plan  # the files fetched whole and the partial one count as fetched
    assert 0 < plan.remaining_bytes <= plan.total_bytes - partial.stat().st_size
    loads = []
    window.controller.load_model = lambda *args: loads.append(args)  # the engine's loading is the test above's
    click(qtbot, panel.get_button)
    bundle = remembered.out
    qtbot.waitUntil(lambda: bool(loads), timeout=TIMEOUT_MS)
    assert window.settings.bundle == bundle and loads == [(bundle, "auto")]
    ranges = [r.headers["range"] for r in hub.requests if r.method == "GET" and r.path.endswith(UNET_FILE)
              and "range" in r.headers]
    assert ranges and ranges[-1].startswith("bytes=") and not ranges[-1].startswith("bytes=0-")
    assert load_settings().unfinished_get == "" and not partial_unet(home)
    window.shutdown()


def test_cancel_stops_the_get_and_discards_its_download(qtbot, hub, home, held_unet):
    """Precision auto: the child's plan says which (int8 here, no NPU) and so the bundle's folder."""
    from ui.app.settings import load_settings

    window = open_window(qtbot)
    panel = window.empty_state
    assert wait_for_offer(qtbot, window).startswith("Get Riffusion (")
    progress = record(window.getter.progress)
    click(qtbot, panel.get_button)
    qtbot.waitUntil(lambda: any(p.stage == f"downloading {UNET_FILE}" for p in progress), timeout=TIMEOUT_MS)
    assert window.getter.request.out == str(home / "data" / "riffstudio" / "models" / "riffusion-model-v1-int8")
    assert json.loads(load_settings().unfinished_get)["precision"] == "int8"
    assert partial_unet(home)
    cancelled = record(window.getter.cancelled)
    click(qtbot, panel.cancel_button)
    qtbot.waitUntil(lambda: bool(cancelled), timeout=30_000)
    held_unet.set()
    assert not downloads(home).exists()
    assert load_settings().unfinished_get == ""
    # Back to the offer, sized again: the whole download.
    qtbot.waitUntil(lambda: panel.get_button.isVisible() and "download" in panel.get_button.text(), timeout=30_000)
    assert window.get_plan.remaining_bytes == window.get_plan.total_bytes
    assert not window.settings.bundle
    window.shutdown()


def test_offline_the_empty_state_says_quietly_it_could_not_check_and_a_get_says_why(qtbot, home, monkeypatch):
    """Offline at the start: the window's own size check fails, which nobody asked for, so a quiet line (the
    child's in its tooltip), not a red error; pressing Get then fails with the one-line reason, in red."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    window = open_window(qtbot)
    panel = window.empty_state
    qtbot.waitUntil(lambda: panel.reason.isVisible(), timeout=TIMEOUT_MS)
    assert panel.reason.text().startswith("Could not check the download's size just now (no connection?)")
    assert "ff6b6b" not in panel.reason.styleSheet()
    reason = panel.reason.toolTip()
    assert reason.startswith("riffstudio: cannot download riffusion/riffusion-model-v1: HF_HUB_OFFLINE is set")
    assert "\n" not in reason and "Traceback" not in reason
    for button in (panel.get_button, panel.browse_button, panel.convert_button):
        assert button.isVisible() and button.isEnabled()
    failed = record(window.getter.failed)
    click(qtbot, panel.get_button)  # trying anyway: the same line, and nothing left running
    qtbot.waitUntil(lambda: bool(failed), timeout=TIMEOUT_MS)
    assert failed == [reason] and panel.reason.text() == reason and window.getter.state == "idle"
    assert "ff6b6b" in panel.reason.styleSheet()
    assert panel.get_button.isVisible() and not panel.progress.isVisible()
    window.shutdown()


# -- the runner on its own: what a child can do wrong -------------------------------------------------------

CHILD = """
import os, sys, time
out = sys.stdout
out.write('{"event": "progress", "stage": "downloading a", "fraction": 0.25, "by'); out.flush(); time.sleep(0.3)
out.write('tes": 5, "total": 20, "rate": 1000000.0, "eta": 15.0}\\nnot json\\n[1]\\n'); out.flush()
out.write('{"event": "note", "message": "hello"}'); out.flush()  # the last line, unterminated
sys.stderr.write("Traceback (most recent call last):\\n  ...\\nriffstudio: the last line\\n\\n")
sys.stderr.flush()
if sys.argv[1] == "crash":
    os.kill(os.getpid(), 9)
sys.exit(int(sys.argv[1]))
"""


def runner_for(qtbot, *command: str):
    from ui.app.model_get_runner import ModelGetRunner

    runner = ModelGetRunner(command=list(command))
    events = {name: record(getattr(runner, name)) for name in
              ("planned", "plan_failed", "started", "progress", "note", "done", "failed", "paused", "cancelled")}
    return runner, events


@pytest.mark.parametrize("ending", ["3", "crash", "0"])
def test_the_runner_reads_lines_in_pieces_and_reports_a_failing_child_by_its_last_stderr_line(qtbot, tmp_path,
                                                                                             ending):
    from ui.app.model_get_runner import GetProgress, GetRequest

    runner, events = runner_for(qtbot, sys.executable, "-c", CHILD, ending)  # the get's arguments follow: ignored
    runner.get(GetRequest(precision="fp32", folder=str(tmp_path)))
    qtbot.waitUntil(lambda: bool(events["failed"]), timeout=30_000)
    assert events["progress"] == [GetProgress("downloading a", 0.25, 5, 20, 1e6, 15.0)]
    assert events["progress"][0].describe() == "downloading a 0.0 / 0.0 MB, 1.0 MB/s, 0:15 left"
    assert events["note"] == ["hello"] and not events["done"]
    assert events["failed"] == ["riffstudio: the last line"]  # exit 0 without a bundle is a failure too
    assert runner.state == "idle"


def test_the_runner_says_when_the_command_cannot_start_and_pause_stops_a_child(qtbot, tmp_path):
    from ui.app.model_get_runner import GetRequest

    runner, events = runner_for(qtbot, str(tmp_path / "no-such-riffstudio-cli"))
    runner.get(GetRequest(precision="fp32", folder=str(tmp_path)))
    qtbot.waitUntil(lambda: bool(events["failed"]), timeout=10_000)
    assert events["failed"][0].startswith("riffstudio: could not start ") and runner.state == "idle"

    runner, events = runner_for(qtbot, sys.executable, "-c", "import time; time.sleep(60)")
    runner.get(GetRequest(precision="int8", folder=str(tmp_path)))
    assert runner.state == "getting" and events["started"][0].out == str(tmp_path / "riffusion-model-v1-int8")
    runner.pause()
    qtbot.waitUntil(lambda: bool(events["paused"]), timeout=10_000)
    assert runner.state == "idle" and not events["failed"]


def test_a_get_request_round_trips_through_the_settings_text():
    from ui.app.model_get_runner import GetRequest

    request = GetRequest(precision="qnn", folder="/m")
    assert GetRequest.from_text(request.to_text()) == request
    assert request.arguments() == ["model", "get", REPO_ID, "--precision", "qnn", "--out",
                                   str(Path("/m") / "riffusion-model-v1-qnn"), "--json"]
    assert GetRequest(folder="/m").arguments("--plan")[-2:] == ["--json", "--plan"]  # auto: no --out yet
    assert GetRequest.from_text("") is None and GetRequest.from_text("{not json") is None


# -- the models folder ------------------------------------------------------------------------------------


def install_copies(fp32_bundle: Path, models: Path) -> tuple[Path, Path]:
    """Two bundles in `models`: the fp32 test bundle copied twice, the second made later."""
    older, newer = models / "older-fp32", models / "riffusion-model-v1-fp32"
    for folder, created in ((older, "2026-01-01T10:00:00+00:00"), (newer, "2026-06-01T10:00:00+00:00")):
        shutil.copytree(fp32_bundle, folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        (folder / "manifest.json").write_text(json.dumps({**manifest, "created": created}))
    (models / ".riffusion-model-v1-int8.x1.partial").mkdir()  # a bundle being written: not listed
    (models / "not-a-bundle").mkdir()
    return older, newer


def test_the_model_dialog_lists_the_models_folder_and_removes_only_the_chosen_bundle(qtbot, tmp_path, fp32_bundle,
                                                                                     monkeypatch):
    from PySide6.QtCore import QUrl
    from PySide6.QtGui import QDesktopServices
    from PySide6.QtWidgets import QMessageBox

    from engine.model_get.installed import folder_size, size_text
    from ui.app.model_dialog import ModelDialog

    models = tmp_path / "models"
    models.mkdir()
    older, newer = install_copies(fp32_bundle, models)
    dialog = ModelDialog(str(newer), "", models=models)
    qtbot.addWidget(dialog)
    dialog.show()
    items = [dialog.bundles.topLevelItem(row) for row in range(dialog.bundles.topLevelItemCount())]
    rows = [[item.text(column) for column in range(3)] for item in items]
    size = size_text(folder_size(newer))
    assert rows == [["riffusion-model-v1-fp32", "fp32", size], ["older-fp32", "fp32", size]]
    assert dialog.selected().path == newer  # the one in use

    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    dialog.select(older)
    click(qtbot, dialog.reveal)
    assert opened == [QUrl.fromLocalFile(str(older))]

    answers = iter([QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes])
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda parent, title, text, *a: asked.append(text) or next(answers))
    removed = record(dialog.bundle_removed)
    click(qtbot, dialog.remove)
    assert older.is_dir() and not removed and "older-fp32" in asked[0]
    click(qtbot, dialog.remove)
    assert not older.exists() and newer.is_dir() and (models / "not-a-bundle").is_dir()
    assert removed == [str(older)] and dialog.bundles.topLevelItemCount() == 1

    chosen = record(dialog.bundle_chosen)
    dialog.select(newer)
    click(qtbot, dialog.use)
    assert chosen == [str(newer)]


def test_remove_refuses_anything_but_a_bundle_directly_in_the_models_folder(tmp_path):
    from engine.errors import InvalidInputError
    from engine.model_get.installed import remove_bundle

    models, elsewhere = tmp_path / "models", tmp_path / "elsewhere"
    for folder in (models / "plain", elsewhere / "bundle", models / "a" / "nested"):
        folder.mkdir(parents=True)
    (elsewhere / "bundle" / "manifest.json").write_text("{}")
    (models / "a" / "nested" / "manifest.json").write_text("{}")
    (models / "link").symlink_to(elsewhere / "bundle")
    for path in (models / "plain", elsewhere / "bundle", models / "a" / "nested", models / "link", models / ".."):
        with pytest.raises(InvalidInputError, match="nothing was removed"):
            remove_bundle(path, models)
    assert (elsewhere / "bundle" / "manifest.json").is_file() and (models / "plain").is_dir()


def test_the_app_starts_with_the_newest_bundle_of_the_models_folder_without_remembering_it(qtbot, home, fp32_bundle):
    from ui.app.settings import AppSettings, load_settings

    models = home / "data" / "riffstudio" / "models"
    models.mkdir(parents=True)
    _older, newer = install_copies(fp32_bundle, models)
    window = open_window(qtbot, AppSettings())
    assert window.settings.bundle == str(newer) and not window.empty_state.isVisible()
    assert window.getter.state == "idle"  # no plan: there is a model
    window.shutdown()
    assert load_settings().bundle == ""  # a newer bundle there is the next start's


def test_another_models_folder_in_settings_is_where_the_app_looks_and_gets(qtbot, home, fp32_bundle, tmp_path):
    from dataclasses import replace

    from ui.app.settings import AppSettings, load_settings
    from ui.app.settings_dialog import SettingsDialog

    window = open_window(qtbot, AppSettings())
    assert not window.settings.bundle and window.empty_state.isVisible()
    dialog = SettingsDialog(window.settings, window)
    assert dialog.value().models_dir == ""  # the default folder, shown, stays "the default"
    models = tmp_path / "elsewhere"
    dialog.models_dir.setText(str(models))
    dialog.get_precision.setCurrentText("fp32")
    chosen = dialog.value()
    assert (chosen.models_dir, chosen.get_precision) == (str(models), "fp32")
    window.apply_settings(chosen)
    assert window.get_request().out == str(models / "riffusion-model-v1-fp32")  # Get Riffusion's --out
    assert not window.settings.bundle and window.empty_state.isVisible()
    filled = tmp_path / "filled"
    shutil.copytree(fp32_bundle, filled / "mine-fp32")
    window.apply_settings(replace(chosen, models_dir=str(filled)))
    assert window.settings.bundle == str(filled / "mine-fp32") and not window.empty_state.isVisible()
    window.shutdown()
    assert load_settings().models_dir == str(filled) and load_settings().bundle == ""


def test_the_listing_and_the_window_module_import_no_model_code():
    code = ("import sys\nimport engine.model_get.installed, ui.app.window, ui.app.model_dialog, "
            f"ui.app.settings_dialog\nprint(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.stdout.strip() == "[]"


def test_convert_without_the_export_extra_shows_the_one_line_in_the_dialog(qtbot, home, tmp_path, tiny_sd_dir,
                                                                           monkeypatch):
    from ui.app.model_dialog import ModelDialog

    poison = tmp_path / "poison"
    (poison / "torch").mkdir(parents=True)
    (poison / "torch" / "__init__.py").write_text("raise ImportError('no torch here')")
    monkeypatch.setenv("PYTHONPATH", str(poison))
    dialog = ModelDialog("", "", models=tmp_path / "models")
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.source.setText(str(tiny_sd_dir))
    click(qtbot, dialog.convert)
    qtbot.waitUntil(lambda: not dialog.child.running, timeout=TIMEOUT_MS)
    line = dialog.status.text()
    assert dialog.status.isVisibleTo(dialog) and line.startswith("riffstudio: ") and "export extra" in line
    assert "Traceback" not in line and "\n" not in line and not (tmp_path / "models").exists()


# -- the window's process -----------------------------------------------------------------------------------

WINDOW_FLOW = """
import sys, time
from PySide6.QtWidgets import QApplication
app = QApplication(sys.argv[:1])
from ui.app.settings import AppSettings
from ui.app.settings_dialog import SettingsDialog
from ui.app.window import MainWindow

def wait(condition, seconds=120):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        app.processEvents()
        time.sleep(0.01)

window = MainWindow(AppSettings(get_precision="fp32"))
window.show()
wait(lambda: window.get_plan is not None)
window.get_model()
wait(lambda: bool(window.settings.bundle))
wait(lambda: "runs on" in window.model_label.text())  # the engine has it (and the test's home ends that engine)
window.open_model_manager()
SettingsDialog(window.settings, window).value()
print(sorted(m for m in sys.modules if m.startswith(HEAVY)))
window.shutdown()
"""


def test_the_window_process_imports_no_model_code_through_a_whole_get(hub):
    code = f"HEAVY = {HEAVY!r}\n{WINDOW_FLOW}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300,
                            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert (Path(os.environ["XDG_DATA_HOME"]) / "riffstudio" / "models" / "riffusion-model-v1-fp32").is_dir()
