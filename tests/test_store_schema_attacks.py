"""A shipped `.nbresume/` whose *database schema* or *unsigned headers* are hostile.

The rows of a store are checked (test_store_trust.py); these are the layers under them: the sqlite
schema diskcache queries (a view or a generated column runs SQL on every read, a trigger on every
write), the JSON of an entry's header and of a record, parsed before any signature can be
checked, and the key from the environment. Each must end in one line and a miss, never a hang, a
``RecursionError`` or unbounded memory. Code that could hang runs in a child process with a time
limit, so a regression fails the test instead of blocking the run.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import CellRun, cli, runs
from nbresume import StoreError, _signing, _store
from test_store_trust import CELL, STORE, no_traceback

RunCell = Callable[..., CellRun]
HANG_GUARD = 120  # seconds; only a hang (a regression) gets near it
ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
CACHE_COLUMNS = (
    "rowid INTEGER PRIMARY KEY, key BLOB, raw INTEGER, store_time REAL, expire_time REAL, "
    "access_time REAL, access_count INTEGER DEFAULT 0, tag BLOB, size INTEGER DEFAULT 0, "
    "mode INTEGER DEFAULT 0, filename TEXT"
)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NBRESUME_DIR", raising=False)
    _store.close_stores()


@pytest.fixture
def caught() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        yield seen


def in_child(code: str) -> str:
    """Run ``code`` (nbresume imported) in a child process in the working directory -> its
    output; fails the test if it does not end (a hang) or ends with a traceback."""
    source = "import warnings\nwarnings.simplefilter('always')\n" + textwrap.dedent(code)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", source],
            capture_output=True,
            text=True,
            timeout=HANG_GUARD,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"it hangs (no end after {HANG_GUARD} s)")
    no_traceback(done.stdout, done.stderr)
    return done.stdout + done.stderr


def hostile_database(statements: list[str]) -> None:
    """A `.nbresume/cache.db` made with plain sqlite3 by ``statements``."""
    STORE.mkdir(exist_ok=True)
    con = sqlite3.connect(STORE / "cache.db")
    for sql in statements:
        con.execute(sql)
    con.commit()
    con.close()


ENDLESS_SCHEMAS = {
    "Settings is an endless view": [
        f"CREATE VIEW Settings AS {ENDLESS} SELECT x AS rowid, x AS key, x AS value FROM c"
    ],
    "Cache is an endless view": [
        "CREATE TABLE Settings (key TEXT NOT NULL UNIQUE, value)",
        f"CREATE VIEW Cache AS {ENDLESS} SELECT x AS rowid, 'k' || x AS key, 1 AS raw, 0 AS "
        "store_time, NULL AS expire_time, 0 AS access_time, 0 AS access_count, NULL AS tag, "
        "0 AS size, 1 AS mode, NULL AS filename, NULL AS value FROM c",
    ],
}


@pytest.mark.parametrize("schema", list(ENDLESS_SCHEMAS))
def test_a_schema_that_runs_endless_sql_is_refused_in_one_line(schema: str) -> None:
    hostile_database(ENDLESS_SCHEMAS[schema])
    said = in_child(
        """
        from nbresume import _store, StoreError
        from nbresume._storeread import StoreReader
        try:
            _store.open_store('.nbresume')
            print('OPENED')
        except StoreError as exc:
            print('REFUSED', exc)
        try:
            with StoreReader('.nbresume') as reader:
                print('READ', len(reader.rows()), reader.volume())
        except StoreError as exc:
            print('REFUSED', exc)
        """
    )
    assert "OPENED" not in said, said
    assert said.count("REFUSED") == 2, said
    assert "not made by nbresume" in said, said


def test_a_trigger_that_never_ends_is_dropped_before_nbresume_writes() -> None:
    hostile_database(
        [
            "CREATE TABLE Settings (key TEXT NOT NULL UNIQUE, value)",
            "INSERT INTO Settings VALUES ('sqlite_query_only', 1)",  # nbresume deletes this row
            "CREATE TABLE sink (x)",
            f"CREATE TRIGGER fill AFTER DELETE ON Settings BEGIN INSERT INTO sink {ENDLESS} "
            "SELECT x FROM c; END",
        ]
    )
    said = in_child(
        """
        from nbresume import _store
        store = _store.open_store('.nbresume')
        store.put_json('phase:x', {'name': 'x', 'versions': []})
        print('SAVED', store.get_json('phase:x'))
        """
    )
    assert "SAVED {'name': 'x', 'versions': []}" in said, said
    con = sqlite3.connect(STORE / "cache.db")
    names = [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]
    con.close()
    assert "fill" not in names


def test_a_store_whose_cache_reads_a_generated_gigabyte_is_refused() -> None:
    # NB. a generated column is computed on every read: a tiny file, a 900 MB value per row
    hostile_database(
        [
            "CREATE TABLE Settings (key TEXT NOT NULL UNIQUE, value)",
            f"CREATE TABLE Cache ({CACHE_COLUMNS}, value BLOB GENERATED ALWAYS AS "
            "(zeroblob(900000000)) VIRTUAL)",
            "INSERT INTO Cache (key, raw, store_time, mode) VALUES ('phase:x', 1, 0, 1)",
        ]
    )
    with pytest.raises(StoreError, match="not made by nbresume"):
        _store.open_store(STORE)
    from nbresume._storeread import StoreReader

    with pytest.raises(StoreError, match="not made by nbresume"):
        StoreReader(STORE).rows()


def test_an_index_that_writes_megabytes_per_row_is_dropped(run_cell: RunCell) -> None:
    run_cell(CELL)
    _store.close_stores()
    con = sqlite3.connect(STORE / "cache.db")
    con.execute("CREATE INDEX fat ON Cache (zeroblob(20000000 + rowid))")
    con.commit()
    con.close()
    run = run_cell(CELL.replace("42", "43"))  # a miss: writes rows
    assert run.error is None
    assert runs() == 2
    _store.close_stores()
    assert (STORE / "cache.db").stat().st_size < 10_000_000
    con = sqlite3.connect(STORE / "cache.db")
    names = {n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    con.close()
    assert "fat" not in names


def test_the_cells_of_a_refused_store_keep_their_live_result(
    shell: Any, run_cell: RunCell, caught: list[warnings.WarningMessage]
) -> None:
    hostile_database(
        [
            "CREATE TABLE Settings (key TEXT NOT NULL UNIQUE, value)",
            f"CREATE TABLE Cache ({CACHE_COLUMNS}, value BLOB GENERATED ALWAYS AS "
            "(zeroblob(900000000)) VIRTUAL)",
        ]
    )
    run = run_cell(CELL)
    assert run.error is None
    assert shell.user_ns["value"] == 42
    texts = [str(w.message) for w in caught if "not made by nbresume" in str(w.message)]
    assert texts
    assert all("\n" not in t for t in texts)


def test_a_store_made_by_nbresume_still_opens_and_restores(shell: Any, run_cell: RunCell) -> None:
    run_cell(CELL)
    _store.close_stores()
    shell.user_ns.pop("value")
    run = run_cell(CELL)
    assert run.error is None
    assert shell.user_ns["value"] == 42
    assert runs() == 1


# -- JSON parsed before a signature can be checked ----------------------------------------------

DEEP = b"[" * 200_000 + b"]" * 200_000
TRAILER = struct.Struct("<I8s")


def replace_header(value: Path, header: bytes) -> None:
    """Put ``header`` in place of an entry file's header (its MAC left as it was)."""
    data = value.read_bytes()
    header_len, _ = TRAILER.unpack(data[-TRAILER.size :])
    header_at = len(data) - TRAILER.size - 32 - header_len
    mac = data[-TRAILER.size - 32 : -TRAILER.size]
    value.write_bytes(data[:header_at] + header + mac + TRAILER.pack(len(header), b"NBRESUME"))


