"""A `.nbresume/` folder shipped with a notebook by someone else (same user account, no key).

Neighbours of issue 13's findings: what sits in place of the database, its journal files, the
store folder or the key. Nothing outside the store is created, written or deleted because of what
the store holds, no open hangs, and each refusal is one line. See docs/reliability.md.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import CellRun, cli
from nbresume import _signing, _store
from test_store_trust import CELL, STORE, no_traceback

RunCell = Callable[..., CellRun]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NBRESUME_DIR", raising=False)
    _store.close_stores()


@pytest.fixture
def caught() -> Iterator[list[warnings.WarningMessage]]:
    """nbresume's warnings, collected instead of failing the test: tests assert on them."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        yield seen


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the store (the user's other files)."""
    folder = tmp_path.parent / f"{tmp_path.name}-outside"
    folder.mkdir()
    return folder


def user_database(path: Path) -> bytes:
    """Another sqlite database of the user; -> its bytes."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE notes (body TEXT)")
    con.execute("INSERT INTO notes VALUES ('mine')")
    con.commit()
    con.close()
    return path.read_bytes()


def messages(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught]


def assert_refused_in_one_line(caught: list[warnings.WarningMessage], what: str) -> None:
    texts = [t for t in messages(caught) if what in t]
    assert texts, messages(caught)
    assert all("\n" not in t for t in texts)


# -- the database file -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cache.db", "cache.db-wal", "cache.db-shm", "cache.db-journal"])
def test_a_dangling_symlink_in_the_store_never_creates_its_target(
    shell: Any, run_cell: RunCell, outside: Path, caught: list[warnings.WarningMessage], name: str
) -> None:
    STORE.mkdir()
    (STORE / name).symlink_to(outside / "created")
    run = run_cell(CELL)
    assert run.error is None
    assert shell.user_ns["value"] == 42
    assert not (outside / "created").exists()
    assert not list(outside.iterdir()), list(outside.iterdir())
    assert_refused_in_one_line(caught, "symlink")


@pytest.mark.parametrize("name", ["cache.db", "cache.db-wal", "cache.db-shm"])
def test_a_symlink_to_another_database_of_the_user_never_writes_it(
    shell: Any, run_cell: RunCell, outside: Path, caught: list[warnings.WarningMessage], name: str
) -> None:
    victim = outside / "mine.db"
    before = user_database(victim)
    STORE.mkdir()
    (STORE / name).symlink_to(victim)
    run = run_cell(CELL)
    assert run.error is None
    assert shell.user_ns["value"] == 42
    assert victim.read_bytes() == before
    assert sorted(p.name for p in outside.iterdir()) == ["mine.db"]
    assert_refused_in_one_line(caught, "symlink")


def test_a_symlink_in_the_store_is_refused_by_every_cli_command(
    outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = outside / "mine.db"
    before = user_database(victim)
    STORE.mkdir()
    (STORE / "cache.db").symlink_to(victim)
    for argv in (["list"], ["status", "--json"], ["gc", "--older-than", "0s"], ["clear", "--all"]):
        _, out, err = cli(capsys, *argv, "--dir", str(STORE))
        no_traceback(out, err)
    _, out, err = cli(capsys, "trust", str(STORE))
    no_traceback(out, err)
    assert victim.read_bytes() == before


FIFO_SCRIPT = """\
import os, sys, warnings
warnings.simplefilter("ignore")
from nbresume import resumable
for x in resumable(range(3), name="fifo"):
    pass
print("finished")
"""


@pytest.mark.timeout(120)
def test_a_fifo_in_place_of_the_database_never_hangs(tmp_path: Path) -> None:
    STORE.mkdir()
    os.mkfifo(STORE / "cache.db")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", FIFO_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "finished" in done.stdout
    assert stat.S_ISFIFO((STORE / "cache.db").lstat().st_mode)


def test_a_regular_file_in_place_of_the_store_is_one_line_and_the_cell_keeps_its_value(
    shell: Any, run_cell: RunCell, caught: list[warnings.WarningMessage]
) -> None:
    STORE.write_text("not a folder")
    run = run_cell(CELL)
    assert run.error is None
    assert shell.user_ns["value"] == 42
    assert STORE.read_text() == "not a folder"
    assert_refused_in_one_line(caught, str(STORE))


def test_a_directory_in_place_of_the_database_is_one_line(
    shell: Any, run_cell: RunCell, caught: list[warnings.WarningMessage]
) -> None:
    (STORE / "cache.db").mkdir(parents=True)
    run = run_cell(CELL)
    assert run.error is None
    assert shell.user_ns["value"] == 42
    assert_refused_in_one_line(caught, "cache.db")


def test_nbresume_dir_pointing_at_a_hostile_folder_is_checked_the_same_way(
    shell: Any,
    run_cell: RunCell,
    outside: Path,
    caught: list[warnings.WarningMessage],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hostile = outside.parent / f"{outside.name}-shared" / "store"
    hostile.mkdir(parents=True)
    victim = outside / "mine.db"
    before = user_database(victim)
    (hostile / "cache.db").symlink_to(victim)
    monkeypatch.setenv("NBRESUME_DIR", str(hostile))
    run = run_cell(CELL)
    assert run.error is None
    assert shell.user_ns["value"] == 42
    assert victim.read_bytes() == before


# -- what the database holds ------------------------------------------------------------------


def test_triggers_and_views_shipped_in_the_database_never_fire(
    shell: Any, run_cell: RunCell, caught: list[warnings.WarningMessage]
) -> None:
    run_cell(CELL)
    _store.close_stores()
    con = sqlite3.connect(STORE / "cache.db")
    con.execute("CREATE TABLE stolen (key TEXT, value BLOB)")
    for event in ("INSERT", "UPDATE", "DELETE"):
        row = "OLD" if event == "DELETE" else "NEW"
        con.execute(
            f"CREATE TRIGGER copy_{event.lower()} AFTER {event} ON Cache BEGIN "
            f"INSERT INTO stolen VALUES ({row}.key, {row}.value); END"
        )
    # one under the name of diskcache's own, which diskcache creates only IF NOT EXISTS
    con.execute("DROP TRIGGER Settings_count_insert")
    con.execute(
        "CREATE TRIGGER Settings_count_insert AFTER INSERT ON Cache BEGIN "
        "INSERT INTO stolen VALUES (NEW.key, NEW.filename); END"
    )
    con.execute("CREATE VIEW everything AS SELECT * FROM Cache")
    con.commit()
    con.close()
    shell.user_ns["value"] = 0
    run = run_cell(CELL.replace("%%checkpoint x", "%%checkpoint x --force"))
    assert run.error is None
    run_cell("%checkpoint clear x")
    _store.close_stores()
    con = sqlite3.connect(STORE / "cache.db")
    assert con.execute("SELECT count(*) FROM stolen").fetchone() == (0,)
    kinds = con.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE type IN ('trigger', 'view')"
    )
    for kind, name, sql in kinds.fetchall():
        assert kind == "trigger"
        assert name.startswith("Settings_")
        assert "stolen" not in sql
    con.close()


# -- value files --------------------------------------------------------------------------------


def test_a_value_file_hard_linked_to_a_file_outside_is_never_written(
    shell: Any, run_cell: RunCell, outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cell(CELL).error is None
    _store.close_stores()
    victims = []
    for i, value in enumerate(STORE.rglob("*.val")):
        victim = outside / f"victim-{i}"
        victim.write_bytes(value.read_bytes())
        value.unlink()
        os.link(victim, value)
        victims.append((victim, victim.read_bytes()))
    assert victims
    assert run_cell(CELL.replace("%%checkpoint x", "%%checkpoint x --force")).error is None
    run_cell("%checkpoint clear x")
    _, out, err = cli(capsys, "trust", str(STORE))
    no_traceback(out, err)
    for victim, before in victims:
        assert victim.read_bytes() == before


# -- the key ------------------------------------------------------------------------------------


def key_file(tmp_path: Path) -> Path:
    return tmp_path / "config" / "nbresume" / "key"


def test_a_key_file_that_is_a_symlink_is_refused_in_one_line(
    run_cell: RunCell,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    outside: Path,
    caught: list[warnings.WarningMessage],
) -> None:
    monkeypatch.delenv("NBRESUME_KEY")
    public = outside / "public"
    public.write_bytes(os.urandom(32))
    public.chmod(0o644)
    key_file(tmp_path).parent.mkdir(parents=True, mode=0o700)
    key_file(tmp_path).symlink_to(public)
    assert run_cell(CELL).error is None
    assert_refused_in_one_line(caught, "signing key")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_key_file_of_another_user_is_refused(
    shell: Any,
    run_cell: RunCell,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caught: list[warnings.WarningMessage],
) -> None:
    monkeypatch.delenv("NBRESUME_KEY")
    key = key_file(tmp_path)
    key.parent.mkdir(parents=True, mode=0o700)
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    os.chown(key, 65534, 65534)
    run = run_cell(CELL)
    assert run.error is None
    assert shell.user_ns["value"] == 42
    assert_refused_in_one_line(caught, "belongs to another user")


def test_a_key_folder_writable_by_others_gets_a_warning(
    run_cell: RunCell, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NBRESUME_KEY")
    _signing._told.clear()
    key = key_file(tmp_path)
    key.parent.mkdir(parents=True)
    key.parent.chmod(0o777)
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    with pytest.warns(Warning, match="writable by other users"):
        run_cell(CELL)


# -- the store folder a symlink to a folder of the user -----------------------------------------


def test_a_store_symlinked_to_a_folder_of_other_files_is_refused(
    shell: Any, run_cell: RunCell, outside: Path, caught: list[warnings.WarningMessage]
) -> None:
    (outside / "notes.txt").write_text("mine")
    STORE.symlink_to(outside, target_is_directory=True)
    run = run_cell(CELL)
    assert run.error is None
    assert shell.user_ns["value"] == 42
    assert sorted(p.name for p in outside.iterdir()) == ["notes.txt"]
    assert_refused_in_one_line(caught, "symlink")


def test_a_store_symlinked_to_another_diskcache_of_the_user_never_changes_it(
    shell: Any, run_cell: RunCell, outside: Path, caught: list[warnings.WarningMessage]
) -> None:
    import diskcache

    with diskcache.Cache(str(outside)) as other:
        other["theirs"] = "value"
    before = (outside / "cache.db").read_bytes()
    STORE.symlink_to(outside, target_is_directory=True)
    run = run_cell(CELL)
    assert run.error is None
    assert shell.user_ns["value"] == 42
    assert (outside / "cache.db").read_bytes() == before
    assert_refused_in_one_line(caught, "symlink")


def test_a_store_symlinked_to_an_empty_folder_or_to_a_store_is_used(
    shell: Any, run_cell: RunCell, outside: Path
) -> None:
    STORE.symlink_to(outside, target_is_directory=True)
    assert run_cell(CELL).error is None
    _store.close_stores()
    STORE.unlink()
    moved = outside.parent / f"{outside.name}-moved"
    outside.rename(moved)
    (moved / ".gitignore").unlink(missing_ok=True)  # none in a symlinked store: settings tell
    STORE.symlink_to(moved, target_is_directory=True)
    assert "restored" in run_cell(CELL).note_text


# -- sizes: a sparse file whose header claims gigabytes ------------------------------------------

SPARSE_SCRIPT = """\
import json, resource, struct, sys
from nbresume import _signing
from nbresume.errors import StoreError

resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29))
claimed = 2 << 30  # a pickle of 2 GiB: more than this process may allocate
header = json.dumps({"schema": _signing.SCHEMA_VERSION, "key": "cell:x", "id": "t",
                     "pickle": claimed, "buffers": [], "digests": []}).encode()
