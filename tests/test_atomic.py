"""Atomic writes: complete under the final name, or nothing at all."""

from __future__ import annotations

import pytest

from engine.atomic import atomic_path, write_bytes_atomic


def test_file_appears_only_after_success(tmp_path):
    target = tmp_path / "loop.wav"
    with atomic_path(target) as temp:
        temp.write_bytes(b"data")
        assert not target.exists()
    assert target.read_bytes() == b"data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop.wav"]


def test_failure_leaves_no_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "loop.wav"
    write_bytes_atomic(target, b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        temp.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop.wav"]


def test_folder_replaces_the_old_one_whole(tmp_path):
    target = tmp_path / "bundle"
    with atomic_path(target, directory=True) as temp:
        (temp / "a").write_text("1")
    with atomic_path(target, directory=True) as temp:
        (temp / "b").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    with pytest.raises(KeyboardInterrupt), atomic_path(target, directory=True) as temp:
        (temp / "c").write_text("3")
        raise KeyboardInterrupt
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_results_get_ordinary_permissions(tmp_path):
    import os

    write_bytes_atomic(tmp_path / "loop.wav", b"x")
    with atomic_path(tmp_path / "bundle", directory=True) as temp:
        (temp / "a").write_text("1")
    if os.name == "posix":
        umask = os.umask(0o022)
        os.umask(umask)
        assert (tmp_path / "loop.wav").stat().st_mode & 0o777 == 0o666 & ~umask
        assert (tmp_path / "bundle").stat().st_mode & 0o777 == 0o777 & ~umask
