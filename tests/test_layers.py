"""The layer contract: which parts of the tree may import which (issue #24 item 5).

Every .py file is parsed with `ast`, and every import counts, also those inside functions (a lazy import still
loads its module into the process that calls it). The rules:

(a) The app's window process (`ui/app`) draws and asks the engine process; it never runs a model. It imports from
    `engine` only the client, the plain-data modules and the file readers in APP_ENGINE_MODULES, whose own
    module-level imports never reach ONNX Runtime, the generation code, the export code or the codec's DSP. The CLI
    (`ui/cli`) runs models in its own process and may import more.
(b) `plugin/` (DAW-facing code, run inside hosts and batch jobs) never imports Qt.
(c) Only the export room imports `engine.export` (torch): `engine/export/` itself, `packaging/` and the tests,
    plus two lazy imports where a user asks for torch's work and gets a one-line error without the export
    extra: `riffstudio model convert` (ui/cli/model.py's run_convert) and `model get` of an architecture with no
    ready-made templates (engine/model_get/template_store.py's templates_for). Both sit inside the function,
    never at module level, so the app folder (which ships no torch) can import those modules.

And at run time: the window, built and painted as the app builds it, has loaded none of the heavy modules.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO

SKIPPED = {".venv", ".cache", ".git", "node_modules", "build", "dist"}

# What ui/app may import from engine, and why.
APP_ENGINE_MODULES = {
    "engine.version": "the version in the title and the About box",
    "engine.errors": "the error types, for one-line messages",
    "engine.speeds": "the speed presets and sampling defaults (plain data)",
    "engine.choices": "every closed list of choices: providers, precisions, qualities, formats (plain data)",
    "engine.qnn": "the NPU's performance modes for the settings (plain data)",
    "engine.atomic": "atomic file writes for exports",
    "engine.client": "the engine process's client: every model run goes through it",
    "engine.process.protocol": "the client's message types",
    "engine.process.paths": "where the engine puts its results",
    "engine.process.launch": "the command line of a child riffstudio (model get, the engine)",
    "engine.process.settings": "the EngineSettings the window hands the client to start an engine",
    "engine.process.results": "the engine's one reader of its results folders (by their sidecars; plain files)",
    "engine.loop_files": "the loop files' writer and reader (plain files)",
    "engine.model_get.installed": "which model bundles are installed, and where",
    "engine.model_get.download": "DEFAULT_REPO only (standard library at import; the download runs in a child)",
    "engine.bundle": "open_bundle, to check a chosen bundle: its manifest and file sizes",
    "engine.bundle.npu_contexts": "whether a QNN bundle is compiled for this NPU yet (file checks)",
    "engine.codec.params": "SpectrogramParams, for the spectrogram's axes",
    "engine.codec.audio_io": "reading a loop's audio at export (soundfile)",
    "engine.codec.image_file": "reading a loop's image at export (Pillow)",
}
# ui/app/screenshot.py renders the README's screenshot in a process of its own, with demo content it makes the
# way the engine would: it encodes test clips into spectrograms.
APP_FILE_EXTRAS = {"ui/app/screenshot.py": {"engine.codec"}}
# What the window's process never loads: the model runtimes and the code that drives them (nor scipy: the codec
# loads scipy's pocketfft file directly, and only to transform).
MODEL_CODE = ("onnxruntime", "torch", "scipy", "engine.sessions", "engine.generation", "engine.export",
              "engine.bundle.quantize")
# What it loads only when asked (an export, a drag): the codec's DSP, numpy's FFT and scipy's pocketfft.
CODEC_DSP = ("engine.codec.decode", "engine.codec.encode", "engine.codec.fft", "engine.codec.griffin_lim",
             "engine.codec.pghi", "engine.codec.stft", "engine.codec.metrics", "numpy.fft", "pypocketfft")
QT = ("PySide6", "PyQt5", "PyQt6", "shiboken6")
EXPORT_IMPORTERS = {("ui/cli/model.py", "run_convert"), ("engine/model_get/template_store.py", "templates_for")}
EXPORT_ROOMS = ("engine/export/", "packaging/", "tests/")


@dataclass(frozen=True)
class Import:
    file: str  # relative to the repository, with /
    line: int
    module: str  # absolute and dotted: `from engine.process import protocol` is engine.process.protocol
    function: str | None  # the innermost enclosing function, None at module level
    type_checking: bool  # under `if TYPE_CHECKING:` (never runs)

    def __str__(self) -> str:
        where = f" in {self.function}()" if self.function else ""
        return f"{self.file}:{self.line}{where} imports {self.module}"


def python_files() -> list[Path]:
    return sorted(p for p in REPO.rglob("*.py") if not SKIPPED & set(p.relative_to(REPO).parts))


def module_name(relative: str) -> str:
    parts = relative.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_local_module(name: str, root: Path = REPO) -> bool:
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


class _Collector(ast.NodeVisitor):
    def __init__(self, relative: str, root: Path) -> None:
        self.relative, self.root = relative, root
        self.package = module_name(relative).rsplit(".", 1)[0] if not relative.endswith("__init__.py") \
            else module_name(relative)
        self.functions: list[str] = []
        self.type_checking = 0
        self.found: list[Import] = []

    def _add(self, node: ast.AST, module: str) -> None:
        self.found.append(Import(self.relative, node.lineno, module, self.functions[-1] if self.functions else None,
                                 self.type_checking > 0))

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_If(self, node: ast.If) -> None:
        guarded = "TYPE_CHECKING" in ast.unparse(node.test)
        self.type_checking += guarded
        for child in node.body:
            self.visit(child)
        self.type_checking -= guarded
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            package = self.package.split(".")
            base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            self._add(node, submodule if is_local_module(submodule, self.root) else base)


def imports_in(path: Path, root: Path = REPO) -> list[Import]:
    """Every import statement in `path`, at any depth (functions, classes, conditionals)."""
    collector = _Collector(path.relative_to(root).as_posix(), root)
    collector.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return collector.found


@pytest.fixture(scope="module")
def all_imports() -> list[Import]:
    return [found for path in python_files() for found in imports_in(path)]


def is_within(module: str, names: tuple[str, ...] | set[str]) -> bool:
    return any(module == name or module.startswith(name + ".") for name in names)


def app_violations(imports: list[Import]) -> list[str]:
    """Rule (a): ui/app's imports from engine outside the allow-list, and its direct imports of heavy packages."""
    problems = []
    for found in imports:
        if not found.file.startswith("ui/app/") or found.type_checking:
            continue
        allowed = APP_ENGINE_MODULES.keys() | APP_FILE_EXTRAS.get(found.file, set())
        outside = is_within(found.module, ("engine",)) and found.module not in allowed
        if outside or is_within(found.module, MODEL_CODE):
            problems.append(str(found))
    return problems


