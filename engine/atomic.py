"""Atomic writes: a file or folder appears complete under its final name, or not at all.

Writes go to a hidden temporary name in the destination folder (same file system, so the final
`os.replace` is atomic) and are renamed on success; on any exception the temporary is removed. A process
killed mid-write leaves its temporary: `remove_leftovers` finds those of given final names by our marker.

`check_writable` proves in a moment, before minutes of generation or conversion, that such a write
will be possible; `write_errors` turns a write that fails anyway (a full disk) into one line.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from engine.errors import InvalidInputError, PathTooLongError, reason

# check_writable_folder's stand-in for the files that will be written into a folder.
PROBE_NAME = ".riffstudio-write-check"
# What every temporary name ends in (before the final name's suffix): ours alone, so that leftovers of a killed
# write are found by it and by the final name they belong to, never by a pattern a user's file can match.
MARKER = ".riffstudio-partial"
# tempfile's random part is 8 characters of [a-z0-9_].
# How long a rename is retried while another process holds its target open (Windows: Defender, the search
# indexer, OneDrive, Excel with summary.csv open, a client reading engine.json): moments, usually.
REPLACE_RETRY_S = 5.0
# The Windows errors of a rename refused because the file is in use: access denied, sharing and lock violations.
_IN_USE_WINERRORS = frozenset({5, 32, 33})
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}" + re.escape(MARKER) + r"(?P<suffix>(\.[^.]+)?)")


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str], *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it is renamed to `final` (replacing it)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        recover_replaced(final)
    temp = _make_temporary(final, directory)
    # mkstemp/mkdtemp make private (0600/0700) entries; give the result the permissions a plain write would.
    os.chmod(temp, (0o777 if directory else 0o666) & ~_umask())
    try:
        yield temp
        if directory and final.exists():
            # A folder cannot be replaced atomically on every OS: the old one moves aside first (within the same
            # parent), and until the new one is in place that is the only complete copy: a process killed
            # between the two renames leaves it there, and recover_replaced puts it back.
            old = _replaced_name(final)
            replace(final, old)
            replace(temp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            replace(temp, final)
    except BaseException:
        if temp.is_dir():
            shutil.rmtree(temp, ignore_errors=True)
        else:
            temp.unlink(missing_ok=True)
        raise


def replace(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """`os.replace`, retried with a growing pause for up to REPLACE_RETRY_S while Windows refuses it because
    another process has the target (or source) open; any other error, or one that outlasts the retries, is
    raised as it is."""
    deadline = time.monotonic() + REPLACE_RETRY_S
    pause = 0.01
    while True:
        try:
            os.replace(source, target)
            return
        except PermissionError as error:
            if getattr(error, "winerror", None) not in _IN_USE_WINERRORS or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def recover_replaced(final: str | os.PathLike[str]) -> None:
    """Finish a folder replacement a killed process left half-way: with no folder at `final`, the old one
    moved aside is put back (the new one was never complete); with both there, the moved-aside one is
    the stale copy and goes. Readers call this too, so a bundle is found again at once."""
    final = Path(final)
    old = _replaced_name(final)
    if not old.is_dir() or old.is_symlink():
        return
    if not os.path.lexists(final):
        replace(old, final)
    elif final.is_dir():
        shutil.rmtree(old, ignore_errors=True)


def _replaced_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.riffstudio-replaced")


def _make_temporary(final: Path, directory: bool) -> Path:
    """A new hidden entry beside `final`, named after it; its folder must exist."""
    prefix = f".{final.name}."
    if directory:
        return Path(tempfile.mkdtemp(prefix=prefix, suffix=MARKER, dir=final.parent))
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=MARKER + final.suffix, dir=final.parent)
    os.close(fd)
    return Path(name)


def leftover_temporaries(finals: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The temporaries `atomic_path` made for `finals` and a killed process left behind: hidden entries
    beside each final name called `.<name>.<8 random characters>.riffstudio-partial[<suffix>]`, which no
    other program writes. A producer's own file is never among them, whatever it is called."""
    found: list[Path] = []
    by_folder: dict[Path, set[str]] = {}
    for final in map(Path, finals):
        by_folder.setdefault(final.parent, set()).add(final.name)
    for folder, names in by_folder.items():
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            match = _TEMPORARY.fullmatch(entry.name)
            if match and match["name"] in names and match["suffix"] in ("", Path(match["name"]).suffix):
                found.append(entry)
    return found


def remove_leftovers(finals: Iterable[str | os.PathLike[str]]) -> int:
    """Remove `leftover_temporaries(finals)`; returns how many went."""
    return _remove(leftover_temporaries(finals))


def remove_all_leftovers(folder: str | os.PathLike[str]) -> int:
    """Remove every temporary of ours in `folder`, whatever final name it was for: only for a folder riffstudio
    alone writes (the engine's results folder), where any such entry is a write a killed process left."""
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return 0
    return _remove([entry for entry in entries if _TEMPORARY.fullmatch(entry.name)])


