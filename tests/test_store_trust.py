"""A store that arrives with a notebook is hostile until its signatures verify.

Each test builds a store with plain ``diskcache``/``sqlite3`` (no key) the way an attacker would, then
runs the readers: the magic's subcommands, the CLI, ``resumable(name=...)``, a checkpoint cell. It
asserts that no code ran (a marker file is never created), that files outside the store survive,
and that nothing printed a traceback. See docs/reliability.md, "Threat model".
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import struct
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import diskcache
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import CellRun, cli, runs
from nbresume import CheckpointWarning, StoreError, _serialize, _signing, _store

RunCell = Callable[..., CellRun]
STORE = Path(".nbresume")
MARKER = "pwned.txt"  # what a payload would create: it must never exist


class Payload:
    """Unpickling this creates MARKER in the working directory."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {MARKER}",))


def plain_cache() -> diskcache.Cache:
    """The store as an attacker writes it: diskcache with its defaults, no nbresume, no key."""
    return diskcache.Cache(str(STORE))


def assert_no_code_ran() -> None:
    assert not Path(MARKER).exists(), "a pickle from the store was loaded"


@pytest.fixture
def quiet() -> Iterator[list[warnings.WarningMessage]]:
    """Collect nbresume's warnings instead of failing on them; tests assert on them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text


MAGIC_COMMANDS = ["list", "status", "history", "log", "clear --all"]
CLI_COMMANDS = [
    ["list"],
    ["status", "--json"],
    ["show", "x"],
    ["history"],
    ["log"],
    ["gc", "--older-than", "0s"],
    ["clear", "--all"],
    ["trust", ".nbresume"],
]


def run_every_reader(
    run_cell: RunCell, capsys: pytest.CaptureFixture[str], cell: str = ""
) -> list[str]:
    """Every way a user reads a store; returns what they printed."""
    printed = []
    if cell:
        run = run_cell(cell)
        assert run.error is None, run.error
        printed.append(run.stdout + run.stderr)
    for command in MAGIC_COMMANDS:
        run = run_cell(f"%checkpoint {command}")
        printed.append(run.stdout + run.stderr)
    for argv in CLI_COMMANDS:
        _, out, err = cli(capsys, *argv, *(["--dir", str(STORE)] if argv[0] != "trust" else []))
        printed.append(out + err)
    return printed


# -- no code runs -------------------------------------------------------------------------------

CELL = "%%checkpoint x\ntick()\nvalue = 42\n"


@pytest.mark.parametrize(
    "key", ["phase:x", "progress:x", "events:x", "loop:download", "snapshot:x", "cell:x:0"]
)
def test_a_pickled_row_at_any_key_is_never_unpickled(
    run_cell: RunCell,
    capsys: pytest.CaptureFixture[str],
    quiet: list[warnings.WarningMessage],
    key: str,
) -> None:
    with plain_cache() as cache:
        cache.set(key, Payload())  # diskcache's pickle mode
        cache.set(key + "-big", [Payload(), b"x" * 100_000])  # a pickle kept in a file
    printed = run_every_reader(run_cell, capsys, CELL)
    assert_no_code_ran()
    no_traceback(*printed)
    if key.startswith(("phase:", "progress:", "events:")):  # read by the cell and the commands
        assert any("did not write with your key" in str(w.message) for w in quiet)


def test_a_row_whose_key_is_a_pickle_is_never_unpickled_by_any_listing(
    run_cell: RunCell, capsys: pytest.CaptureFixture[str], quiet: list[warnings.WarningMessage]
) -> None:
    run_cell(CELL)
    with plain_cache() as cache:
        cache.set(Payload(), b"anything")  # the key column holds a pickle
    printed = run_every_reader(run_cell, capsys)
    assert_no_code_ran()
    no_traceback(*printed)


def test_a_pickled_loop_record_is_never_read_by_a_named_loop_outside_cells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quiet: list[warnings.WarningMessage]
) -> None:
    from nbresume import resumable

    monkeypatch.chdir(tmp_path)
    with plain_cache() as cache:
        for key in ("loop:download", "progress:download"):
            cache.set(key, Payload())
    done = []
    for i in resumable(range(3), name="download"):
        done.append(i)
    assert done == [0, 1, 2]
    assert_no_code_ran()


def test_settings_rows_never_become_pragmas_or_disk_options(run_cell: RunCell) -> None:
    run_cell(CELL)
    _store.close_stores()
    with sqlite3.connect(STORE / "cache.db") as db:
        db.execute("INSERT INTO Settings VALUES ('sqlite_query_only', 1)")
        db.execute("INSERT INTO Settings VALUES ('disk_surprise', 1)")
        db.execute(
            "UPDATE Settings SET value = 'least-recently-used' WHERE key = 'eviction_policy'"
        )
    db.close()
    again = run_cell(CELL.replace("42", "43"))  # a miss that writes: query_only would refuse it
    assert again.error is None
    assert runs() == 2
    with sqlite3.connect(STORE / "cache.db") as db:
        settings = dict(db.execute("SELECT key, value FROM Settings").fetchall())
    db.close()
    assert "sqlite_query_only" not in settings
    assert "disk_surprise" not in settings
    assert settings["eviction_policy"] == "none"


# -- no file outside the store is touched ----------------------------------------------------------


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file (in a folder of its own) outside the store that a hostile row names."""
    folder = tmp_path.parent / f"{tmp_path.name}-victim" / "deep"
    folder.mkdir(parents=True)
    file = folder / "precious.txt"
    file.write_text("keep me")
    return file