def heavy_reach(start: str, heavy: tuple[str, ...], root: Path = REPO) -> list[str]:
    """The import chain from `start` to a `heavy` module through module-level imports (what `import start`
    runs), or [] if there is none. Imports inside functions and under TYPE_CHECKING do not run at import time."""
    chains = {start: [start]}
    queue = [start]
    while queue:
        module = queue.pop(0)
        path = root.joinpath(*module.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        if not path.is_file():
            continue
        parents = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
        runs = [f.module for f in imports_in(path, root) if f.function is None and not f.type_checking]
        for name in parents + runs:
            if name in chains:
                continue
            chains[name] = [*chains[module], name]
            if is_within(name, heavy):
                return chains[name]
            if is_local_module(name, root):
                queue.append(name)
    return []


def plugin_violations(imports: list[Import]) -> list[str]:
    """Rule (b): Qt imported anywhere in plugin/."""
    return [str(f) for f in imports if f.file.startswith("plugin/") and is_within(f.module, QT)]


def export_violations(imports: list[Import]) -> list[str]:
    """Rule (c): engine.export imported outside its rooms and the two lazy imports that ask for it."""
    return [str(f) for f in imports
            if is_within(f.module, ("engine.export",)) and not f.file.startswith(EXPORT_ROOMS)
            and (f.file, f.function) not in EXPORT_IMPORTERS]


def test_the_app_imports_from_engine_only_the_client_and_plain_modules(all_imports):
    assert app_violations(all_imports) == []


def test_nothing_the_app_may_import_loads_model_code_when_imported():
    allowed = sorted(APP_ENGINE_MODULES.keys() | set().union(*APP_FILE_EXTRAS.values()))
    assert {name: chain for name in allowed if (chain := heavy_reach(name, MODEL_CODE))} == {}


def test_what_the_app_imports_at_start_loads_no_codec_dsp(all_imports):
    """The engine modules ui/app's modules import at module level (so before the window shows) stop short of the
    codec's DSP; reading a loop's files for an export may load it later."""
    at_start = sorted({f.module for f in all_imports if f.file.startswith("ui/app/") and f.function is None
                       and not f.type_checking and is_within(f.module, ("engine",))})
    assert "engine.codec.params" in at_start  # the axes' import, the one that used to load the codec
    assert {name: chain for name in at_start if (chain := heavy_reach(name, CODEC_DSP))} == {}


def test_the_plugin_never_imports_qt(all_imports):
    assert plugin_violations(all_imports) == []


def test_only_the_export_room_and_its_two_lazy_callers_import_engine_export(all_imports):
    assert export_violations(all_imports) == []
    callers = {(f.file, f.function) for f in all_imports if is_within(f.module, ("engine.export",))}
    assert callers >= EXPORT_IMPORTERS  # the exceptions still exist: drop one from the list when it goes


VIOLATIONS = {
    "ui/app/late.py": "def f():\n    from engine.generation.loop import render_loop\n",
    "ui/app/runtime.py": "def f():\n    import onnxruntime\n",
    "ui/app/quantize.py": "from engine.bundle import quantize\n",
    "plugin/window.py": "def f():\n    from PySide6.QtWidgets import QWidget\n",
    "engine/codec/convert.py": "def f():\n    from engine.export.convert import convert\n",
}


@pytest.mark.parametrize("relative", VIOLATIONS)
def test_each_rule_catches_an_import_hidden_in_a_function(tmp_path, relative):
    """The rules' own check: a violating file (here in a copy's layout) is reported, lazy or not."""
    path = tmp_path / relative
    path.parent.mkdir(parents=True)
    path.write_text(VIOLATIONS[relative])
    (tmp_path / "engine" / "bundle").mkdir(parents=True, exist_ok=True)
    (tmp_path / "engine" / "bundle" / "__init__.py").write_text("")
    (tmp_path / "engine" / "bundle" / "quantize.py").write_text("")
    found = imports_in(path, tmp_path)
    assert app_violations(found) + plugin_violations(found) + export_violations(found) == [str(found[0])]


def test_the_window_at_its_first_paint_has_loaded_no_runtime_and_no_dsp():
    """What the app's process holds when its window first shows: the rules above, checked for real."""
    result = subprocess.run([sys.executable, str(REPO / "tests" / "window_probe.py")], capture_output=True,
                            text=True, timeout=120, cwd=REPO, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout.splitlines()[-1])["modules"]
    assert [m for m in modules if is_within(m, MODEL_CODE + CODEC_DSP)] == []
    assert "engine.codec.params" in modules  # the probe saw the window (its axes need the params)


def test_every_name_the_tree_imports_from_the_lazy_codec_package_resolves():
    """engine.codec serves its names on first use (PEP 562); a name it forgot would fail only when first used."""
    import importlib

    import engine.codec

    wanted = {(alias.name, f"{path.relative_to(REPO)}:{node.lineno}") for path in python_files()
              for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
              if isinstance(node, ast.ImportFrom) and node.module == "engine.codec" and not node.level
              for alias in node.names}
    assert len(wanted) > 20
    for name, where in sorted(wanted):
        if is_local_module(f"engine.codec.{name}"):
            importlib.import_module(f"engine.codec.{name}")
        else:
            assert name in engine.codec.__all__ and getattr(engine.codec, name) is not None, where