def test_a_deeply_nested_entry_header_is_a_miss_not_a_recursion_error(
    shell: Any,
    run_cell: RunCell,
    capsys: pytest.CaptureFixture[str],
    caught: list[warnings.WarningMessage],
) -> None:
    run_cell(CELL)
    _store.close_stores()
    (value,) = STORE.rglob("*.val")
    replace_header(value, DEEP)
    shell.user_ns.pop("value")
    run = run_cell(CELL)
    assert run.error is None
    assert shell.user_ns["value"] == 42
    assert runs() == 2  # a miss: it ran again
    assert any("corrupt" in str(w.message) for w in caught), [str(w.message) for w in caught]


def test_trust_of_deeply_nested_headers_and_records_says_damaged(
    run_cell: RunCell, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_cell(CELL)
    _store.close_stores()
    (value,) = STORE.rglob("*.val")
    replace_header(value, DEEP)
    head = _signing.RECORD_MAGIC + struct.pack("<H", _signing.SCHEMA_VERSION) + b"\0" * 32
    con = sqlite3.connect(STORE / "cache.db")
    con.execute("UPDATE Cache SET value = ? WHERE key = 'phase:x'", (head + DEEP,))
    con.commit()
    con.close()
    monkeypatch.setenv("NBRESUME_KEY", "someone-else-entirely")
    _, out, err = cli(capsys, "trust", str(STORE))
    no_traceback(out, err)
    assert "damaged" in out + err, out + err


def test_trust_never_signs_a_record_nbresume_would_not_read(
    caught: list[warnings.WarningMessage],
) -> None:
    """`trust` blesses a store made with another key; a record whose shape the readers refuse
    (or a huge nesting they could not even parse once signed) is damaged, not re-signed."""
    other = b"k" * 32
    with _store.open_store(STORE) as store:
        store.put_json("phase:y", {"name": "y", "status": "done", "versions": []})
    _store.close_stores()
    con = sqlite3.connect(STORE / "cache.db")
    for key, value in (
        ("phase:x", {"versions": "not a list"}),
        ("events:x", [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]),
    ):
        sealed = _signing.seal_record(other, key, value)
        con.execute(
            "INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count, "
            "tag, size, mode, filename, value) VALUES (?, 1, 0, NULL, 0, 0, NULL, 0, 1, NULL, ?)",
            (key, sealed),
        )
    con.commit()
    con.close()
    store = _store.open_store(STORE)
    _, damaged = store.resign()
    assert sorted(damaged) == ["events:x", "phase:x"]
    assert store.get_json("phase:x") is None
    assert store.get_json("phase:y") == {"name": "y", "status": "done", "versions": []}


# -- the key from the environment ---------------------------------------------------------------


def test_a_key_in_the_environment_that_is_not_utf8_is_used_as_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = bytes(range(128, 160))  # 32 bytes, none valid UTF-8 on its own
    monkeypatch.setenv("NBRESUME_KEY", os.fsdecode(raw))
    assert _signing.signing_key() == raw


def test_a_short_key_in_the_environment_that_is_not_utf8_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NBRESUME_KEY", os.fsdecode(b"\xff\xfe"))
    with pytest.raises(StoreError, match="at least 16") as refused:
        _signing.signing_key()
    assert "\n" not in str(refused.value)


# -- a store of a million rows --------------------------------------------------------------------


def flood(count: int) -> None:
    """``count`` unsigned phase rows, as a shipped store could hold millions of (a small file)."""
    _store.close_stores()
    con = sqlite3.connect(STORE / "cache.db")
    con.executemany(
        "INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count, tag, "
        "size, mode, filename, value) VALUES (?, 1, ?, NULL, 0, 0, NULL, 0, 1, NULL, ?)",
        ((f"phase:n{i}", 1000.0 + i, b"NBRJjunk") for i in range(count)),
    )
    con.commit()
    con.close()


def test_list_and_the_dashboard_read_a_bounded_number_of_rows(
    run_cell: RunCell,
    capsys: pytest.CaptureFixture[str],
    caught: list[warnings.WarningMessage],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nbresume.server import _dashboard

    monkeypatch.setattr(_dashboard, "MAX_ROWS", 50)
    monkeypatch.setattr("nbresume._cli_read.MAX_LISTED", 50)
    monkeypatch.setattr(_dashboard.read_store, "__defaults__", (None, 50))
    run_cell(CELL)  # the user's own phase, written last: it is among those shown
    flood(300)
    reads = []
    real = _dashboard._phase_row

    def counting(name: str, *args: Any) -> Any:
        reads.append(name)
        return real(name, *args)

    monkeypatch.setattr(_dashboard, "_phase_row", counting)
    view = _dashboard.read_store(STORE)
    assert len(view["phases"]) == 50
    assert view["more"] == 251
    assert len(reads) == 50
    assert "x" in reads  # the newest row is the user's
    reads.clear()
    code, out, err = cli(capsys, "list", "--dir", str(STORE))
    assert code == 0, err
    assert len(reads) == 50
    assert "and 251 more rows, not listed" in out
    code, out, err = cli(capsys, "show", "n3", "--dir", str(STORE))  # named: still found
    assert code == 0, err
    assert "n3" in out


# -- a copy of your own store ---------------------------------------------------------------------


def test_a_copy_of_your_own_store_in_another_project_restores_under_the_same_key(
    shell: Any, run_cell: RunCell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decided: an entry is bound to its key, schema and the user's signing key, not to the
    store's path. Your store copied (or the project moved) restores there: the same cell with
    the same inputs, signed by you. Another user's key still makes every entry a miss."""
    import shutil

    run_cell(CELL)
    _store.close_stores()
    project = tmp_path / "project-b"
    project.mkdir()
    shutil.copytree(STORE, project / STORE)
    monkeypatch.chdir(project)
    shell.user_ns.pop("value")
    run = run_cell(CELL)
    assert run.error is None
    assert shell.user_ns["value"] == 42
    assert runs() == 0  # restored: it did not run in project B
    _store.close_stores()
    monkeypatch.setenv("NBRESUME_KEY", "another-user-entirely-0123456789")
    shell.user_ns.pop("value")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        run = run_cell(CELL)
    assert run.error is None
    assert shell.user_ns["value"] == 42
    assert runs() == 1  # it ran: a miss


# -- value folders planted in the store -------------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the store, readable by whoever planted the links (a shared /tmp)."""
    folder = tmp_path.parent / f"{tmp_path.name}-exfil"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("level", ["ab", "ab/cd"])
def test_value_folders_planted_as_symlinks_never_receive_your_values(
    shell: Any,
    run_cell: RunCell,
    *,
    caught: list[warnings.WarningMessage],
    outside: Path,
    monkeypatch: pytest.MonkeyPatch,
    level: str,
) -> None:
    import diskcache

    # NB. diskcache names a new value file's folders at random (a shipped store plants all
    # 256 or 65536 of them): here every name falls in ab/cd, and only that one is planted
    def in_ab_cd(disk: Any, key: Any = None, value: Any = None) -> tuple[str, str]:
        name = f"ab/cd/{os.urandom(14).hex()}.val"
        return name, os.path.join(disk._directory, name)

    monkeypatch.setattr(diskcache.Disk, "filename", in_ab_cd)
    (STORE / level).parent.mkdir(parents=True)
    (STORE / level).symlink_to(outside, target_is_directory=True)
    shell.user_ns["secret"] = "hunter2" * 10_000  # a value kept in a file of its own
    run = run_cell("%%checkpoint x\ntick()\nvalue = secret.upper()\n")
    assert run.error is None
    assert shell.user_ns["value"] == "HUNTER2" * 10_000
    run_cell("%checkpoint log")  # an events record, written beside
    assert list(outside.rglob("*")) == [], "a value was written outside the store"
    texts = [str(w.message) for w in caught if "symlink" in str(w.message)]
    assert texts, [str(w.message) for w in caught]
    assert all("\n" not in t for t in texts)


def test_a_value_file_that_is_a_fifo_never_hangs_a_read(run_cell: RunCell) -> None:
    run_cell(CELL)
    _store.close_stores()
    (value,) = STORE.rglob("*.val")
    value.unlink()
    os.mkfifo(value)
    said = in_child(
        """
        from nbresume import _store, StoreError
        store = _store.open_store('.nbresume')
        (key,) = store.keys('cell:')
        try:
            print('GOT', store.get(key))
        except StoreError as exc:
            print('MISS', exc)
        """
    )
    assert "MISS" in said, said


# -- a database another process holds locked -------------------------------------------------------


def test_a_locked_database_is_one_line_saying_so_and_the_cell_keeps_its_value(
    shell: Any,
    run_cell: RunCell,
    caught: list[warnings.WarningMessage],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_cell(CELL)
    _store.close_stores()
    monkeypatch.setattr(_store, "LOCK_TIMEOUT", 0.2)  # seconds; 60 by default
    holder = sqlite3.connect(STORE / "cache.db", isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE Settings SET value = value WHERE key = 'count'")
    try:
        run = run_cell(CELL.replace("42", "43"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert run.error is None
    assert shell.user_ns["value"] == 43
    texts = [str(w.message) for w in caught if "lock" in str(w.message)]
    assert texts, [str(w.message) for w in caught]
    assert all("\n" not in t for t in texts)
    assert all("permissions" not in t for t in texts), texts  # it is not a permission problem


def plant_sparse_records(count: int, size: int) -> None:
    """``count`` phases whose three records are one sparse file of ``size`` bytes (no disk used)."""
    _store.close_stores()
    con = sqlite3.connect(STORE / "cache.db")
    for i in range(count):
        name = f"aa/bb/{i:032x}.val"
        (STORE / name).parent.mkdir(parents=True, exist_ok=True)
        with open(STORE / name, "wb") as f:
            f.write(_signing.RECORD_MAGIC + struct.pack("<H", _signing.SCHEMA_VERSION))
            f.truncate(size)
        for kind in ("phase", "events", "progress"):
            con.execute(
                "INSERT INTO Cache (key, raw, store_time, expire_time, access_time, "
                "access_count, tag, size, mode, filename, value) "
                "VALUES (?, 1, ?, NULL, 0, 0, NULL, 0, 2, ?, NULL)",
                (f"{kind}:n{i}", 1000.0 + i, name),
            )
    con.commit()
    con.close()


def test_sparse_record_files_are_read_up_to_a_budget_per_listing(
    run_cell: RunCell,
    capsys: pytest.CaptureFixture[str],
    caught: list[warnings.WarningMessage],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nbresume import _storeread
    from nbresume.server import _dashboard

    run_cell(CELL)
    plant_sparse_records(10, 600_000)
    monkeypatch.setattr(_storeread.StoreReader, "record_budget", 1_000_000)
    sizes: list[int] = []
    real = _storeread.read_record_file

    def counting(f: Any) -> Any:
        data = real(f)
        sizes.append(len(data))
        return data

    monkeypatch.setattr(_storeread, "read_record_file", counting)
    view = _dashboard.read_store(STORE)
    assert len(view["phases"]) == 11
    assert len(sizes) == 2  # 600 kB, 600 kB: the budget is spent, nothing more is read
    assert any("far larger than nbresume writes" in str(w.message) for w in caught)
    sizes.clear()
    code, out, err = cli(capsys, "list", "--dir", str(STORE))
    assert code == 0, err
    no_traceback(out, err)
    assert len(sizes) == 2


def test_a_key_file_that_is_a_fifo_is_refused_in_one_line_without_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    (config / "nbresume").mkdir(parents=True, mode=0o700)
    os.mkfifo(config / "nbresume" / "key", 0o600)
    monkeypatch.delenv("NBRESUME_KEY")
    said = in_child(
        """
        from nbresume import _signing, StoreError
        try:
            _signing.signing_key()
            print('USED')
        except StoreError as exc:
            print('REFUSED', exc)
        """
    )
    assert "REFUSED" in said, said
    assert said.count("\n") == 1, said


def test_an_endless_view_shipped_in_a_wal_file_is_refused_too(tmp_path: Path) -> None:
    """The database file is diskcache's; its -wal (applied by sqlite on open) makes Settings a view."""
    import shutil

    made = tmp_path / "made.db"
    con = sqlite3.connect(made, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute(_storeread_tables()["Settings"])
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the table: in the database file
    con.execute("PRAGMA wal_autocheckpoint = 0")
    con.execute("DROP TABLE Settings")
    con.execute(f"CREATE VIEW Settings AS {ENDLESS} SELECT x AS rowid, x AS key, x AS value FROM c")
    STORE.mkdir()
    shutil.copy(made, STORE / "cache.db")  # NB. while open: the view is only in the -wal
    shutil.copy(str(made) + "-wal", STORE / "cache.db-wal")
    con.close()
    # the database file alone (immutable: its -wal not applied, nothing written) has the table
    uri = f"file:{(STORE / 'cache.db').absolute()}?immutable=1"
    alone = sqlite3.connect(uri, uri=True)
    found = alone.execute("SELECT type FROM sqlite_master WHERE name = 'Settings'").fetchone()
    alone.close()
    assert found == ("table",)
    said = in_child(
        """
        from nbresume import _store, StoreError
        try:
            _store.open_store('.nbresume')
            print('OPENED')
        except StoreError as exc:
            print('REFUSED', exc)
        """
    )
    assert "REFUSED" in said, said
    assert "Settings is a view" in said, said


def _storeread_tables() -> dict[str, str]:
    from nbresume._storeread import TABLES

    return TABLES


def test_nbresume_run_on_a_notebook_shipped_with_a_hostile_store_completes(tmp_path: Path) -> None:
    """A project folder arrives with its notebook and a `.nbresume/` whose Settings is an endless
    view: ``nbresume run`` runs the notebook to the end with its live results and says why the
    store was not used, in one line, instead of hanging its kernel."""
    import nbformat

    from kernel_helpers import kernel_env
    from test_cli import BIN, write_notebook

    hostile_database(ENDLESS_SCHEMAS["Settings is an endless view"])
    nb = write_notebook(tmp_path / "shipped.ipynb", "%%checkpoint prep\nx = 41 + 1\nprint(x)")
    try:
        done = subprocess.run(
            [str(BIN / "nbresume"), "run", nb.name],
            cwd=tmp_path,
            env=kernel_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=HANG_GUARD * 2,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("nbresume run hangs on a hostile store")
    assert done.returncode == 0, done.stdout + done.stderr
    out = nbformat.read(tmp_path / "shipped.out.ipynb", as_version=4)
    texts = "".join(o.get("text", "") for o in out.cells[0].outputs)
    assert "42" in texts, out.cells[0].outputs
    said = [line for line in (texts + done.stderr).splitlines() if "not made by nbresume" in line]
    assert said, texts + done.stderr