def _remove(leftovers: Iterable[Path]) -> int:
    count = 0
    for leftover in leftovers:
        try:
            shutil.rmtree(leftover) if leftover.is_dir() and not leftover.is_symlink() else leftover.unlink()
            count += 1
        except OSError:
            pass
    return count


def check_writable(final: str | os.PathLike[str], *, directory: bool = False,
                   inputs: Iterable[str | os.PathLike[str] | None] = ()) -> None:
    """Prove that `atomic_path(final, directory=directory)` will succeed, before any long work starts.

    A loop or a bundle takes seconds to minutes to make; an output that cannot be written should fail
    at once with what to do, not after the work with the OS's traceback. So `final` must not be a folder
    where a file is meant (or a file where a folder is), its folder must exist or be creatable, and the
    very temporary atomic_path would make there must be creatable. Everything the check creates (the
    temporary, missing folders) is removed again: a refused or later failing command leaves nothing.
    `inputs` are the files the command reads: an output that is one of them is refused (see check_not_input).
    Raises InvalidInputError (one line).
    """
    final = Path(final)
    made: list[Path] = []
    try:
        check_not_input(final, inputs)
        _check_kind(final, directory)
        _make_folders(final.parent, made)
        _probe_temporary(final, directory)
    except OSError as error:  # a path too long to even look at (a stat: ENAMETOOLONG, Windows' 206)
        raise PathTooLongError.of(error, final) or error from None
    finally:
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()


def can_write_in(folder: str | os.PathLike[str]) -> bool:
    """Whether this process may create files in `folder`, found by creating (and removing) one of our own.

    Not `os.access(folder, os.W_OK)`: on Windows that reads only the read-only attribute, which folders
    ignore, so it says yes to a folder whose ACL refuses us (a bundle under Program Files, a share). The
    probe's name is one of our temporaries (`remove_all_leftovers` knows it), unique to this call."""
    try:
        fd, name = tempfile.mkstemp(prefix=f"{PROBE_NAME}.", suffix=MARKER, dir=folder)
    except OSError:
        return False
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return True


def check_not_input(final: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None]) -> None:
    """Refuse to write `final` when it is one of `inputs`: the same path, a hard link to it, a symbolic link
    either way, another spelling on a case-insensitive disk. The write would replace the producer's source
    (renamed over it) with what was made from it."""
    final = Path(final)
    for source in inputs:
        if source is not None and _same_file(final, Path(source)):
            raise InvalidInputError(f"the output {final} is the input {source}: choose another output name "
                                    "(riffstudio never writes over what it reads)")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): the same only if both name the same place
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def check_writable_folder(folder: str | os.PathLike[str]) -> None:
    """`check_writable` for a folder that files will be written into (created if missing)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"{folder} is a file: give a folder name instead")
    check_writable(folder / PROBE_NAME)


def _check_kind(final: Path, directory: bool) -> None:
    """A file is never written over a folder, nor a folder over a file."""
    if not directory and final.is_dir():
        raise InvalidInputError(f"{final} is a folder: give a file name instead")
    if directory and final.exists() and not final.is_dir():
        raise InvalidInputError(f"{final} is a file: give a folder name instead")


def _make_folders(folder: Path, made: list[Path]) -> None:
    """Create `folder` and its missing parents, appending each one created to `made` (outermost first)."""
    missing: list[Path] = []
    existing = folder
    while not os.path.exists(existing):  # False on any error too: mkdir below then says why
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        raise InvalidInputError(f"{existing} is a file, not a folder: choose another place to write to")
    for path in reversed(missing):
        try:
            path.mkdir()
        except OSError as error:
            raise PathTooLongError.of(error, path) or InvalidInputError(
                f"cannot create the folder {path} ({_why(error)}): choose a folder you can write to") from None
        made.append(path)


def _probe_temporary(final: Path, directory: bool) -> None:
    """Make and remove the temporary atomic_path would make for `final` (its name's length counts too)."""
    try:
        temp = _make_temporary(final, directory)
    except OSError as error:  # the temporary's name is the longest we write there: too long is found here
        raise PathTooLongError.of(error, final) or InvalidInputError(
            f"cannot write {final.name} in the folder {final.parent} ({_why(error)}): choose a folder you can "
            "write to") from None
    if directory:
        temp.rmdir()
    else:
        temp.unlink()


@contextlib.contextmanager
def write_errors(final: str | os.PathLike[str]) -> Iterator[None]:
    """A write of `final` that fails despite check_writable (a full disk, a folder removed meanwhile)
    becomes one InvalidInputError line instead of a traceback.

    soundfile reports its write failures with its own type ("System error."), so it is caught too.
    """
    import soundfile

    try:
        yield
    except (OSError, soundfile.SoundFileError) as error:
        if isinstance(error, OSError) and (too_long := PathTooLongError.of(error)):
            raise too_long from None
        raise InvalidInputError(f"cannot write {final} ({_why(error)}): free some disk space or choose "
                                "another place") from None


def _why(error: BaseException) -> str:
    """The OS's reason without its errno and path ("Permission denied"), else the error's first line."""
    return getattr(error, "strerror", None) or reason(error, 120)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(final: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(final) as temp:
        temp.write_bytes(data)