def point_rows_at(victim: Path, how: str) -> None:
    """Make every row that has a value file name ``victim`` instead."""
    name = str(victim) if how == "absolute" else os.path.relpath(victim, STORE)
    _store.close_stores()
    with sqlite3.connect(STORE / "cache.db") as db:
        db.execute("UPDATE Cache SET filename = ?, mode = 2 WHERE 1", (name,))
    db.close()


@pytest.mark.parametrize("how", ["absolute", "relative"])
def test_a_row_naming_a_file_outside_the_store_never_gets_it_deleted(
    run_cell: RunCell,
    capsys: pytest.CaptureFixture[str],
    quiet: list[warnings.WarningMessage],
    victim: Path,
    how: str,
) -> None:
    run_cell(CELL)
    run_cell("%%checkpoint loop\nout = []\nfor i in resumable(range(3)):\n    out.append(i)\n")
    point_rows_at(victim, how)
    run_cell(CELL.replace("42", "44"))  # rewrites the phase and progress records
    run_cell("%%checkpoint x --force\ntick()\nvalue = 42\n")
    printed = run_every_reader(run_cell, capsys)
    no_traceback(*printed)
    assert victim.read_text() == "keep me"
    assert victim.parent.is_dir()


def test_a_symlinked_value_folder_never_leads_outside(
    run_cell: RunCell, quiet: list[warnings.WarningMessage], victim: Path
) -> None:
    run_cell(CELL)
    _store.close_stores()
    (value,) = STORE.rglob("*.val")
    folder = value.parent
    shutil.rmtree(folder)
    folder.symlink_to(victim.parent, target_is_directory=True)
    (victim.parent / value.name).write_text("also keep me")
    run_cell("%%checkpoint x --force\ntick()\nvalue = 42\n")  # replaces the entry: deletes old file
    assert (victim.parent / value.name).read_text() == "also keep me"
    assert victim.read_text() == "keep me"


def test_gc_never_deletes_through_a_symlinked_folder(
    run_cell: RunCell, capsys: pytest.CaptureFixture[str], victim: Path
) -> None:
    run_cell(CELL)
    _store.close_stores()
    # diskcache names its folders by hash: take a free one, like a planted folder would
    top = next(STORE / f"{n:02x}" for n in range(256) if not (STORE / f"{n:02x}").exists())
    top.mkdir()
    (top / "cd").symlink_to(victim.parent, target_is_directory=True)
    loose = victim.parent / ("0" * 28 + ".val")
    loose.write_text("not yours")
    os.utime(loose, (0, 0))
    code, _, err = cli(capsys, "gc", "--dir", str(STORE), "--older-than", "0s")
    assert code == 0, err
    assert loose.exists()


# -- records are signed and bound -----------------------------------------------------------------