with open("sparse.val", "wb") as f:
    f.truncate(claimed)  # sparse: nothing on disk
    f.seek(claimed)
    f.write(header + bytes(32) + struct.pack("<I8s", len(header), _signing.MAGIC))
with open("sparse.val", "rb") as f:
    try:
        _signing.read_entry(f, b"k" * 32, "cell:x", "store", "t")
    except StoreError as exc:
        print("refused:", exc)
"""


@pytest.mark.timeout(240)
def test_a_sparse_file_claiming_gigabytes_is_refused_without_allocating_them(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", SPARSE_SCRIPT],
        capture_output=True,
        text=True,
        timeout=200,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused: " in done.stdout
    assert "not signed by your key" in done.stdout


def test_a_large_entry_verified_by_streaming_restores_and_a_forged_one_misses(
    shell: Any, run_cell: RunCell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_signing, "MAX_UNVERIFIED", 0)  # every entry takes the large path
    big = CELL.replace("value = 42", "value = list(range(50_000))")
    assert run_cell(big).error is None
    shell.user_ns["value"] = None
    assert "restored" in run_cell(big).note_text
    assert shell.user_ns["value"] == list(range(50_000))
    _store.close_stores()
    monkeypatch.setenv("NBRESUME_KEY", "another-key-of-32-bytes-or-more!")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        again = run_cell(big)
    assert "restored" not in again.note_text
