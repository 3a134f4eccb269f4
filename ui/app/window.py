"""The main window: generate on the left (with the queue), the result in the middle, the library on the
right; everything one drag away. It wires views to the controller and the library, and nothing else:
no engine calls, no DSP, no ONNX here (see controller.py for the threads)."""

from __future__ import annotations

import random
import shutil
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.version import __version__
from ui.app.batch_runner import BatchRunner
from ui.app.controller import EngineController, FinishedJob, JobRequest
from ui.app.drag import AUDIO_SUFFIXES, dropped_audio, file_mime_data, reveal_in_file_manager
from ui.app.elided_label import ElidedLabel
from ui.app.export_dialog import ExportChoice, ExportDialog
from ui.app.exports import ExportRequest, key_words
from ui.app.folder_notice import FolderNotice, refusal_words
from ui.app.generate_panel import MAX_SEED, GeneratePanel
from ui.app.get_model_panel import EMPTY_STATE, GetModelPanel, offer_label
from ui.app.job_requests import (
    draft_request,
    follow_request,
    generate_request,
    longer_request,
    more_like_this_request,
    refined_request,
    riff_request,
)
from ui.app.library import Intent, Library, LibraryLoop
from ui.app.library_drafts import daw_folder, drafts_folder
from ui.app.library_imports import batch_loops, file_job, import_batch, import_made_elsewhere, import_results
from ui.app.library_pane import count_words
from ui.app.loop_length import loop_region
from ui.app.made_loops_watch import MadeLoopsWatch
from ui.app.model_get_runner import GetPlan, GetRequest, ModelGetRunner
from ui.app.playback import Player
from ui.app.queue_panel import QueuePanel, preview_image
from ui.app.settings import AppSettings, load_settings, save_settings
from ui.app.status_line import StatusLine, model_ready_words
from ui.app.window_geometry import restore_geometry, saved_geometry
from ui.app.workspace import Workspace

__all__ = ["EMPTY_STATE", "MainWindow", "library_path"]

READY_TO_DRAG = "Ready to drag: "


def library_path() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("riffstudio", appauthor=False)) / "library.sqlite3"


class WindowKeysThrough(QObject):
    """An event filter that keeps a text box from claiming `keys` (its ShortcutOverride), so the window's
    shortcuts for them fire while it has the focus."""

    def __init__(self, keys: tuple[QKeySequence, ...], parent: QObject) -> None:
        super().__init__(parent)
        self.keys = keys

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride:
            pressed = QKeySequence(event.keyCombination())
            return any(pressed.matches(key) == QKeySequence.SequenceMatch.ExactMatch for key in self.keys)
        return False


def delete_words(count: int, made_elsewhere: int) -> str:
    """The question before deleting: the app's own loops lose their files; loops the CLI or a batch wrote where
    the producer asked only leave the library (their files stay: we never delete a file we did not make)."""
    own = count - made_elsewhere
    parts = []
    if own:
        parts.append(f"Delete {count_words(own)} and {'its' if own == 1 else 'their'} files")
    if made_elsewhere:
        verb = "remove" if own else "Remove"
        parts.append(f"{verb} {count_words(made_elsewhere)} made by the CLI or a batch from the library "
                     f"({'its file stays' if made_elsewhere == 1 else 'their files stay'} on disk)")
    return ", and ".join(parts) + "?"