def test_an_edited_phase_record_is_ignored_with_a_warning(
    run_cell: RunCell, quiet: list[warnings.WarningMessage]
) -> None:
    run_cell(CELL)
    _store.close_stores()
    with sqlite3.connect(STORE / "cache.db") as db:
        (value,) = db.execute("SELECT value FROM Cache WHERE key = 'phase:x'").fetchone()
        forged = value.replace(b'"done"', b'"gone"')
        db.execute("UPDATE Cache SET value = ? WHERE key = 'phase:x'", (forged,))
    db.close()
    again = run_cell("%checkpoint status")
    assert again.error is None
    assert "gone" not in again.stdout
    assert any("did not write with your key" in str(w.message) for w in quiet)


def test_a_record_moved_to_another_phase_does_not_verify(
    run_cell: RunCell, quiet: list[warnings.WarningMessage]
) -> None:
    run_cell(CELL)
    run_cell("%%checkpoint y\nother = 1\n")
    _store.close_stores()
    with sqlite3.connect(STORE / "cache.db") as db:
        (value,) = db.execute("SELECT value FROM Cache WHERE key = 'phase:y'").fetchone()
        db.execute("UPDATE Cache SET value = ? WHERE key = 'phase:x'", (value,))
    db.close()
    store = _store.open_store(STORE)
    assert store.get_json("phase:x") is None


def test_an_older_signed_value_file_put_back_is_a_replay_and_a_miss(
    shell: Any, run_cell: RunCell, quiet: list[warnings.WarningMessage]
) -> None:
    cell = "%%checkpoint x\ntick()\nvalue = counter\n"
    shell.user_ns["counter"] = 1
    run_cell(cell)
    (old,) = STORE.rglob("*.val")
    saved = old.read_bytes()
    run_cell(cell.replace("%%checkpoint x", "%%checkpoint x --force"))
    _store.close_stores()
    (new,) = STORE.rglob("*.val")
    new.write_bytes(saved)  # the old, validly signed bytes
    shell.user_ns.pop("value")
    run_cell(cell)
    assert runs() == 3  # a miss: it ran again
    assert any("replay" in str(w.message) for w in quiet)


def test_a_record_of_the_wrong_type_is_a_miss_and_no_command_prints_a_traceback(
    run_cell: RunCell, capsys: pytest.CaptureFixture[str], quiet: list[warnings.WarningMessage]
) -> None:
    run_cell(CELL)
    store = _store.open_store(STORE)
    for key in store.keys(""):
        if not key.startswith("cell:"):
            store.put_json(key, ["not", "an", "object"])  # signed, so only a bug could write it
    printed = run_every_reader(run_cell, capsys, CELL)
    no_traceback(*printed)


@pytest.mark.parametrize(
    ("field", "value"),
    [("versions", "oops"), ("versions", [1, 2]), ("updated", "later"), ("status", 7)],
)
def test_a_record_with_a_malformed_field_never_crashes_a_reader(
    run_cell: RunCell,
    capsys: pytest.CaptureFixture[str],
    quiet: list[warnings.WarningMessage],
    field: str,
    value: Any,
) -> None:
    run_cell(CELL)
    store = _store.open_store(STORE)
    record = store.get_json("phase:x")
    record[field] = value
    store.put_json("phase:x", record)
    printed = run_every_reader(run_cell, capsys, CELL)
    no_traceback(*printed)


# -- the key ----------------------------------------------------------------------------------------


