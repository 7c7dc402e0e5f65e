"""Fault injection: break one thing on purpose, assert the documented outcome and that nothing saved is lost.

docs/reliability.md tables the faults, how each is injected and what was lost. In order:

1. SIGKILL of a real kernel at random moments of a loop, many times (scripts/soak.py, a few kills here)
2. SIGKILL while a large snapshot is being written
3. a full disk (a 5 MB tmpfs when we may mount one; RLIMIT_FSIZE everywhere) and a read-only store
4. corrupt entries: flipped bytes by region, truncation, a deleted value file, a broken database
5. two kernels on one store at once
6. signing: a foreign pickle is never loaded, ``nbresume trust``, file modes, schema versions
7. bad input the other suites do not cover, inside checkpoint cells

The tests that corrupt entries the way test_checkpoint.py already does (flipped, truncated, emptied
cell entries; a store that cannot be opened; a foreign cell entry) are not repeated here.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import resource
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from conftest import CellRun, reset_nbresume_state, runs
from kernel_helpers import Kernel, KernelPool, note_kinds, own_outputs, read_runs, wait_until
from nbresume import CheckpointError, CheckpointWarning, _host, _store
from nbresume.cli import main as cli_main

RunCell = Callable[..., CellRun]

SEED = int(os.environ.get("NBRESUME_TEST_SEED", "20261122"))
REPO = Path(__file__).resolve().parent.parent
STORE = ".nbresume"


# -- helpers ------------------------------------------------------------------------------------


def note_kinds_of(run: CellRun) -> list[str]:
    return [n.metadata["nbresume"].get("kind") for n in run.notes]


def restored(run: CellRun) -> bool:
    return "restored" in note_kinds_of(run)


def ticks() -> list[str]:
    try:
        return Path("runs.txt").read_text().splitlines()
    except FileNotFoundError:
        return []


HALT_FILE = "halt-at"


def halt(item: object) -> None:
    """Raise KeyboardInterrupt once, when the loop reaches the item written to ./halt-at."""
    path = Path(HALT_FILE)
    if path.exists() and path.read_text() == repr(item):
        path.unlink()
        raise KeyboardInterrupt


def halt_at(item: object) -> None:
    Path(HALT_FILE).write_text(repr(item))


def value_file(prefix: str, store: str | Path = STORE) -> Path:
    """The value file of the one entry whose key starts with ``prefix`` (read from cache.db)."""
    db = sqlite3.connect(f"file:{Path(store).absolute() / 'cache.db'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT filename FROM Cache WHERE key LIKE ? AND filename IS NOT NULL", (prefix + "%",)
        ).fetchall()
    finally:
        db.close()
    assert len(rows) == 1, f"{len(rows)} entries start with {prefix!r}"
    return Path(store) / rows[0][0]


def unreferenced_files(store: str | Path = STORE) -> list[Path]:
    """Value files that no row of cache.db points to (left behind by a failed or killed write)."""
    root = Path(store).absolute()
    db = sqlite3.connect(f"file:{root / 'cache.db'}?mode=ro", uri=True)
    try:
        named = {r[0] for r in db.execute("SELECT filename FROM Cache WHERE filename IS NOT NULL")}
    finally:
        db.close()
    return sorted(p for p in root.rglob("*.val") if str(p.relative_to(root)) not in named)


def regions(path: Path) -> dict[str, tuple[int, int]]:
    """Byte ranges of an entry's parts: [pickle][buffers][header JSON][HMAC][length, magic]."""
    data = path.read_bytes()
    header_len, magic = struct.unpack("<I8s", data[-12:])
    assert magic == b"NBRESUME"
    header_end = len(data) - 12 - 32
    header = json.loads(data[header_end - header_len : header_end])
    pickle_end = header["pickle"]
    return {
        "pickle": (0, pickle_end),
        "buffer": (pickle_end, pickle_end + sum(header["buffers"])),
        "header": (header_end - header_len, header_end),
        "mac": (header_end, header_end + 32),
    }


def flip_byte(path: Path, region: str) -> None:
    start, end = regions(path)[region]
    assert end > start, f"the entry has no {region}"
    data = bytearray(path.read_bytes())
    i = (start + end) // 2
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def one_line(message: str) -> bool:
    return bool(message) and "\n" not in message


@contextlib.contextmanager
def recorded_warnings() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def checkpoint_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, CheckpointWarning)]


OLD = "%%checkpoint old\ntick('old')\nold = list(range(10))\nprint('old computed')\n"


def assert_old_restores(shell: InteractiveShell, run_cell: RunCell) -> None:
    """The entry saved by `OLD` before the fault comes back without running the cell."""
    shell.user_ns.pop("old", None)
    before = ticks().count("old")
    with recorded_warnings():  # a store that is still full may warn that a record is not updated
        again = run_cell(OLD)
    assert again.error is None
    assert restored(again), again.note_text
    assert ticks().count("old") == before, "the old cell ran again: its entry was lost"
    assert shell.user_ns["old"] == list(range(10))
    assert again.stdout == "old computed\n"


# -- 1. SIGKILL at random moments (the soak script, a few kills) ----------------------------------