class MainWindow(QMainWindow):
    """Composes the panes (generate, queue, result, library, the empty state) and holds what they share: the
    loop shown (`current`), the settings, the library, the player and the controller.

    Why the panes keep their widgets to themselves: each renders what it is given and forwards intent as
    signals (`generate_requested`, `refine_requested`...), so `_connect` holds only the wiring between panes,
    the controller and the player, and every job goes through ui/app/job_requests.py."""

    def __init__(self, settings: AppSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or load_settings()
        self.setWindowTitle(f"Riffstudio {__version__}")
        self.setAcceptDrops(True)
        self.library = Library(library_path())
        # A draft's DAW file stays in the library's own folder; every other loop's goes to the export folder.
        self.controller = EngineController(lambda settings: daw_folder(settings, self.settings.export_folder()),
                                           self._engine_settings())
        self.player = Player()
        self.player.volume = self.settings.volume
        self.player.looping = self.settings.loop_playback
        self.player.device = self.settings.audio_device or None
        self.controller.bit_depth = self.settings.bit_depth
        self.current: LibraryLoop | None = None
        self.active_job: str | None = None
        self.requests: dict[str, JobRequest] = {}
        self.audio_message_shown = False
        self.bundle_problem = ""
        self.bundle_precision = ""  # the checked bundle's (int8, fp32, qnn): the status line names it
        self.closed = False
        self.bundle_from_folder = False  # the models folder's newest, not chosen: not saved (a newer one wins)
        self.candidate_bundle = ""  # a folder picked as the model, being checked before it replaces the one in use
        self.getter = ModelGetRunner(self)  # "Get Riffusion": `model get` as a child process
        self.getting_model = False  # a get under way or paused in this session (the empty state stays)
        self.get_plan: GetPlan | None = None
        self.batch_runner = BatchRunner(self)  # File > Render a batch…: `riffstudio batch` as a child process
        self.batch_window = None  # ui/app/batch_window.py's, made when first opened

        self._build()
        self._connect()
        self._shortcuts()
        restore_geometry(self, self.settings.window_geometry)
        for job in self.adopt_finished_results():
            loop = self.library.get(job)
            if loop is not None:
                self.export_to(daw_folder(loop.settings, self.settings.export_folder()), [loop])
        self.refresh_library()
        # Loops the CLI or a batch makes from now on join the library as they land (no restart).
        self.made_loops_watch = MadeLoopsWatch(self.library, self)
        self.made_loops_watch.added.connect(self._while_open(self._made_elsewhere))
        if self.library_pane.loops:  # open where the producer left off: the newest loop
            self._show_loop(self.library_pane.loops[0])
            self._select_in_library(self.library_pane.loops[0].job)
        if self.settings.bundle:
            self.set_bundle(self.settings.bundle)
        elif not self._adopt_newest_bundle():  # `riffstudio model get` tells users the app does this
            self.set_bundle("", check=False)
            QTimer.singleShot(0, self.offer_model)  # once the window is up (a caller may set a bundle first)

    # -- construction --------------------------------------------------------------------------------

    def _engine_settings(self):
        from engine.process.settings import EngineSettings

        return EngineSettings(intra_op_threads=self.settings.engine_threads) \
            if self.settings.engine_threads else None

    def _build(self) -> None:
        self.generate_panel = GeneratePanel()
        self.queue = QueuePanel()

        left = QWidget(objectName="panel")
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(self.generate_panel)
        left_layout.addWidget(self.queue, 1)

        # The top bar: name, model chip, settings.
        title = QLabel("riffstudio", objectName="title")
        self.model_label = ElidedLabel("No model", objectName="dim")
        self.model_message = ElidedLabel("", objectName="model_message")
        self.model_message.setStyleSheet("color: #ff6b6b;")
        self.model_message.setVisible(False)
        self.choose_model = QPushButton("Model…", objectName="choose_model")
        self.settings_button = QPushButton("Settings", objectName="settings_button")
        self.provider_line = ""
        top = QHBoxLayout()
        top.addWidget(title)
        top.addSpacing(16)
        top.addWidget(self.model_label, 2)
        top.addWidget(self.model_message, 2)
        keys_hint = ElidedLabel("Ctrl+Enter generate · Space play · Ctrl+F search · Ctrl+E export", objectName="dim")
        top.addWidget(keys_hint, 1)
        top.addSpacing(12)
        top.addWidget(self.choose_model)
        top.addWidget(self.settings_button)

        # The banner: engine trouble, non-blocking.
        self.banner = QFrame(objectName="banner")
        self.banner_label = QLabel("", objectName="banner_text")
        self.banner_label.setWordWrap(True)
        banner_close = QToolButton()
        banner_close.setText("✕")
        banner_close.clicked.connect(self.banner.hide)
        banner_layout = QHBoxLayout(self.banner)
        banner_layout.setContentsMargins(10, 6, 6, 6)
        banner_layout.addWidget(self.banner_label, 1)
        banner_layout.addWidget(banner_close)
        self.banner.hide()
        self.folder_notice = FolderNotice()  # a picked folder that is not a bundle: why, and Convert this folder?

        # Empty state (no bundle yet): Get Riffusion, or the other ways.
        self.empty_state = GetModelPanel()

        # The result and the library: panes that render what they are given and forward intent.
        from ui.app.library_pane import LibraryPane
        from ui.app.result_pane import ResultPane

        centre = ResultPane(loop_playback=self.settings.loop_playback, volume=self.settings.volume)
        right = LibraryPane()
        self.result_pane, self.library_pane = centre, right

        self.workspace = Workspace(left, centre, right)  # side by side, or one column beside the DAW
        self.workspace.turned.connect(lambda one_column: keys_hint.setVisible(not one_column))

        root = QWidget()
        layout = QVBoxLayout(root)
        layout.setContentsMargins(10, 8, 10, 4)
        layout.addLayout(top)
        layout.addWidget(self.banner)
        layout.addWidget(self.folder_notice)
        layout.addWidget(self.empty_state)
        # A window shorter than one column's panes scrolls them rather than growing off the screen.
        room = QScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
        room.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        room.setWidget(self.workspace)
        layout.addWidget(room, 1)
        self.setCentralWidget(root)
        self.setStatusBar(StatusLine(self))
        self.statusBar().showMessage("Ready")
        self._menus()
        self._show_loop(None)

        from ui.app.tempo_link import LinkFollower

        self.link = LinkFollower()
        self.playhead_timer = QTimer(self)
        self.playhead_timer.setInterval(30)
        self.playhead_timer.timeout.connect(self._tick_playhead)

    def _connect(self) -> None:
        c = self.controller
        # The controller emits from worker threads, so a slot call can already be queued on this thread when
        # shutdown() blocks its signals: every slot goes through _while_open and drops such late news.
        for signal, slot in (
                (c.engine_state, lambda text: self.statusBar().showMessage(text)),
                (c.engine_trouble, self.show_engine_trouble),
                (c.job_queued, self._on_queued),
                (c.job_started, lambda job: self.queue.set_status(job, "running")),
                (c.job_progress, self.queue.set_progress),
                (c.job_preview, self._on_preview),
                (c.job_done, self._on_done),
                (c.job_failed, self._on_failed),
                (c.job_cancelled, lambda job: self.queue.finish(job, "cancelled", "cancelled")),
                (c.submit_failed, lambda text: self.statusBar().showMessage(f"riffstudio: {text}")),
                (c.bundle_checked, self._on_bundle_checked),
                (c.exported, self._on_exported),
                (c.model_loaded, self._on_model_loaded)):
            signal.connect(self._while_open(slot))
        generate, result, library = self.generate_panel, self.result_pane, self.library_pane
        generate.generate_requested.connect(self.generate_now)
        generate.draft_requested.connect(self.generate_draft)
        generate.riff_file_requested.connect(self.riff_on_chosen_file)
        generate.link_toggled.connect(lambda on: self.link.start() if on else self.link.stop())
        self.link.tempo.connect(generate.set_tempo)
        self.link.stopped.connect(self._link_stopped)
        self.queue.cancel_requested.connect(self.controller.cancel)
        self.player.unavailable.connect(self._audio_unavailable)
        self.player.state_changed.connect(self._playing_changed)
        result.play_requested.connect(self.toggle_play)
        result.looping_changed.connect(lambda on: setattr(self.player, "looping", on))
        result.volume_changed.connect(lambda volume: setattr(self.player, "volume", volume))
        result.favourite_changed.connect(self._set_favourite)
        result.refine_requested.connect(self.generate_refined)
        result.more_like_this_requested.connect(self.generate_more_like_this)
        result.riff_requested.connect(self.generate_riff_on_this)
        result.longer_requested.connect(self.generate_same_seed_longer)
        result.export_requested.connect(self.export_dialog)
        result.copy_requested.connect(self.copy_selection)
        result.reveal_requested.connect(self.reveal_current)
        result.seek_requested.connect(self._seek)
        result.drag_requested.connect(self.drag_current)
        result.colour_map_changed.connect(library.set_colour_map)
        result.parent_requested.connect(self.go_to_parent)
        self.choose_model.clicked.connect(self.open_model_manager)
        self.settings_button.clicked.connect(self.open_settings)
        panel, getter = self.empty_state, self.getter
        panel.get_requested.connect(self.get_model)
        panel.pause_requested.connect(getter.pause)
        panel.cancel_requested.connect(self.cancel_getting)
        panel.browse_requested.connect(self.choose_bundle)
        panel.convert_requested.connect(lambda: self.open_model_manager(convert=True))
        self.folder_notice.convert_requested.connect(lambda folder: self.open_model_manager(convert=True,
                                                                                            source=folder))
        for signal, slot in (
                (getter.planned, self._on_get_planned),
                (getter.plan_failed, panel.show_unplanned),
                (getter.started, self._on_get_started),
                (getter.progress, panel.show_progress),
                (getter.note, panel.show_note),
                (getter.done, self._on_got_model),
                (getter.failed, self._on_get_failed),
                (getter.paused, self._on_get_paused),
                (getter.cancelled, self._on_get_cancelled)):
            signal.connect(self._while_open(slot))
        self.batch_runner.finished.connect(self._while_open(self.batch_rendered))
        library.query_changed.connect(self.refresh_library)
        library.set_sort(self.settings.library_sort)
        self.generate_panel.set_session_key(self.settings.session_key)
        self.generate_panel.key.currentIndexChanged.connect(
            lambda _: self._keep(session_key=self.generate_panel.session_key() or ""))
        library.sort.currentIndexChanged.connect(lambda _: self._keep(library_sort=library.sort.currentData()))
        library.loop_chosen.connect(self._library_loop_chosen)
        library.audition_requested.connect(self.audition)
        library.play_requested.connect(self.toggle_play)
        library.rating_requested.connect(self._rate_current)
        library.delete_requested.connect(self.delete_selection)

    def _menus(self) -> None:
        """File > Quit (Ctrl+Q: the window's own close, so jobs and exports are kept as on any close) and
        View > Always on top (to sit over the DAW; saved)."""
        file_menu = self.menuBar().addMenu("&File")
        self.quit_action = QAction("&Quit", self, menuRole=QAction.MenuRole.QuitRole)
        # Windows' platform binding for Quit is empty: Ctrl+Q there too.
        self.quit_action.setShortcuts(QKeySequence.keyBindings(QKeySequence.StandardKey.Quit)
                                      or [QKeySequence("Ctrl+Q")])
        self.quit_action.triggered.connect(self.close)
        self.riff_file_action = QAction("&Riff on a file…", self, shortcut=QKeySequence("Ctrl+R"))
        self.riff_file_action.triggered.connect(self.riff_on_chosen_file)
        file_menu.addAction(self.riff_file_action)
        self.batch_action = QAction("Render a &batch…", self)
        self.batch_action.setToolTip("Render every loop of a preset file (a sample pack) in the engine")
        self.batch_action.triggered.connect(lambda: self.open_batch())
        file_menu.addAction(self.batch_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        view_menu = self.menuBar().addMenu("&View")
        self.on_top_action = QAction("Always on &top", self, checkable=True, checked=self.settings.always_on_top)
        self.on_top_action.setToolTip("Keep this window above the DAW")
        self.on_top_action.toggled.connect(self.set_always_on_top)
        view_menu.addAction(self.on_top_action)
        if self.settings.always_on_top:
            self.setWindowFlag(Qt.WindowType.WindowStaysOnTopHint, True)

    def _keep(self, **changes) -> None:
        """Choices the producer makes in passing (the session's key, the library's order), kept for the next start;
        saved only when one changed (the panes set them from the settings at start, too)."""
        if any(getattr(self.settings, name) != value for name, value in changes.items()):
            self.settings = replace(self.settings, **changes)
            self.save()

    def set_always_on_top(self, on: bool) -> None:
        """Keep the window above others (the DAW) or not; saved for the next start."""
        visible = self.isVisible()
        self.setWindowFlag(Qt.WindowType.WindowStaysOnTopHint, on)  # Qt hides a window whose flags change
        if visible:
            self.show()
        self.settings = replace(self.settings, always_on_top=on)
        self.save()

    def _shortcuts(self) -> None:
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            QShortcut(QKeySequence(keys), self, activated=self.generate_now)
        QShortcut(QKeySequence("Ctrl+F"), self, activated=self.library_pane.focus_search)
        QShortcut(QKeySequence("Ctrl+E"), self, activated=self.export_dialog)
        QShortcut(QKeySequence("Ctrl+Shift+C"), self, activated=self.copy_selection)
        QShortcut(QKeySequence("Ctrl+M"), self, activated=self.generate_more_like_this)
        # A text box takes Ctrl+E for itself where the desktop binds it to "end of line" (GNOME, KDE): the
        # header promises Export…, so the prompt boxes let the window's keys through.
        self._window_keys = WindowKeysThrough((QKeySequence("Ctrl+E"),), self)
        for box in (self.generate_panel.prompt, self.generate_panel.negative):
            box.installEventFilter(self._window_keys)

    def _rate_current(self, stars: int) -> None:
        """0..5 stars for the loop shown (keys 0-5 in the library)."""
        if self.current is not None:
            self.library.set_rating(self.current.job, stars)
            self.current = self.library.get(self.current.job)
            self.refresh_library()

    # -- the model -----------------------------------------------------------------------------------

    def set_bundle(self, path: str, *, check: bool = True) -> None:
        self.settings = replace(self.settings, bundle=path)
        self.bundle_from_folder = False
        has = bool(path)
        if has:
            self.getter.drop_plan()
        self._update_empty_state()
        self.model_label.setText(f"Model: {Path(path).name}" if has else "No model")
        self.model_message.setVisible(False)
        self.bundle_problem = self.bundle_precision = ""
        if has and check:
            self.model_label.setText(f"Model: {Path(path).name} (checking…)")
            self.controller.check_bundle(path)

    def _adopt_newest_bundle(self) -> bool:
        """Run the models folder's newest bundle, unsaved (the next start looks again); False: none there."""
        from engine.model_get.installed import newest_bundle

        newest = newest_bundle(self.settings.models_folder())
        if newest is None:
            return False
        self.set_bundle(str(newest.path))
        self.bundle_from_folder = True
        return True

    def save(self) -> None:
        """Save the settings; a bundle only taken as the models folder's newest is not remembered."""
        save_settings(replace(self.settings, bundle="") if self.bundle_from_folder else self.settings)

    def open_model_manager(self, *, convert: bool = False, source: str = ""):
        """The Model dialog; with `convert`, at its Convert (with `source`, the folder to convert, filled in)."""
        from ui.app.model_dialog import ModelDialog

        dialog = ModelDialog(self.settings.bundle, self.provider_line, self, models=self.settings.models_folder())
        dialog.bundle_chosen.connect(self._bundle_from_manager)
        dialog.bundle_removed.connect(self._bundle_removed)
        dialog.open()
        if source:
            dialog.source.setText(source)
        if convert:
            dialog.source.setFocus()
        return dialog

    def _bundle_from_manager(self, path: str) -> None:
        if path and path != self.settings.bundle:
            self.set_bundle(path)
        elif path and self.bundle_from_folder:  # the models folder's newest, now chosen: remembered
            self.bundle_from_folder = False
        else:
            return
        self.save()

    def _bundle_removed(self, path: str) -> None:
        """A bundle removed in the Model dialog: if it was in use, the next newest runs, or the empty state."""
        if path != self.settings.bundle:
            return
        if not self._adopt_newest_bundle():
            self.set_bundle("", check=False)
            QTimer.singleShot(0, self.offer_model)
        self.save()

    # -- getting a model -----------------------------------------------------------------------------

    def _update_empty_state(self) -> None:
        self.empty_state.setVisible(not self.settings.bundle or self.getting_model)

    def get_request(self) -> GetRequest:
        """The unfinished get (to resume it), else a new one: the settings' precision, into the models folder."""
        return GetRequest.from_text(self.settings.unfinished_get) or GetRequest(
            precision=self.settings.get_precision, folder=str(self.settings.models_folder()))

    def offer_model(self) -> None:
        """The empty state's Get button, labelled with the download's size and the build's time by a plan (a
        child process; offline, its one line shows beside the other ways)."""
        if self.closed or self.settings.bundle or self.getting_model or self.getter.state != "idle":
            return
        self.get_plan = None
        self.empty_state.show_offer("Resume getting Riffusion" if self.settings.unfinished_get else "Get Riffusion")
        self.getter.plan(self.get_request())

    def get_model(self) -> None:
        """Get (or resume getting) Riffusion: download and build in a child process; the window follows it."""
        if self.getter.state in ("getting", "discarding"):
            return
        self.getting_model = True
        self._update_empty_state()
        self.empty_state.show_getting("Asking Hugging Face what to download…")
        self.getter.get(self.get_request())

    def cancel_getting(self) -> None:
        """Stop the get and delete its download so far (Pause keeps it)."""
        self.empty_state.show_getting("Cancelling: removing the download so far…")
        self.empty_state.pause_button.hide()
        self.getter.cancel(self.get_request().source)

    def _remember_get(self, request: GetRequest | None) -> None:
        self.settings = replace(self.settings, unfinished_get=request.to_text() if request else "")
        self.save()

    def _on_get_planned(self, plan: GetPlan) -> None:
        self.get_plan = plan
        if not self.getting_model:
            self.empty_state.show_offer(offer_label(plan))

    def _on_get_started(self, request: GetRequest) -> None:
        self._remember_get(request)  # until done or cancelled: the next start offers to resume it

    def _on_got_model(self, bundle: str) -> None:
        self.getting_model = False
        self.settings = replace(self.settings, unfinished_get="")
        self.set_bundle(bundle)
        self.save()
        self.empty_state.show_offer("Get Riffusion")
        self.statusBar().showMessage(f"Got {Path(bundle).name}: type a prompt and press Ctrl+Enter")

    def _on_get_failed(self, message: str) -> None:
        self.getting_model = False
        label = "Resume getting Riffusion" if self.settings.unfinished_get else "Get Riffusion"
        self.empty_state.show_offer(label, reason=message)
        self._update_empty_state()
        self.statusBar().showMessage(message)

    def _on_get_paused(self) -> None:
        self.empty_state.show_paused("Paused. The download so far is kept: Resume continues it, now or at the "
                                     "next start.")

    def _on_get_cancelled(self) -> None:
        self.getting_model = False
        self._remember_get(None)
        self._update_empty_state()
        self.statusBar().showMessage("Cancelled: the download so far was removed")
        self.offer_model()

    def open_settings(self) -> None:
        from ui.app.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            self.apply_settings(dialog.value())

    def apply_settings(self, settings: AppSettings) -> None:
        from ui.app.theme import apply_theme

        theme_changed = settings.theme != self.settings.theme
        getting_changed = (settings.models_folder(), settings.get_precision) != (
            self.settings.models_folder(), self.settings.get_precision)
        self.settings = settings
        self.controller.bit_depth = settings.bit_depth
        self.player.device = settings.audio_device or None
        if theme_changed:
            apply_theme(QApplication.instance(), settings.theme)
        if getting_changed and (not settings.bundle or self.bundle_from_folder) and not self.getting_model:
            # Another models folder (or precision): its newest bundle, else a plan for the new get.
            self.getter.drop_plan()
            if not self._adopt_newest_bundle():
                self.set_bundle("", check=False)
                self.offer_model()
        self.save()

    def _while_open(self, slot):
        """`slot`, except after shutdown(): then the call is dropped (the library is closed by then)."""
        def call(*args) -> None:
            if not self.closed:
                slot(*args)
        return call

    def choose_bundle(self) -> None:
        """A folder picked as the model is checked first: the model in use stays unless the folder opens."""
        folder = QFileDialog.getExistingDirectory(self, "Choose a model bundle folder", self.settings.bundle)
        if folder and folder != self.settings.bundle:
            self.candidate_bundle = folder
            self.folder_notice.hide()
            self.statusBar().showMessage(f"Checking {Path(folder).name}…")
            self.controller.check_bundle(folder)

    def _on_candidate_checked(self, path: str, problem: str) -> bool:
        """A picked folder's check: it becomes the model (True: carry on as a checked bundle), or is refused in
        the app's words with the model in use kept (False)."""
        self.candidate_bundle = ""
        if problem:
            words, convert = refusal_words(path, problem, in_use=self.settings.bundle)
            self.folder_notice.show_refusal(path, words, offer_convert=convert)
            self.statusBar().show_message(words, details="" if convert else problem)
            return False
        self.folder_notice.hide()
        self.set_bundle(path, check=False)
        self.save()
        return True

    def _on_bundle_checked(self, path: str, problem: str, precision: str = "") -> None:
        if path == self.candidate_bundle and not self._on_candidate_checked(path, problem):
            return
        if path != self.settings.bundle:
            return
        self.bundle_problem = problem
        self.bundle_precision = precision
        if problem:
            self.model_label.setText(f"Model: {Path(path).name}")
            self.model_message.setText(f"riffstudio: {problem}")
            self.model_message.setVisible(True)
            self.statusBar().showMessage(f"riffstudio: {problem}")
            return
        self.model_label.setText(f"Model: {Path(path).name} · loading…")
        from engine.bundle.npu_contexts import holds_npu_contexts

        if precision == "qnn" and self.settings.provider != "cpu" and not holds_npu_contexts(path):
            self.model_label.setText(f"Model: {Path(path).name} · compiling for the NPU (minutes, once)…")
            self.statusBar().showMessage("The first load of an NPU bundle takes a few minutes, once: QNN compiles its "
                                         "graph for this chip and keeps it for the next loads")
        self.controller.load_model(path, self.settings.provider)
        self._follow_pending()

    def _on_model_loaded(self, provider: str, line: str) -> None:
        name = Path(self.settings.bundle).name
        if provider:
            device = "NPU" if provider == "qnn" else "CPU"
            self.model_label.setText(f"Model: {name} · runs on the {device}")
            self.model_label.setToolTip(line)
            self.provider_line = line
            self.statusBar().show_message(model_ready_words(provider, self.bundle_precision), details=line)
        else:
            self.statusBar().showMessage(line)  # why it did not load: one line, the producer's to act on

    # -- generating ----------------------------------------------------------------------------------

    def generate_now(self, *, draft: bool = False) -> None:
        if not self.generate_panel.values(new_seed=False).prompt:
            self.statusBar().showMessage("Type a prompt first: what the loop should sound like")
            self.generate_panel.focus_prompt()
            return
        values = self.generate_panel.values()
        if self.submit((draft_request if draft else generate_request)(self.settings, values)) and values.bpm \
                and values.prompt_bpm and values.prompt_bpm != values.bpm:
            self.statusBar().showMessage(f"Queued at {values.bpm:g} bpm, the Tempo box's (the prompt says "
                                         f"{values.prompt_bpm:g} bpm)")

    def generate_draft(self) -> None:
        """A quick preview of the panel's loop (the draft speed preset), to refine if it is the one."""
        self.generate_now(draft=True)

    def generate_refined(self) -> None:
        """The current loop again with the panel's full settings (steps, scheduler, quality), same seed."""
        if self.current is not None:
            self.submit(refined_request(self.settings, self.current, self.generate_panel.values(new_seed=False)))

    def submit(self, request: JobRequest) -> bool:
        if not request.bundle:
            self.statusBar().showMessage("riffstudio: choose a model bundle first (Model…)")
            return False
        if self.bundle_problem:
            self.statusBar().showMessage(f"riffstudio: {self.bundle_problem}")
            return False
        if request.bpm and request.bars and request.key is None:  # on the grid: in the session's key, if one is set
            request = replace(request, key=self.generate_panel.session_key())
        self.statusBar().showMessage("Queued: " + (request.label or request.settings.get("prompt", "")))
        self.controller.submit(request)
        return True

    def generate_more_like_this(self) -> None:
        """Same settings, a new seed."""
        if self.current is not None:
            panel = self.generate_panel
            seed = panel.values().seed  # the box's (rolled unless locked): the seed box shows the seed used
            while seed == self.current.seed:  # a variation needs another seed than its loop's
                seed = random.randint(0, MAX_SEED)
                if not panel.seed_lock.isChecked():
                    panel.seed.setValue(seed)
            self.submit(more_like_this_request(self.settings, self.current, seed))

    def generate_riff_on_this(self) -> None:
        if self.current is not None:
            self.riff_on_file(self.current.audio, prompt=self.current.prompt, base=self.current)

    def generate_same_seed_longer(self) -> None:
        if self.current is not None:
            self.submit(longer_request(self.settings, self.current))

    def riff_on_chosen_file(self) -> bool:
        """Riff on a file…: the same job a drop queues, for a producer who would rather pick than drag."""
        suffixes = " ".join(f"*{suffix}" for suffix in AUDIO_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Riff on a file", str(Path.home()), f"Audio ({suffixes})")
        return bool(path) and self.riff_on_file(path)

    def riff_on_file(self, path: str, *, prompt: str | None = None, base: LibraryLoop | None = None) -> bool:
        """Audio-to-audio from `path` (a dropped file or a library loop), at the panel's strength."""
        values = self.generate_panel.values()  # the seed box's (rolled unless locked): the seed the riff uses
        return self.submit(riff_request(self.settings, path, values, values.seed, prompt=prompt, base=base))

    def open_batch(self, presets: str | Path | None = None):
        """File > Render a batch…: the batch window, with `presets` chosen (None: a preset file is asked for,
        unless the window has one). A batch rendering is shown as it is, with why another cannot start."""
        from ui.app.batch_window import BatchWindow

        if self.batch_window is None:
            self.batch_window = BatchWindow(self.batch_runner, lambda: self.settings.export_folder(),
                                            lambda: self.settings.bundle, self)
        window = self.batch_window
        window.show()
        window.raise_()
        busy = self.batch_runner.busy_line()
        if busy:
            window.show_message(busy)
        elif presets is not None:
            window.set_presets(Path(presets))
        elif not window.presets.text():
            window.choose_presets()
        return window

    def batch_rendered(self, out: str) -> None:
        """A batch is complete: its loops are in `out` (each preset's in a folder of its own, with sidecars) and
        are in the library, as the collection of their preset file (most joined as they landed)."""
        import_batch(self.library, Path(out))
        listed = sum(self.library.get(file_job(audio)) is not None for audio, _ in batch_loops(out))
        self.refresh_library()
        self.statusBar().showMessage(f"Batch rendered into {out}: {count_words(listed)} in the library")

    # -- job events ----------------------------------------------------------------------------------

    def _on_queued(self, job: str, request: JobRequest) -> None:
        self.requests[job] = request
        self.library.remember_intent(job, Intent(bpm=request.bpm, bars=request.bars, kind=request.kind,
                                                    parent=request.parent,
                                                    extra={"key": request.key} if request.key else {}))
        self.queue.add(job, request.label or request.settings.get("prompt", job))
        self.active_job = job

    def _on_preview(self, job: str, rgb) -> None:
        image = preview_image(rgb)
        self.queue.set_preview(job, image)
        if job == self.active_job:
            self.result_pane.show_preview(image)

    def _on_done(self, job: str, finished: FinishedJob) -> None:
        loop = self.library.add_result(job, finished.paths, finished.sidecar, export=finished.export)
        if finished.export and not loop.export:
            self.library.set_export(job, finished.export)
            loop = self.library.get(job) or loop
        self.queue.finish(job, "done", f"done in {finished.seconds:.1f} s · seed {loop.seed}")
        self.refresh_library()
        if job == self.active_job or self.current is None:
            self._show_loop(loop)
            self._select_in_library(job)
            self.workspace.bring_result_into_view()
        message = finished.export_error or (f"{READY_TO_DRAG}{Path(loop.drag_file).name}" if loop.drag_file
                                            else "Not exported yet: the loop plays here; export it to drag it")
        if loop.drag_file and (in_key := key_words(loop.drag_file)):
            message += f" · {in_key}"  # what the Key box did, as the CLI's `wrote` line says it
        self.statusBar().showMessage(message)

    def _on_exported(self, job: str, path: str) -> None:
        """A loop's DAW file: the library keeps the one in the export folder (what drags hand out), or a draft's in
        the drafts folder until the draft is exported to the export folder (ui/app/library_drafts.py)."""
        loop = self.library.get(job)
        folder, exports, drafts = Path(path).parent, self.settings.export_folder(), drafts_folder()
        first = loop is not None and not loop.export and folder in (exports, drafts)
        promoted = loop is not None and bool(loop.export) and folder == exports and Path(loop.export).parent == drafts
        if first or promoted:
            self.library.set_export(job, path)
            self.refresh_library()
            if self.current is not None and self.current.job == job:
                self._show_loop(self.library.get(job))  # its region on the painting comes with the export
        self.statusBar().showMessage(f"Exported {path}")

    def _on_failed(self, job: str, message: str) -> None:
        self.queue.finish(job, "failed", message)
        self.statusBar().showMessage(f"riffstudio: {message}")

    def _link_stopped(self, why: str) -> None:
        self.generate_panel.unlink()
        if why:
            self.statusBar().showMessage(f"riffstudio: {why}")

    def show_engine_trouble(self, text: str) -> None:
        self.banner_label.setText(text)
        self.banner.show()

    # -- the library ---------------------------------------------------------------------------------

    def adopt_finished_results(self) -> list[str]:
        """Loops made while the app was closed join the library: `generate --engine` loops and batch renders as
        they were written (their files are their DAW files), then the engine's results folders the library does
        not have (returned: they need a DAW file). See ui/app/library_imports.py."""
        from engine.process.paths import results_dir

        import_made_elsewhere(self.library)
        return import_results(self.library, results_dir())

    def _made_elsewhere(self, jobs: list[str]) -> None:
        """Loops the CLI or a batch wrote while the app is open are listed; the loop shown stays shown and
        selected, the rows in view stay in view, and nothing starts playing."""
        self.refresh_library(keep_view=True)
        self.statusBar().showMessage(f"{count_words(len(jobs))} from the CLI or a batch added to the library")

    def _follow_pending(self) -> None:
        known = self.library.known_jobs()
        for job in self.library.pending_jobs():
            if job not in known and job not in self.requests:
                intent = self.library.intent(job)
                request = follow_request(self.settings, bpm=intent.bpm, bars=intent.bars,
                                         key=intent.extra.get("key"))
                self.requests[job] = request
                self.controller.follow(job, request)

    def refresh_library(self, *, keep_view: bool = False) -> None:
        """List the library again, the loop shown selected; with `keep_view`, a list scrolled down stays on the
        rows in view (loops landing from elsewhere must not move what the producer is looking at)."""
        if self.closed:
            return
        current = self.current.job if self.current else None
        top = self.library_pane.top_row() if keep_view else ""
        self.library_pane.set_loops(self.library.search(self.library_pane.loop_query()), total=self.library.count())
        self.generate_panel.set_history(self.library.prompts(), self.library.negatives())
        if current:
            self.library_pane.select(current, scroll=not keep_view)
        if top:
            self.library_pane.scroll_to_top_row(top)

    def _select_in_library(self, job: str) -> None:
        self.library_pane.select(job)

    def _library_loop_chosen(self, loop: LibraryLoop) -> None:
        if self.current is None or loop.job != self.current.job:
            self.player.stop()
            self._show_loop(loop)
            if self.statusBar().currentMessage().startswith(READY_TO_DRAG):  # it named the loop shown before
                self.statusBar().showMessage(f"{READY_TO_DRAG}{Path(loop.drag_file).name}" if loop.drag_file
                                             else "")

    def _show_loop(self, loop: LibraryLoop | None) -> None:
        """Show `loop` in the result pane, with the span of its painting the DAW file was cut from."""
        self.current = loop
        self.result_pane.show_loop(loop, loop_region(loop) if loop is not None else None)

    def go_to_parent(self, job: str) -> None:
        """The loop the shown one came from (the header's link): selected in the library and shown; one the search
        or filters hide is shown, and the status line says why its row is not."""
        parent = self.library.get(job)
        if parent is None:  # deleted since the header was drawn
            self.statusBar().showMessage("That loop is no longer in the library")
            return
        self._select_in_library(job)  # its row: shown as any row chosen
        if self.current is None or self.current.job != job:
            self.player.stop()
            self._show_loop(parent)
            self.statusBar().showMessage(f"“{parent.prompt}” is hidden by the library's search or filters")

    def selected_loops(self) -> list[LibraryLoop]:
        return self.library_pane.selected_loops() or ([self.current] if self.current else [])

    def _set_favourite(self, on: bool) -> None:
        if self.current is not None and not self.closed:
            self.library.set_favourite(self.current.job, on)
            self.current = self.library.get(self.current.job)
            self.refresh_library()

    def confirm(self, text: str) -> bool:
        return QMessageBox.question(self, "Riffstudio", text) == QMessageBox.StandardButton.Yes

    def delete_selection(self) -> None:
        loops = self.selected_loops()
        words = delete_words(len(loops), sum(loop.made_elsewhere for loop in loops))
        if not loops or not self.confirm(words):
            return
        for loop in loops:
            self.library.delete(loop.job)
            if loop.made_elsewhere:  # written where the producer asked, not by the app: never deleted here
                continue
            shutil.rmtree(loop.folder, ignore_errors=True)
            if loop.export:
                for path in (Path(loop.export), Path(loop.export).with_suffix(".json")):
                    path.unlink(missing_ok=True)
        self.current = None
        self._show_loop(None)
        self.refresh_library()

    # -- to the DAW ----------------------------------------------------------------------------------

    def drag_paths(self) -> list[str]:
        return [loop.drag_file for loop in self.selected_loops() if loop.drag_file]

    def drag_current(self) -> None:
        if self.current is not None and self.current.drag_file:
            self.result_pane.drag_out([self.current.drag_file])
        elif self.current is not None:
            self.statusBar().showMessage("This loop has no file in the export folder: export it first")

    def copy_selection(self) -> None:
        paths = self.drag_paths()
        if paths:
            QApplication.clipboard().setMimeData(file_mime_data(paths))
            self.statusBar().showMessage(f"Copied {len(paths)} file(s): paste into your DAW or a folder")

    def reveal_current(self) -> None:
        """Show the loop's file in the file manager; without one, its path goes to the clipboard, said so."""
        if self.current is not None and not reveal_in_file_manager(self.current.playable_file):
            QApplication.clipboard().setText(self.current.playable_file)
            self.statusBar().showMessage(f"No file manager opened: copied the path, {self.current.playable_file}")

    def export_dialog(self):
        """Export…: the selected loops to a folder in the format, rate, bit depth and loudness chosen (the last
        format, rate and loudness are remembered; the bit depth starts at the settings'). Returns the dialog."""
        loops = self.selected_loops()
        if not loops:
            return None
        s = self.settings
        dialog = ExportDialog(ExportChoice(folder=s.export_folder(), audio_format=s.export_format,
                                           sample_rate=s.export_sample_rate, bit_depth=s.bit_depth,
                                           normalize_lufs=s.export_loudness or None), len(loops), self)
        dialog.accepted.connect(lambda: self._export_chosen(dialog.value(), loops))
        dialog.open()
        return dialog

    def _export_chosen(self, choice: ExportChoice, loops: list[LibraryLoop]) -> None:
        self.settings = replace(self.settings, export_format=choice.audio_format,
                                export_sample_rate=choice.sample_rate, export_loudness=choice.normalize_lufs or 0.0)
        self.save()
        self.export_to(choice.folder, loops, choice)

    def export_to(self, folder: Path, loops: list[LibraryLoop], choice: ExportChoice | None = None) -> None:
        """Export `loops` to `folder` in `choice`'s form (an ExportChoice; None: WAV at the settings' bit depth)."""
        from engine.loop_files import read_loop

        form = {"bit_depth": self.settings.bit_depth} if choice is None else {
            "bit_depth": choice.bit_depth, "audio_format": choice.audio_format, "sample_rate": choice.sample_rate,
            "normalize_lufs": choice.normalize_lufs}
        for loop in loops:
            found = read_loop(loop.audio)
            sidecar = found.sidecar if found else {"settings": loop.settings}
            # A CLI or batch loop is on its grid already: converted on that grid, not fitted again.
            self.controller.export(ExportRequest(audio=loop.audio, image=loop.image, sidecar=sidecar, folder=folder,
                                                 bpm=loop.bpm, bars=loop.bars, fitted=loop.made_elsewhere, **form),
                                   loop.job)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.source() is None and dropped_audio(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        files = dropped_audio(event.mimeData())
        if files and event.source() is None:
            event.acceptProposedAction()
            for path in files:
                self.riff_on_file(path)

    # -- playback ------------------------------------------------------------------------------------

    def toggle_play(self) -> None:
        if self.current is None:
            return
        self.player.toggle(self.current.playable_file)

    def audition(self, loop: LibraryLoop) -> None:
        """A library row clicked or arrowed to: show it and play it from the start (as a sample browser does)."""
        if self.current is None or self.current.job != loop.job:
            self._show_loop(loop)
        self.player.play(loop.playable_file, 0.0)

    def _seek(self, seconds: float) -> None:
        self.result_pane.set_playhead(seconds)
        if self.player.playing:
            self.player.seek(seconds)
        elif self.current is not None:
            self.player.play(self.current.playable_file, seconds)

    def _playing_changed(self, playing: bool) -> None:
        self.result_pane.set_playing(playing)
        if playing:
            self.playhead_timer.start()
        else:
            self.playhead_timer.stop()

    def _tick_playhead(self) -> None:
        self.result_pane.set_playhead(self.player.position_s())

    def _audio_unavailable(self, message: str) -> None:
        self.audio_message_shown = True
        self.statusBar().showMessage(message)

    # -- closing -------------------------------------------------------------------------------------

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Let go of the engine (it keeps running queued jobs), the player and the library. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self.link.stop()
        self.link.blockSignals(True)
        self.controller.blockSignals(True)  # late worker news must not reach a closed library
        self.player.blockSignals(True)
        self.playhead_timer.stop()
        self.player.stop()
        self.getter.stop()  # a get under way stays remembered (unfinished_get): the next start offers to resume it
        self.batch_runner.stop()  # a batch stops keeping its finished loops: rendering it again carries on
        self.made_loops_watch.stop()
        self.controller.close()
        self.settings = replace(self.settings, volume=self.result_pane.volume_fraction(),
                                loop_playback=self.result_pane.looping(), window_geometry=saved_geometry(self))
        self.save()
        self.library.close()