def test_a_short_key_is_refused_in_one_line_and_the_cell_keeps_its_value(
    shell: Any, run_cell: RunCell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBRESUME_KEY", "k")
    with pytest.warns(CheckpointWarning, match="at least 16") as caught:
        run = run_cell(CELL)
    assert run.error is None
    assert shell.user_ns["value"] == 42
    assert "\n" not in str(caught[0].message)


def key_file(tmp_path: Path) -> Path:
    return tmp_path / "config" / "nbresume" / "key"


def test_an_empty_key_file_left_by_a_failed_write_is_refused(
    shell: Any, run_cell: RunCell, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NBRESUME_KEY")
    key_file(tmp_path).parent.mkdir(parents=True, mode=0o700)
    key_file(tmp_path).write_bytes(b"")
    key_file(tmp_path).chmod(0o600)
    with pytest.warns(CheckpointWarning, match="delete the file"):
        run = run_cell(CELL)
    assert run.error is None
    assert shell.user_ns["value"] == 42


def test_a_new_key_is_written_atomically_with_32_random_bytes(
    run_cell: RunCell, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NBRESUME_KEY")
    run_cell(CELL)
    key = key_file(tmp_path)
    assert len(key.read_bytes()) == 32
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert sorted(p.name for p in key.parent.iterdir()) == ["key"]  # no temporary left


def test_a_key_file_readable_by_others_gets_a_warning(
    run_cell: RunCell, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NBRESUME_KEY")
    _signing._told.clear()
    key = key_file(tmp_path)
    key.parent.mkdir(parents=True)
    key.write_bytes(os.urandom(32))
    key.chmod(0o644)
    with pytest.warns(Warning, match="readable by other users"):
        run_cell(CELL)


@pytest.mark.parametrize("broken", ["file-for-folder", "folder-for-file"])
def test_a_broken_key_location_is_one_warning_and_the_cell_keeps_its_value(
    shell: Any, run_cell: RunCell, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, broken: str
) -> None:
    monkeypatch.delenv("NBRESUME_KEY")
    key = key_file(tmp_path)
    if broken == "file-for-folder":
        key.parent.parent.mkdir(parents=True)
        key.parent.write_text("not a folder")
    else:
        key.mkdir(parents=True)
    with pytest.warns(CheckpointWarning, match="cannot use the signing key") as caught:
        run = run_cell(CELL)
    assert run.error is None
    assert shell.user_ns["value"] == 42
    assert "\n" not in str(caught[0].message)


# -- trust --------------------------------------------------------------------------------------


def test_trust_bounds_every_size_by_the_file_and_runs_no_code(
    run_cell: RunCell, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_cell(CELL)
    _store.close_stores()
    (value,) = STORE.rglob("*.val")
    data = value.read_bytes()
    trailer = struct.Struct("<I8s")
    header_len, _ = trailer.unpack(data[-trailer.size :])
    header_at = len(data) - trailer.size - 32 - header_len
    import json

    header = json.loads(data[header_at : header_at + header_len])
    header["buffers"] = [10 * 2**40]  # 10 TB
    header["digests"] = ["0" * 32]
    forged = json.dumps(header).encode()
    value.write_bytes(
        data[:header_at]
        + forged
        + data[-trailer.size - 32 : -trailer.size]
        + trailer.pack(len(forged), b"NBRESUME")
    )
    monkeypatch.setenv("NBRESUME_KEY", "someone-else-entirely")
    _, out, err = cli(capsys, "trust", str(STORE))
    no_traceback(out, err)
    assert "damaged" in out + err
    assert_no_code_ran()


# -- the store folder -----------------------------------------------------------------------------


def test_a_new_store_gets_a_gitignore_and_mode_0700(run_cell: RunCell) -> None:
    run_cell(CELL)
    assert (STORE / ".gitignore").read_text().splitlines()[-1] == "*"
    assert stat.S_IMODE(STORE.stat().st_mode) == 0o700


def test_a_symlinked_store_keeps_its_permissions(run_cell: RunCell, tmp_path: Path) -> None:
    target = tmp_path.parent / f"{tmp_path.name}-target"
    target.mkdir(mode=0o755)
    target.chmod(0o755)
    STORE.symlink_to(target, target_is_directory=True)
    run_cell(CELL)
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert (target / "cache.db").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_store_symlinked_to_another_users_folder_is_refused(
    run_cell: RunCell, tmp_path: Path, quiet: list[warnings.WarningMessage]
) -> None:
    target = tmp_path.parent / f"{tmp_path.name}-theirs"
    target.mkdir(mode=0o777)
    target.chmod(0o777)
    os.chown(target, 65534, 65534)
    STORE.symlink_to(target, target_is_directory=True)
    run = run_cell(CELL)
    assert run.error is None  # the live result stays
    assert not (target / "cache.db").exists()
    assert stat.S_IMODE(target.stat().st_mode) == 0o777
    assert any("belongs to another user" in str(w.message) for w in quiet)


# -- any damage is a restore of the right value or a clean miss -------------------------------------


def _entry(tmp_path: Path) -> tuple[_store.Store, Path, bytes]:
    store = _store.Store(tmp_path / "prop")
    store.put("cell:p:1", _serialize.dumps({"vars": {"v": list(range(50)), "s": "right"}}))
    (value,) = (tmp_path / "prop").rglob("*.val")
    return store, value, value.read_bytes()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(
        st.tuples(
            st.sampled_from(["flip", "truncate", "swap"]),
            st.integers(0, 10**6),
            st.integers(0, 255),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_flipped_truncated_or_swapped_bytes_restore_the_right_value_or_miss(
    tmp_path: Path, edits: list[tuple[str, int, int]]
) -> None:
    store, value, intact = _entry(tmp_path)
    data = bytearray(intact)
    for kind, at, byte in edits:
        if not data:
            break
        i = at % len(data)
        if kind == "flip":
            data[i] ^= byte or 1
        elif kind == "truncate":
            del data[i:]
        else:
            j = (at * 7 + byte) % len(data)
            data[i], data[j] = data[j], data[i]
    value.write_bytes(bytes(data))
    try:
        got = store.get("cell:p:1")
    except StoreError:
        pass
    else:
        assert got == {"vars": {"v": list(range(50)), "s": "right"}}
    finally:
        store.close()
        shutil.rmtree(tmp_path / "prop")


# -- real kernels and a real server ---------------------------------------------------------------


def hostile_store(folder: Path, victim: Path) -> None:
    """A store as it might arrive with a notebook: pickles at the keys nbresume reads, a pickled
    key, and rows naming a file outside the store."""
    cache = diskcache.Cache(str(folder / ".nbresume"))
    try:
        for key in ("phase:x", "progress:x", "events:x", "loop:x"):
            cache.set(key, Payload())
        cache.set(Payload(), b"key")
        cache.set("progress:y", b"z" * 100_000)  # a value file, then pointed at the victim
    finally:
        cache.close()
    with sqlite3.connect(folder / ".nbresume" / "cache.db") as db:
        db.execute("UPDATE Cache SET filename = ? WHERE key = 'progress:y'", (str(victim),))
    db.close()


@pytest.mark.kernel
def test_a_real_kernel_runs_no_code_from_a_hostile_store(
    kernels: Any, tmp_path: Path, victim: Path
) -> None:
    kernel = kernels.start("hostile", wait=False)
    hostile_store(kernel.workdir, victim)
    kernel.wait_ready()
    kernel.run("%load_ext nbresume")
    for code in (
        "%%checkpoint x\nx = 1\n",
        "%%checkpoint y\nout = []\nfor i in resumable(range(3)):\n    out.append(i)\n",
        "%checkpoint status",
        "%checkpoint clear --all",
    ):
        reply, outputs = kernel.execute(code)
        assert reply["status"] == "ok", reply
        assert not any(o.get("output_type") == "error" for o in outputs)
    assert not (kernel.workdir / MARKER).exists()
    assert victim.read_text() == "keep me"


@pytest.mark.kernel
def test_the_dashboard_reads_a_hostile_store_without_running_or_deleting_anything(
    tmp_path: Path, victim: Path
) -> None:
    from jupyter_helpers import JupyterServer

    root = tmp_path / "site"
    (root / "project").mkdir(parents=True)
    hostile_store(root / "project", victim)
    server = JupyterServer(root, tmp_path / "jupyter").start()
    try:
        client = server.client()
        listed = client.get("/nbresume/api/stores", token=True)
        assert listed.status == 200, listed
        phases = client.get("/nbresume/api/phases?store=project/.nbresume", token=True)
        assert phases.status == 200, phases
        for name in ("x", "y"):
            response = client.post(
                "/nbresume/api/clear", {"store": "project/.nbresume", "name": name}, token=True
            )
            assert response.status in (200, 404), response
    finally:
        server.stop()
    assert not (root / MARKER).exists()
    assert not Path(MARKER).exists()
    assert victim.read_text() == "keep me"
