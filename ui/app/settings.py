"""The app's settings: one frozen dataclass, stored with QSettings (the platform's own place for them).

Why frozen: a settings change is a new value handed to whoever needs it, never a shared object mutated
behind a view's back."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from engine.choices import LOOP_FILE_FORMATS

EXPORT_FORMATS = LOOP_FILE_FORMATS  # Export...; drags always hand out WAV
THEMES = ("dark", "light")


def default_export_dir() -> str:
    """A permanent folder the producer can find (DAWs reference dragged samples where they lie)."""
    from platformdirs import user_music_dir

    return str(Path(user_music_dir()) / "Riffstudio")


@dataclass(frozen=True)
class AppSettings:
    bundle: str = ""
    export_dir: str = ""
    export_format: str = "wav"
    bit_depth: str = "24"  # plugin/loop_file: "16", "24" or "32f"
    export_sample_rate: int = 44100  # Export…'s (drags hand out 44.1 kHz)
    export_loudness: float = 0.0  # Export…'s LUFS target; 0 = off (peak at -1 dBFS): no target is 0 LUFS
    audio_device: str = ""  # "" = the system default
    provider: str = "auto"
    npu_mode: str = "burst"
    engine_threads: int = 0
    theme: str = "dark"
    volume: float = 0.8
    loop_playback: bool = True
    models_dir: str = ""  # "" = the user data folder's models/ (where `riffstudio model get` puts bundles)
    get_precision: str = "auto"  # what "Get Riffusion" makes
    unfinished_get: str = ""  # a get paused, failed or cut off by closing the app (GetRequest.to_text()): resumable
    always_on_top: bool = False  # View > Always on top: the window stays above the DAW
    window_geometry: str = ""  # the window's size and place at the last close (ui/app/window_geometry.py)
    session_key: str = ""  # the Key box's key ("Amin"), "" = as made
    library_sort: str = "new"  # the library's order (ui/app/library.py's SORTS), as the producer left it

    def export_folder(self) -> Path:
        return Path(self.export_dir or default_export_dir())

    def models_folder(self) -> Path:
        from engine.model_get.installed import models_folder

        return Path(self.models_dir) if self.models_dir else models_folder()


def load_settings() -> AppSettings:
    store = _store()
    values = {}
    for item in dataclasses.fields(AppSettings):
        raw = store.value(item.name)
        if raw is None:
            continue
        default = item.default
        try:
            if isinstance(default, bool):
                values[item.name] = raw in (True, "true", "1", 1)
            else:
                values[item.name] = type(default)(raw)
        except (TypeError, ValueError):
            continue
    return AppSettings(**values)


def save_settings(settings: AppSettings) -> None:
    store = _store()
    for name, value in dataclasses.asdict(settings).items():
        store.setValue(name, value)
    store.sync()


def _store():
    """An ini file in the user config dir, located each time (not Qt's path cache, fixed at first use), so
    a moved XDG_CONFIG_HOME (tests, portable installs) is honoured."""
    from platformdirs import user_config_dir
    from PySide6.QtCore import QSettings

    path = Path(user_config_dir("riffstudio", appauthor=False)) / "app.ini"
    return QSettings(str(path), QSettings.Format.IniFormat)