def _load_soak() -> Any:
    spec = importlib.util.spec_from_file_location("nbresume_soak", REPO / "scripts" / "soak.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # NB. dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def test_soak_tally_counts_reruns_of_completed_and_in_flight_items() -> None:
    """The soak's bookkeeping itself: it must be able to see a lost snapshot."""
    soak = _load_soak()
    good = soak.tally([([0, 1, 2], True), ([2, 3], True), ([3, 4], False)])
    assert (good.extra_runs, good.in_flight_reruns, good.item_runs) == (0, 2, 7)
    lost_snapshot = soak.tally([([0, 1, 2], True), ([0, 1, 2, 3], False)])
    assert lost_snapshot.extra_runs == 2
    # the second cycle skipped item 1: it was done; the third ran it again
    late = soak.tally([([0, 1], True), ([2], True), ([1, 2, 3], False)])
    assert (late.extra_runs, late.in_flight_reruns) == (1, 1)


@pytest.mark.kernel
def test_sigkill_at_random_moments_loses_no_completed_item(tmp_path: Path) -> None:
    soak = _load_soak()
    report = soak.run(5, items=30, seed=SEED, workdir=tmp_path)
    assert report.kills == 5
    assert report.lost == 0, report.summary()
    assert report.extra_runs == 0, report.summary()
    assert report.in_flight_reruns <= report.kills, report.summary()
    assert not report.mismatched, "\n".join(report.mismatched)
    assert report.item_runs >= report.rounds * report.items


# -- 2. SIGKILL while a large snapshot is being written -------------------------------------------

BIG_MB = 300  # the accumulator; each snapshot file is as large
BIG_ITEMS = 6
BIG_SETUP = """\
%load_ext nbresume
import numpy as np

def mark(i):
    with open("runs.txt", "a") as f:
        f.write(f"{i}\\n")
"""
BIG_LOOP = f"""\
%%checkpoint big --every 1
acc = np.zeros({BIG_MB} * 2**20 // 8)
steps = []
for i in resumable(range({BIG_ITEMS})):
    mark(i)
    acc += 1
    steps.append(i)
print("steps", len(steps), "acc", acc.min(), acc.max())
"""


class SnapshotWatch:
    """Spots a snapshot file being written: new in the store, some data in it, not all yet."""

    def __init__(self, store: Path, full: int) -> None:
        self.store = store
        self.full = full
        self.done = set(store.rglob("*.val"))  # complete, or there before
        self.found: Path | None = None

    def __call__(self) -> bool:
        for path in self.store.rglob("*.val"):
            if path in self.done:
                continue
            with contextlib.suppress(FileNotFoundError):
                size = path.stat().st_size
                if size >= self.full:  # written before we looked: wait for the next one
                    self.done.add(path)
                elif size >= 8 << 20:
                    self.found = path
                    return True
        return False


@pytest.mark.kernel
def test_sigkill_during_a_large_snapshot_write_keeps_the_previous_snapshot(
    kernels: KernelPool,
) -> None:
    kernel = kernels.start()
    store, runs_file = kernel.workdir / STORE, kernel.workdir / "runs.txt"
    full = BIG_MB * 2**20
    kernel.run(BIG_SETUP)
    kernel.submit(BIG_LOOP)
    # item 1 starts only after the snapshot of item 0 was committed: a later one is the victim
    assert wait_until(lambda: 1 in read_runs(runs_file), 120), "item 1 never started"
    watch = SnapshotWatch(store, full)
    assert wait_until(watch, 120, interval=0.001), "no snapshot was caught being written"
    kernel.kill()
    assert watch.found is not None
    written = watch.found.stat().st_size
    assert written < full, f"the kill came after the write had finished ({written} bytes)"
    before = read_runs(runs_file)
    in_flight = before[-1]  # its snapshot was being written; the one before it is intact
    assert before == list(range(in_flight + 1))
    assert in_flight < BIG_ITEMS - 1, "the kill came after the loop"

    kernel.restart()
    kernel.run(BIG_SETUP)
    outputs = kernel.run(BIG_LOOP, timeout=180)
    # resumed from the last complete snapshot (acc == in_flight everywhere), not the partial one
    assert read_runs(runs_file) == before + list(range(in_flight, BIG_ITEMS))
    assert "resuming" in note_kinds(outputs)
    assert kernel.eval("steps") == repr(list(range(BIG_ITEMS)))
    expected = f"({float(BIG_ITEMS)}, {float(BIG_ITEMS)}, {full // 8})"
    assert kernel.eval("(float(acc.min()), float(acc.max()), acc.size)") == expected
    stderr = "".join(o["text"] for o in own_outputs(outputs) if o.get("name") == "stderr")
    assert "Warning" not in stderr, stderr


def test_gc_removes_the_partial_files_of_killed_writes_once_they_are_old(
    shell: InteractiveShell, run_cell: RunCell, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a SIGKILL during a write leaves (see above): a value file that no row refers to."""
    assert run_cell(OLD).error is None
    store = Path(STORE).absolute()
    hour_ago = time.time() - 3600
    entry = value_file("cell:old:")
    os.utime(entry, (hour_ago, hour_ago))  # old, but an entry's file
    partial = entry.read_bytes()[:-100] * 1000  # as a write cut short: ~1 MB, no trailer
    old, fresh = (
        store / "ab" / "cd" / ("a" * 28 + ".val"),
        store / "ab" / "ce" / ("b" * 28 + ".val"),
    )
    other = store / "ab" / "cd" / "notes.txt"  # not a value file: not gc's to delete
    for path in (old, fresh, other):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(partial)
    for path in (old, other):
        os.utime(path, (hour_ago, hour_ago))

    assert cli_main(["gc", "--older-than", "7d", "--dry-run", "--dir", str(store)]) == 0
    listed = capsys.readouterr().out
    assert "would remove 1 value file (" in listed, listed
    assert "no entry refers to it" in listed, listed
    assert old.exists()

    assert cli_main(["gc", "--older-than", "7d", "--dir", str(store)]) == 0
    done = capsys.readouterr().out
    assert "remove 1 value file (" in done, done
    assert "freed 0 B" not in done, done
    assert not old.exists()
    assert fresh.exists(), "a file written in the last minutes may be a write in progress"
    assert other.exists()
    assert entry.exists()
    assert unreferenced_files() == [fresh]
    assert_old_restores(shell, run_cell)


# -- 3. a full disk, a read-only store -----------------------------------------------------------

BIG_CELL = """%%checkpoint big --every 1
import numpy as np
acc = np.zeros(1_000_000)
results = []
total = 0
for i in resumable(range(5)):
    tick(i)
    acc += 1
    results.append(i * i)
    total += i
print("total", total)
total
"""


def _can_mount() -> bool:
    return sys.platform.startswith("linux") and os.geteuid() == 0


class SmallDisk:
    """Where a store runs out of room: a 5 MB tmpfs, or any directory under RLIMIT_FSIZE."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind = kind
        self.root = root
        self.store = root / "store"

    @contextlib.contextmanager
    def full(self) -> Iterator[None]:
        """Writes past the limit fail while this is active (a tmpfs is always small)."""
        if self.kind == "tmpfs":
            yield
            return
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        # NB. SIGXFSZ would kill the process; ignored, the write fails with EFBIG
        previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, previous)


@pytest.fixture(params=["tmpfs", "rlimit"])
def small_disk(
    request: pytest.FixtureRequest,
    shell: InteractiveShell,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[SmallDisk]:
    root = tmp_path / "disk"
    root.mkdir()
    mounted = False
    if request.param == "tmpfs":
        if not _can_mount():
            pytest.skip("mounting a tmpfs needs root on Linux; the rlimit variant runs instead")
        mount = ["mount", "-t", "tmpfs", "-o", "size=5M,mode=0700", "tmpfs", str(root)]
        done = subprocess.run(mount, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted = True
    monkeypatch.setenv("NBRESUME_DIR", str(root / "store"))
    try:
        yield SmallDisk(request.param, root)
    finally:
        reset_nbresume_state()  # close the store's database before unmounting
        if mounted:
            subprocess.run(["umount", "-l", str(root)], check=True)


def test_a_full_disk_keeps_the_live_result_warns_once_and_the_loop_goes_on(
    shell: InteractiveShell, run_cell: RunCell, small_disk: SmallDisk
) -> None:
    assert run_cell(OLD).error is None  # saved while there is room
    with small_disk.full(), recorded_warnings() as caught:
        ran = run_cell(BIG_CELL)
    assert ran.error is None
    assert ran.value == 10
    assert ticks() == ["old", "0", "1", "2", "3", "4"]  # every item ran, once
    assert shell.user_ns["results"] == [0, 1, 4, 9, 16]
    assert float(shell.user_ns["acc"].min()) == 5.0
    messages = checkpoint_warnings(caught)
    assert len(messages) == 1, messages
    message = messages[0]
    assert one_line(message)
    assert "No space left on device" in message or "File too large" in message, message
    assert str(small_disk.store) in message
    assert "live result is kept" in message
    assert "free some disk space" in message, f"no advice: {message}"
    assert "%checkpoint dir" in message, f"no advice: {message}"
    assert_old_restores(shell, run_cell)


def test_a_failed_write_frees_its_space_so_later_checkpoints_still_save(
    shell: InteractiveShell, run_cell: RunCell, small_disk: SmallDisk
) -> None:
    with small_disk.full(), recorded_warnings() as caught:
        assert run_cell(BIG_CELL).error is None
    assert checkpoint_warnings(caught)
    leftovers = unreferenced_files(small_disk.store)
    assert not leftovers, (
        f"partial value files left behind: {[p.stat().st_size for p in leftovers]}"
    )
    small = "%%checkpoint small\ntick('small')\nsmall = [1, 2, 3]\n"
    with small_disk.full():
        assert run_cell(small).error is None  # no warning: there is room again
        assert restored(run_cell(small))
    assert ticks().count("small") == 1


@pytest.mark.parametrize("where", ["nbresume.checkpoint.save", "nbresume._save.dumps_namespace"])
def test_a_bug_of_ours_while_saving_keeps_the_cell_a_success_and_runs_it_again_next_time(
    shell: InteractiveShell, run_cell: RunCell, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """An error nbresume did not foresee (a bug, a damaged record) never turns the user's
    finished cell into a failed one: one warning, the live result stays, nothing wrong is saved."""
    assert run_cell(OLD).error is None

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("an unforeseen bug")

    cell = "%%checkpoint new\ntick('new')\nnew = [1, 2]\nprint('computed')\nlen(new)\n"
    with monkeypatch.context() as patched, recorded_warnings() as caught:
        patched.setattr(where, broken)
        ran = run_cell(cell)
    assert ran.error is None
    assert ran.value == 2
    assert shell.user_ns["new"] == [1, 2]
    (message,) = checkpoint_warnings(caught)
    assert one_line(message)
    assert "saving checkpoint 'new' failed: unexpected TypeError: an unforeseen bug" in message
    assert "the cell's variables are kept" in message
    again = run_cell(cell)  # nothing was saved: it runs again, and is saved this time
    assert again.error is None
    assert not restored(again)
    assert restored(run_cell(cell))
    assert ticks() == ["old", "new", "new"]
    assert_old_restores(shell, run_cell)


def test_a_bug_of_ours_in_a_loop_snapshot_never_stops_the_loop(
    shell: InteractiveShell, run_cell: RunCell, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("an unforeseen bug")

    cell = (
        "%%checkpoint loop --every 1\nout = []\nfor i in resumable(range(4)):\n"
        "    tick(i)\n    out.append(i * i)\n"
    )
    with monkeypatch.context() as patched, recorded_warnings() as caught:
        patched.setattr("nbresume._loophost.dumps_namespace", broken)
        ran = run_cell(cell)
    assert ran.error is None
    assert shell.user_ns["out"] == [0, 1, 4, 9]
    (message,) = checkpoint_warnings(caught)  # once, not once per item
    assert one_line(message)
    assert "a snapshot of 'loop' failed: unexpected TypeError: an unforeseen bug" in message
    assert "the loop goes on without snapshots" in message
    assert restored(run_cell(cell))  # the run itself was saved as done
    assert ticks() == ["0", "1", "2", "3"]


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[str]:
    """Make ``path`` read-only: a read-only bind mount as root (root ignores modes), else chmod."""
    path = path.absolute()
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
        for p in sorted(modes, reverse=True):  # files before their directories
            p.chmod(0o500 if p.is_dir() else 0o400)
        try:
            yield "chmod"
        finally:
            for p, mode in sorted(modes.items()):
                p.chmod(mode)
        return
    bind = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True, text=True)
    if bind.returncode != 0:
        pytest.skip(f"as root, a read-only store needs a bind mount: {bind.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        yield "ro-bind-mount"
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_a_store_made_read_only_keeps_the_live_result_and_its_old_entries(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    assert run_cell(OLD).error is None
    with read_only(Path(STORE)), recorded_warnings() as caught:
        ran = run_cell(BIG_CELL)
        assert ran.error is None
        assert ran.value == 10
        assert ticks() == ["old", "0", "1", "2", "3", "4"]
        assert shell.user_ns["results"] == [0, 1, 4, 9, 16]
        assert_old_restores(shell, run_cell)
        reset_nbresume_state()  # before unmounting
    messages = checkpoint_warnings(caught)
    assert messages
    assert one_line(messages[0])
    assert "read-only" in messages[0], messages[0]
    assert "make it writable" in messages[0], messages[0]


def test_a_read_only_store_opened_by_a_new_kernel_still_restores_its_entries(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    """A store on a read-only share or a colleague's copy: its checkpoints are there to be read."""
    assert run_cell(OLD).error is None
    reset_nbresume_state()  # a new kernel
    with read_only(Path(STORE)), recorded_warnings() as caught:
        shell.user_ns.pop("old", None)
        again = run_cell(OLD)
        assert again.error is None
        assert restored(again), again.note_text
        assert shell.user_ns["old"] == list(range(10))
        assert again.stdout == "old computed\n"
        assert ticks() == ["old"], "the saved cell ran again"
        ran = run_cell(BIG_CELL)  # a miss: it runs, its live result stays
        assert ran.error is None
        assert ran.value == 10
        assert shell.user_ns["results"] == [0, 1, 4, 9, 16]
        assert run_cell(OLD).error is None  # a second hit: no second warning
        loose = run_cell("for x in resumable(['a', 'b']):\n    tick(x)\n")  # a loop of its own
        assert loose.error is None
        reset_nbresume_state()  # before unmounting
    assert ticks() == ["old", "0", "1", "2", "3", "4", "a", "b"]
    messages = checkpoint_warnings(caught)
    assert len(messages) == 1, messages
    message = messages[0]
    assert one_line(message)
    assert str(Path(STORE).absolute()) in message
    assert "read-only" in message, message
    assert "nothing new will be saved" in message, message
    assert "make it writable" in message, f"no advice: {message}"
    assert "%checkpoint dir" in message, f"no advice: {message}"


def test_a_read_only_store_is_written_again_once_it_is_writable(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    assert run_cell(OLD).error is None
    reset_nbresume_state()
    with read_only(Path(STORE)), recorded_warnings():
        assert run_cell(BIG_CELL).error is None  # not saved: the store is read-only
    # the same kernel, after the user made the store writable
    assert_old_restores(shell, run_cell)
    assert run_cell(BIG_CELL).error is None  # runs again, and is saved now
    assert restored(run_cell(BIG_CELL))
    assert ticks().count("0") == 2


# -- 4. corrupt entries ---------------------------------------------------------------------------

ARRAYS = """%%checkpoint arrays
import numpy as np
tick()
arr = np.arange(300_000) * 0.5
meta = {"rows": len(arr)}
print("rows", meta["rows"])
"""


@pytest.mark.parametrize("region", ["pickle", "buffer", "header", "mac"])
def test_a_flipped_byte_anywhere_in_an_entry_with_a_numpy_buffer_is_a_miss_never_a_wrong_array(
    shell: InteractiveShell, run_cell: RunCell, region: str
) -> None:
    import numpy as np

    run_cell(ARRAYS)
    flip_byte(value_file("cell:arrays:"), region)
    shell.user_ns["arr"] = "stale"
    with pytest.warns(CheckpointWarning, match=r"\.nbresume") as caught:
        again = run_cell(ARRAYS)
    assert again.error is None
    assert runs() == 2, "a damaged entry was restored"
    assert np.array_equal(shell.user_ns["arr"], np.arange(300_000) * 0.5)
    assert all(one_line(str(w.message)) for w in caught)
    if region in ("pickle", "buffer"):  # damaged data must never be offered to `nbresume trust`
        assert "corrupt" in str(caught[0].message)
        assert "nbresume trust" not in str(caught[0].message)


def test_a_truncated_numpy_buffer_is_a_miss(shell: InteractiveShell, run_cell: RunCell) -> None:
    run_cell(ARRAYS)
    path = value_file("cell:arrays:")
    start, end = regions(path)["buffer"]
    data = path.read_bytes()
    path.write_bytes(data[: (start + end) // 2] + data[end:])  # the trailer intact, data short
    with pytest.warns(CheckpointWarning, match="corrupt"):
        again = run_cell(ARRAYS)
    assert again.error is None
    assert runs() == 2
    assert len(shell.user_ns["arr"]) == 300_000


def test_a_deleted_value_file_is_a_miss_with_a_warning(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    run_cell(OLD)
    value_file("cell:old:").unlink()
    with pytest.warns(CheckpointWarning, match=r"\.nbresume"):
        again = run_cell(OLD)
    assert again.error is None
    assert ticks() == ["old", "old"]
    assert shell.user_ns["old"] == list(range(10))
    assert "options changed" not in again.note_text, "a missing file is not a changed option"


LOOP_CELL = """%%checkpoint loop --every 1
import numpy as np
acc = np.zeros(50_000)
results = []
for i in resumable(range(6)):
    tick(i)
    halt(i)
    acc += i
    results.append(i * i)
"""


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


SNAPSHOT_DAMAGE: dict[str, Callable[[Path], None]] = {
    "flipped-in-buffer": lambda path: flip_byte(path, "buffer"),
    "flipped-in-pickle": lambda path: flip_byte(path, "pickle"),
    "truncated": _truncate,
    "deleted": Path.unlink,
}


@pytest.mark.parametrize("damage", list(SNAPSHOT_DAMAGE))
def test_a_damaged_loop_snapshot_restarts_the_loop_and_never_restores_wrong_values(
    shell: InteractiveShell, run_cell: RunCell, damage: str
) -> None:
    shell.user_ns["halt"] = halt
    halt_at(3)
    assert isinstance(run_cell(LOOP_CELL).error, KeyboardInterrupt)
    SNAPSHOT_DAMAGE[damage](value_file("snap:loop:"))
    del shell.user_ns["results"], shell.user_ns["acc"]
    with pytest.warns(CheckpointWarning, match=r"\.nbresume"):
        again = run_cell(LOOP_CELL)
    assert again.error is None
    assert ticks() == ["0", "1", "2", "3", "0", "1", "2", "3", "4", "5"]
    assert shell.user_ns["results"] == [i * i for i in range(6)]
    assert float(shell.user_ns["acc"][0]) == 15.0


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_broken_database_file_warns_and_the_cell_runs_with_its_live_result(
    shell: InteractiveShell, run_cell: RunCell, damage: str
) -> None:
    run_cell(OLD)
    reset_nbresume_state()  # the next kernel finds the damage
    db = Path(STORE) / "cache.db"
    if damage == "garbage":
        db.write_bytes(b"\x00garbage\xff" * 4096)
    else:
        db.write_bytes(db.read_bytes()[:1536])
    shell.user_ns["old"] = "stale"
    with pytest.warns(CheckpointWarning, match=r"\.nbresume") as caught:
        again = run_cell(OLD)
    assert again.error is None
    assert shell.user_ns["old"] == list(range(10))
    assert ticks() == ["old", "old"]
    assert all(one_line(str(w.message)) for w in caught)


def test_a_database_overwritten_under_a_running_kernel_never_crashes_or_restores_wrongly(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    run_cell(OLD)
    (Path(STORE) / "cache.db").write_bytes(b"\x00garbage\xff" * 4096)
    shell.user_ns["old"] = "stale"
    with recorded_warnings():
        again = run_cell(OLD)
        loop = run_cell(BIG_CELL)
    assert again.error is None
    assert loop.error is None
    assert shell.user_ns["old"] == list(range(10))
    assert shell.user_ns["results"] == [0, 1, 4, 9, 16]


def test_entries_swapped_between_keys_are_never_restored_under_the_wrong_key(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    """Two intact entries signed by your key, their rows pointed at each other's file."""
    run_cell(OLD)
    run_cell("%%checkpoint other\ntick('other')\nold = 'WRONG'\nprint('other computed')\n")
    reset_nbresume_state()
    db = sqlite3.connect(Path(STORE) / "cache.db")
    try:
        rows = db.execute(
            "SELECT rowid, filename FROM Cache WHERE key LIKE 'cell:%' ORDER BY key"
        ).fetchall()
        (row_a, file_a), (row_b, file_b) = rows
        db.execute("UPDATE Cache SET filename = ? WHERE rowid = ?", (file_b, row_a))
        db.execute("UPDATE Cache SET filename = ? WHERE rowid = ?", (file_a, row_b))
        db.commit()
    finally:
        db.close()
    with recorded_warnings():
        again = run_cell(OLD)
    assert again.error is None
    assert shell.user_ns["old"] == list(range(10)), "another cell's entry was restored"
    assert "other computed" not in again.stdout


# -- 5. two kernels on one store ------------------------------------------------------------------

DUO_SETUP = """\
%load_ext nbresume
import time

def mark(label, i):
    with open(f"runs-{label}.txt", "a") as f:
        f.write(f"{i}\\n")
"""

DUO_CELL = """\
%%checkpoint {name} --every 1
scale = {scale}
results = []
for i in resumable(range(40)):
    mark("{label}", i)
    time.sleep(0.005)
    results.append(i * scale)
print("{label}", sum(results))
"""


def duo_cell(name: str, label: str, scale: int) -> str:
    return DUO_CELL.format(name=name, label=label, scale=scale)


DUO = {  # kernel -> cells, run back to back; the two kernels' cells overlap
    0: [("alpha", "alpha", 1), ("same", "same", 5), ("shared", "shared-2", 2)],
    1: [("beta", "beta", 1), ("same", "same", 5), ("shared", "shared-3", 3)],
}


def _wait_replies(kernel: Kernel, ids: list[str], timeout: float = 120) -> dict[str, str]:
    statuses: dict[str, str] = {}
    end = time.monotonic() + timeout
    while len(statuses) < len(ids):
        msg = kernel.kc.get_shell_msg(timeout=max(0.0, end - time.monotonic()))
        parent = msg["parent_header"].get("msg_id")
        if parent in ids:
            statuses[parent] = msg["content"]["status"]
    return statuses


@pytest.mark.kernel
def test_two_kernels_on_one_store_lose_and_corrupt_nothing(kernels: KernelPool) -> None:
    first, second, third = kernels.start_many("shared", "shared", "shared")
    workdir = first.workdir
    for kernel in (first, second):
        kernel.run(DUO_SETUP)
    pending = {
        kernel: [kernel.submit(duo_cell(*cell)) for cell in DUO[i]]
        for i, kernel in enumerate((first, second))
    }
    for kernel, ids in pending.items():
        statuses = _wait_replies(kernel, ids)
        assert set(statuses.values()) == {"ok"}, statuses
    for i, kernel in enumerate((first, second)):
        scale = DUO[i][-1][2]
        assert kernel.eval("results") == repr([n * scale for n in range(40)])

    db = sqlite3.connect(f"file:{workdir / STORE / 'cache.db'}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        files = [r[0] for r in db.execute("SELECT filename FROM Cache WHERE filename IS NOT NULL")]
    finally:
        db.close()
    assert all((workdir / STORE / f).is_file() for f in files), "a row lost its value file"
    assert not unreferenced_files(workdir / STORE)

    # a third kernel restores all five versions without running a single item
    counted = {p.name: read_runs(p) for p in workdir.glob("runs-*.txt")}
    third.run(DUO_SETUP)
    for cells in DUO.values():
        for name, label, scale in cells:
            outputs = third.run(duo_cell(name, label, scale))
            assert "restored" in note_kinds(outputs), (name, label, note_kinds(outputs))
            assert third.eval("results") == repr([n * scale for n in range(40)])
    assert {p.name: read_runs(p) for p in workdir.glob("runs-*.txt")} == counted


def test_a_hit_keeps_the_version_another_kernel_saved_after_the_hit_looked_up(
    shell: InteractiveShell, run_cell: RunCell, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The phase:NAME record is read and written back in one transaction, not from `lookup`."""
    from nbresume import checkpoint
    from nbresume._history import Version, push_version

    first = "%%checkpoint duo\ntick('1')\nx = 1\n"
    assert run_cell(first).error is None
    store = _store.open_store()
    one = store.get_json("phase:duo")["versions"][0]["key"]
    assert run_cell("%%checkpoint duo\ntick('2')\nx = 2\n").error is None
    two = store.get_json("phase:duo")["versions"][0]["key"]
    lookup = checkpoint.CheckpointRun.lookup

    def lookup_while_another_kernel_saves(run: Any) -> Any:
        entry = lookup(run)
        record = store.get_json("phase:duo")  # the other kernel's `_save_record`
        push_version(record, Version("cell:duo:other", "h", {}, time.time(), 1.0), 3)
        store.put_json("phase:duo", record)
        return entry

    monkeypatch.setattr(checkpoint.CheckpointRun, "lookup", lookup_while_another_kernel_saves)
    assert restored(run_cell(first))
    versions = [v["key"] for v in store.get_json("phase:duo")["versions"]]
    assert "cell:duo:other" in versions, "the hit wrote back the record it read before"
    assert versions == [one, "cell:duo:other", two]  # the restored version first


# -- 6. signing, trust, file modes, schema versions -----------------------------------------------

FOREIGN_LOOP = """%%checkpoint foreign --every 1
class Canary:
    def __reduce__(self):
        return (__import__("pathlib").Path("unpickled.txt").touch, ())
canary = Canary()
results = []
for i in resumable(range(4)):
    tick(i)
    halt(i)
    results.append(i)
"""

CANARY = """%%checkpoint canary
tick('canary')
class Canary:
    def __reduce__(self):
        return (__import__("pathlib").Path("unpickled.txt").touch, ())
canary = Canary()
answer = 42
"""

DAMAGED = "%%checkpoint damaged\ntick('damaged')\ndamaged = list(range(50))\n"


def _as_other_user(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    reset_nbresume_state()  # a new kernel
    monkeypatch.setenv("NBRESUME_KEY", key)


def test_a_loop_snapshot_signed_with_another_key_is_never_unpickled(
    shell: InteractiveShell, run_cell: RunCell, monkeypatch: pytest.MonkeyPatch
) -> None:
    shell.user_ns["halt"] = halt
    _as_other_user(monkeypatch, "someone-else-entirely")
    halt_at(2)
    assert isinstance(run_cell(FOREIGN_LOOP).error, KeyboardInterrupt)
    assert not Path("unpickled.txt").exists()
    _as_other_user(monkeypatch, "nbresume-test-key")
    del shell.user_ns["results"]
    with pytest.warns(CheckpointWarning, match="nbresume trust") as caught:
        again = run_cell(FOREIGN_LOOP)
    assert again.error is None
    assert not Path("unpickled.txt").exists(), "a foreign pickle was loaded"
    assert ticks() == ["0", "1", "2", "0", "1", "2", "3"]  # started over: nothing trusted
    assert shell.user_ns["results"] == [0, 1, 2, 3]
    assert str(Path(STORE).absolute()) in str(caught[0].message)


def test_trust_makes_a_foreign_store_load_and_refuses_its_damaged_entries(
    shell: InteractiveShell,
    run_cell: RunCell,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _as_other_user(monkeypatch, "someone-else-entirely")
    run_cell(CANARY)
    run_cell(DAMAGED)
    flip_byte(value_file("cell:damaged:"), "pickle")
    Path("unpickled.txt").unlink(missing_ok=True)  # the first run's own canary
    _as_other_user(monkeypatch, "nbresume-test-key")
    canary_key = _store.open_store().keys("cell:canary:")[0]
    with pytest.raises(_store.StoreError, match="nbresume trust"):
        _store.open_store().get(canary_key)
    assert not Path("unpickled.txt").exists()

    reset_nbresume_state()
    assert cli_main(["trust", STORE]) == 1  # the damaged entry fails it
    out, err = capsys.readouterr()
    assert "re-signed 1 entries" in out
    assert one_line(err.strip())
    assert "damaged" in err
    assert "cell:damaged:" in err

    reset_nbresume_state()
    shell.user_ns.pop("answer", None)
    hit = run_cell(CANARY)
    assert restored(hit)
    assert shell.user_ns["answer"] == 42
    assert Path("unpickled.txt").exists(), "trusted, the entry is loaded"
    with pytest.warns(CheckpointWarning, match="corrupt"):
        assert not restored(run_cell(DAMAGED))
    assert shell.user_ns["damaged"] == list(range(50))
    assert ticks() == ["canary", "damaged", "damaged"]


def test_the_key_file_is_created_0600_and_the_store_0700_whatever_the_umask(
    run_cell: RunCell, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NBRESUME_KEY")
    previous = os.umask(0)
    try:
        run_cell("%%checkpoint modes\nmodes = 1\n")
    finally:
        os.umask(previous)
    key = tmp_path / "config" / "nbresume" / "key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.parent.stat().st_mode & 0o777 == 0o700
    assert len(key.read_bytes()) >= 32
    assert Path(STORE).stat().st_mode & 0o777 == 0o700


VERSIONED = "%%checkpoint versioned\nvalue = 41 + 1\nprint('computed')\n"

WRITE_AS_SCHEMA_99 = f"""
import nbresume._signing as signing
signing.SCHEMA_VERSION = 99
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "nbresume")
assert shell.run_cell({VERSIONED!r}).success
"""


def test_an_entry_of_another_schema_version_is_a_clean_miss_with_one_line(
    shell: InteractiveShell, run_cell: RunCell, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "NBRESUME_KEY": "nbresume-test-key",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    env.pop("NBRESUME_DIR", None)
    written = subprocess.run(
        [sys.executable, "-c", WRITE_AS_SCHEMA_99], cwd=tmp_path, env=env, capture_output=True
    )
    assert written.returncode == 0, written.stderr.decode()[-2000:]
    assert b"computed" in written.stdout
    with pytest.warns(CheckpointWarning, match="schema 99") as caught:
        again = run_cell(VERSIONED)
    assert again.error is None
    assert again.stdout == "computed\n"  # it ran: a miss
    assert shell.user_ns["value"] == 42
    assert len(caught) == 1
    assert one_line(str(caught[0].message))
    assert restored(run_cell(VERSIONED))  # recomputed under this schema, then a hit


# -- 7. bad input, inside checkpoint cells --------------------------------------------------------

BAD_LOOPS = {
    "not-iterable": ("for x in resumable(42):\n    tick(x)\n", "iterable"),
    "every-0": ("for x in resumable([1, 2], every=0):\n    tick(x)\n", "every="),
    "unhashable-key": ("for x in resumable([1, 2], key=lambda x: [x]):\n    tick(x)\n", "hashable"),
    "key-raises": (
        "for x in resumable([{'id': 1}, {}], key=lambda x: x['id']):\n    tick(x)\n",
        "key function failed on item 1",
    ),
    "key-not-callable": ("for x in resumable([1, 2], key='id'):\n    tick(x)\n", "not callable"),
}


@pytest.mark.parametrize("case", list(BAD_LOOPS))
def test_a_bad_loop_in_a_checkpoint_cell_fails_in_one_line_and_leaves_nothing_behind(
    shell: InteractiveShell, run_cell: RunCell, case: str
) -> None:
    body, says = BAD_LOOPS[case]
    cell = f"%%checkpoint bad\nresults = []\n{body}"
    ran = run_cell(cell)
    assert isinstance(ran.error, CheckpointError), ran.error
    message = str(ran.error)
    assert one_line(message)
    assert says in message
    advice = ("give", "pass", "must", "create", "needs")
    assert any(w in message for w in advice), f"no advice: {message}"
    assert _host.current_host() is None, "the failed cell left its loop host behind"
    assert run_cell(cell).error is not None, "a failed cell was cached as done"
    ok = run_cell("%%checkpoint good\nfor y in resumable([1, 2]):\n    tick(y)\n")
    assert ok.error is None


@pytest.mark.parametrize(
    "line", ["ok --every 0s", "ok --every 5m", "ok --every 1.5", "ok --exclude class,x"]
)
def test_more_bad_magic_arguments_are_a_one_line_usage_error(run_cell: RunCell, line: str) -> None:
    bad = run_cell(f"%%checkpoint {line}\ntick()\nx = 1\n")
    assert isinstance(bad.error, UsageError), bad.error
    assert one_line(str(bad.error))
    assert runs() == 0


JOBS = """%%checkpoint jobs --every 1
class Job:
    def __init__(self, n):
        self.n = n
jobs = [Job(n) for n in range(5)]
results = []
for job in resumable(jobs{key}):
    tick(job.n)
    halt(job.n)
    results.append(job.n)
"""


@pytest.mark.parametrize("key", ["lambda job: job", "lambda job: (job.n, job)"])
def test_a_key_that_compares_by_identity_is_refused_on_the_first_item(
    shell: InteractiveShell, run_cell: RunCell, key: str
) -> None:
    """An object without __eq__ equals only itself: after a restart no saved key would match."""
    shell.user_ns["halt"] = halt
    ran = run_cell(JOBS.format(key=f", key={key}"))
    assert isinstance(ran.error, CheckpointError), ran.error
    message = str(ran.error)
    assert one_line(message)
    assert "Job" in message, message
    assert "return a str, int or tuple from key=" in message, message
    assert ticks() == [], "items ran before the key was refused"
    assert _host.current_host() is None, "the failed cell left its loop host behind"


@pytest.mark.parametrize("key", ["", ", key=lambda job: job.n"])
def test_objects_without_eq_resume_by_position_or_by_a_proper_key(
    shell: InteractiveShell, run_cell: RunCell, key: str
) -> None:
    shell.user_ns["halt"] = halt
    halt_at(2)
    assert isinstance(run_cell(JOBS.format(key=key)).error, KeyboardInterrupt)
    again = run_cell(JOBS.format(key=key))
    assert again.error is None
    assert shell.user_ns["results"] == [0, 1, 2, 3, 4], "done items counted twice"
    assert ticks() == ["0", "1", "2", "2", "3", "4"]  # only the item in flight ran again
