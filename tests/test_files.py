"""Files nbresume writes for the user (`nbresume._files`): replaced whole, never through a link
that someone put where the temporary file would go."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from nbresume._files import replacing


def test_replacing_never_writes_through_a_planted_link(tmp_path: Path) -> None:
    target = tmp_path / "out.ipynb"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    # every name the old scheme could pick: beside the target, with this process's id
    (tmp_path / f".{target.name}.{os.getpid()}.tmp").symlink_to(victim)
    with replacing(target) as tmp:
        tmp.write_text("new notebook")
    assert target.read_text() == "new notebook"
    assert victim.read_text() == "precious"


def test_replacing_keeps_the_mode_of_the_file_it_replaces(tmp_path: Path) -> None:
    target = tmp_path / "out.ipynb"
    target.write_text("old")
    target.chmod(0o640)
    with replacing(target) as tmp:
        tmp.write_text("new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_a_new_file_gets_the_umask_default_mode(tmp_path: Path) -> None:
    target = tmp_path / "new.ipynb"
    old = os.umask(0o022)
    try:
        with replacing(target) as tmp:
            tmp.write_text("new")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.ipynb"
    target.write_text("old")

    def write_and_fail() -> None:
        with replacing(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_and_fail()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.ipynb"]
