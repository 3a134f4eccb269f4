"""Our exception types. Every message is one line a producer can act on: what is wrong, and what to do.

The command line prints `riffstudio: <message>` and exits with `exit_code`; the desktop app shows the
message in its status area. Anything else that escapes is a bug, and is reported as one.

`code` is the engine protocol's error code for each type (docs/protocol.md): the one table both directions
derive from (`error_code`, `error_for`), so a failure exits with the same code whether the work ran here or
in the engine.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import ClassVar


class RiffstudioError(Exception):
    """Base of every error we raise on purpose."""

    exit_code = 1
    code: ClassVar[str] = "internal"


class InvalidInputError(RiffstudioError, ValueError):
    """The user gave us something we cannot use: a wrong file, an empty prompt, an absurd number."""

    exit_code = 2
    code: ClassVar[str] = "invalid_input"


class PathTooLongError(InvalidInputError):
    """A path longer than this system takes: a name over 255 bytes (ENAMETOOLONG), or on Windows a path past
    MAX_PATH (260 characters) where long paths are not enabled, which Windows reports as its own error numbers
    (ERROR_FILENAME_EXCED_RANGE, or ERROR_PATH_NOT_FOUND for a folder it cannot even name)."""

    # Windows' error numbers for a path past MAX_PATH; ERROR_PATH_NOT_FOUND means that only for a long path.
    WINDOWS_TOO_LONG: ClassVar[int] = 206  # ERROR_FILENAME_EXCED_RANGE
    WINDOWS_NOT_FOUND: ClassVar[int] = 3  # ERROR_PATH_NOT_FOUND
    WINDOWS_LONGEST_FOLDER: ClassVar[int] = 248  # MAX_PATH less room for an 8.3 file name: CreateDirectory's limit

    @classmethod
    def of(cls, error: OSError, path: object = None, *, windows: bool | None = None) -> PathTooLongError | None:
        """The one line for `error` if it says a path was too long (`path`, else the error's own), else None."""
        named = os.fspath(path) if path is not None else error.filename
        text = os.fsdecode(named) if named is not None else "the path"
        winerror = getattr(error, "winerror", None)
        too_long = (error.errno == errno.ENAMETOOLONG or winerror == cls.WINDOWS_TOO_LONG
                    or (winerror == cls.WINDOWS_NOT_FOUND and len(text) >= cls.WINDOWS_LONGEST_FOLDER))
        if not too_long:
            return None
        if windows if windows is not None else sys.platform == "win32":
            return cls(f"{text} is too long a path for Windows ({len(text)} characters; 260 without long paths): "
                       "choose a shorter output folder (such as C:\\Music\\riffstudio), or enable long paths in "
                       "Windows (docs/windows.md)")
        return cls(f"{text} is too long a path here (a name over 255 bytes, or over 4096 in all): choose a shorter "
                   "output folder or name")


class AudioFileError(InvalidInputError):
    """An audio file that cannot be read, or holds no usable audio."""


class ImageFileError(InvalidInputError):
    """An image file that cannot be read, or is not a spectrogram we can decode."""


class ModelBundleError(RiffstudioError):
    """A model bundle (or conversion source) that is missing, incomplete, altered or of the wrong kind."""

    exit_code = 3
    code: ClassVar[str] = "model_bundle"


class ProviderError(RiffstudioError):
    """An ONNX Runtime execution provider (CPU, QNN) that cannot be used here."""

    exit_code = 4
    code: ClassVar[str] = "provider"


class EngineError(RiffstudioError):
    """The engine process cannot be reached, refused us, or broke the protocol (see docs/protocol.md)."""

    exit_code = 5


class StorageError(EngineError):
    """The engine cannot keep its own state on disk (its data folder is full, unwritable or gone)."""

    code: ClassVar[str] = "storage"


class CancelledError(RiffstudioError):
    """The user cancelled a long job; not a failure, but the job produced nothing."""

    exit_code = 130
    code: ClassVar[str] = "cancelled"


def reason(error: BaseException, limit: int | None = None) -> str:
    """A third-party exception as a short clause for our one-line messages: its first line, or its type."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    return text[:limit] if limit else text


class HubError(RiffstudioError):
    """Qualcomm AI Hub (`riffstudio model compile`) cannot be used: no token, refused, unreachable, busy."""

    exit_code = 6


# The types a protocol code stands for (`code` -> class), for errors that come back from the engine.
WIRE_TYPES: tuple[type[RiffstudioError], ...] = (InvalidInputError, ModelBundleError, ProviderError, StorageError,
                                                 CancelledError)
