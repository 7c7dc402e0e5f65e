"""nbresume against the alternatives (issue 9): one process run, one table of ratios.

    python benchmarks/run.py            # 256 MiB arrays and frames, about 2 minutes
    python benchmarks/run.py --full     # the issue's 1 GiB arrays and frames, about 4 minutes

Every number is a median of repeated, interleaved runs (nbresume and its alternative take turns, so
a noisy neighbour slows both). Ratios are nbresume / alternative: below 1 means nbresume is faster.
What each row measures is explained in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import pickle
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MiB = 1 << 20
GiB = 1 << 30
pc = time.perf_counter


# ----------------------------------------------------------------------------------------------
# the table


@dataclass
class Row:
    measure: str
    nbresume: str
    alternative: str
    ratio: str
    target: str
    met: bool | None  # None: shown for information, no target


def fmt_time(seconds: float) -> str:
    """A duration with a unit that keeps three significant digits."""
    if abs(seconds) < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if abs(seconds) < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if abs(seconds) < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}x" if value < 100 else f"{value:.0f}x"


def fmt_bytes(n: float) -> str:
    return f"{n / MiB:.1f} MiB" if abs(n) >= MiB else f"{n / 1024:.0f} KiB"


def print_table(rows: list[Row], header: str) -> None:
    cols = ["measure", "nbresume", "alternative", "ratio", "target", "met?"]
    cells = [[r.measure, r.nbresume, r.alternative, r.ratio, r.target, _met(r.met)] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    print(header)
    print()
    print(line(cols))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print(line(row))
    judged = [r for r in rows if r.met is not None]
    missed = [r.measure for r in judged if not r.met]
    print()
    print(f"{len(judged) - len(missed)} of {len(judged)} targets met.")
    for name in missed:
        print(f"  missed: {name}")


def _met(met: bool | None) -> str:
    return "-" if met is None else ("yes" if met else "NO")


# ----------------------------------------------------------------------------------------------
# helpers


class NullFile:
    """Where tqdm writes in these runs: a file that discards (tqdm still formats every refresh)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def median(values: list[float]) -> float:
    return statistics.median(values)


def interleave(
    variants: dict[str, Callable[[], float]], repeat: int, warmup: int = 1, permute: bool = False
) -> dict[str, float]:
    """Run each variant ``repeat`` times, taking turns; each returns the seconds it measured.

    The first ``warmup`` turns are not counted (imports, first-touch page faults, caches).
    ``permute``: the turns go through every order of the variants, so each runs right after each
    other one equally often (NB. a 1 GiB load here runs up to 4x slower when the kernel has no
    huge page free for its array, often right after a `pickle.load` freed its own: perf then shows
    4 KiB page faults, whichever load it is).
    """
    for _ in range(warmup):
        for run in variants.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    orders = list(itertools.permutations(variants)) if permute else [tuple(variants)]
    for turn in range(repeat):
        for name in orders[turn % len(orders)]:
            times[name].append(variants[name]())
    return {name: median(values) for name, values in times.items()}


def timed(fn: Callable[[], object]) -> Callable[[], float]:
    def run() -> float:
        start = pc()
        fn()
        return pc() - start

    return run


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow what the shell prints (notes, replayed outputs) while timing."""
    sink = NullFile()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):  # type: ignore[type-var]
        yield


class Bench:
    """Shared state of one run: temporary directories, sizes, the in-process IPython shell."""

    def __init__(self, tmp: Path, full: bool) -> None:
        self.tmp = tmp
        self.full = full
        self.array_bytes = GiB if full else 256 * MiB
        self.size_label = "1 GiB" if full else "256 MiB"
        self._shell: Any = None

    @property
    def shell(self) -> Any:
        if self._shell is None:
            from IPython.testing.globalipapp import start_ipython

            shell = start_ipython()
            with quiet():
                shell.run_line_magic("load_ext", "nbresume")
            # Checkpoint cells show their progress widget as in a notebook kernel (this shell is
            # a terminal one); its comm messages go to the comm package's DummyComm.
            from nbresume import widget

            widget.frontend_mode = lambda: "widget"
            shell.user_ns.update(_pc=pc, _null=NullFile())
            self._shell = shell
        return self._shell

    def run_cell(self, source: str) -> float:
        """Run a cell as a notebook would (history on); its wall time."""
        shell = self.shell
        with quiet():
            start = pc()
            result = shell.run_cell(source, store_history=True)
            elapsed = pc() - start
        if not result.success:
            error = result.error_in_exec or result.error_before_exec
            raise RuntimeError(f"benchmark cell failed: {error!r}\n{source}")
        return elapsed

    def path(self, name: str) -> Path:
        return self.tmp / name


def subprocess_json(code: str, *args: str, cwd: Path | None = None) -> Any:
    """Run ``code`` in a fresh interpreter of this venv; it prints one JSON document."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )
    if out.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------
# 1. resumable's per-item overhead


LOOP_ITEMS = 2_000_000
JSONL_ITEMS = 200_000


def _bare(items: Any) -> float:
    start = pc()
    for _ in items:
        pass
    return pc() - start


def _tqdm(items: Any) -> float:
    from tqdm import tqdm

    start = pc()
    for _ in tqdm(items, file=NullFile()):
        pass
    return pc() - start


def _resumable(items: Any, name: str) -> float:
    from nbresume import resumable

    start = pc()
    for _ in resumable(items, name=name):
        pass
    return pc() - start


def _jsonl(items: Any, path: Path) -> float:
    """What most people write today: one JSON line per finished item, flushed."""
    path.unlink(missing_ok=True)
    start = pc()
    with path.open("a") as f:
        for item in items:
            f.write(json.dumps({"done": item}) + "\n")
            f.flush()
    return pc() - start


def _gen(n: int) -> Iterator[int]:
    yield from range(n)


ROW_ITEMS = 200_000


def _row_dicts(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"row-{i}", "score": i / 7} for i in range(n)]


def _row_gen(rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield from rows


def bench_loop_script(b: Bench) -> list[Row]:
    n = LOOP_ITEMS
    rng = interleave(
        {
            "bare": lambda: _bare(range(n)),
            "tqdm": lambda: _tqdm(range(n)),
            "nb": lambda: _resumable(range(n), "bench-range"),
        },
        repeat=7,
    )
    gen = interleave(
        {
            "bare": lambda: _bare(_gen(n)),
            "tqdm": lambda: _tqdm(_gen(n)),
            "nb": lambda: _resumable(_gen(n), "bench-gen"),
        },
        repeat=5,
    )
    m = JSONL_ITEMS
    jsonl = interleave(
        {
            "bare": lambda: _bare(range(m)),
            "jsonl": lambda: _jsonl(range(m), b.path("done.jsonl")),
        },
        repeat=5,
    )
    # items keyed by position: each is printed as it is yielded (the done prefix's digest)
    rows = _row_dicts(ROW_ITEMS)
    listed = interleave(
        {
            "bare": lambda: _bare(rows),
            "tqdm": lambda: _tqdm(rows),
            "nb": lambda: _resumable(rows, "bench-rows"),
        },
        repeat=5,
    )
    generated = interleave(
        {
            "bare": lambda: _bare(_row_gen(rows)),
            "tqdm": lambda: _tqdm(_row_gen(rows)),
            "nb": lambda: _resumable(_row_gen(rows), "bench-row-gen"),
        },
        repeat=5,
    )
    return [
        _overhead_row("`resumable` per item, script, range(2M)", rng, n),
        _overhead_row("`resumable` per item, script, generator of 2M ints", gen, n),
        _overhead_vs(
            "`resumable` per item, script, list of 200k dicts (by position)",
            (listed["nb"] - listed["bare"]) / ROW_ITEMS,
            (listed["tqdm"] - listed["bare"]) / ROW_ITEMS,
            "tqdm",
        ),
        _overhead_vs(
            "`resumable` per item, script, generator of 200k dicts (by position)",
            (generated["nb"] - generated["bare"]) / ROW_ITEMS,
            (generated["tqdm"] - generated["bare"]) / ROW_ITEMS,
            "tqdm",
        ),
        _overhead_vs(
            "`resumable` per item vs hand-written JSONL checkpoint",
            (rng["nb"] - rng["bare"]) / n,
            (jsonl["jsonl"] - jsonl["bare"]) / m,
            "JSONL (json.dumps+write+flush)",
        ),
    ]


def _overhead_row(measure: str, t: dict[str, float], n: int) -> Row:
    nb = (t["nb"] - t["bare"]) / n
    alt = (t["tqdm"] - t["bare"]) / n
    return Row(
        measure,
        f"{fmt_time(nb)}/item",
        f"tqdm {fmt_time(alt)}/item (bare loop {fmt_time(t['bare'] / n)})",
        fmt_ratio(nb / alt),
        "<= 0.5x tqdm",
        nb / alt <= 0.5,
    )


def _overhead_vs(measure: str, nb: float, alt: float, label: str) -> Row:
    return Row(
        measure,
        f"{fmt_time(nb)}/item",
        f"{label} {fmt_time(alt)}/item",
        fmt_ratio(nb / alt),
        "-",
        None,
    )


def bench_loop_cell(b: Bench) -> list[Row]:
    """The same loops as cells of the in-process shell; the cell times its own loop."""
    n = LOOP_ITEMS
    b.shell.user_ns["_gen"] = _gen
    rows = []
    for label, items in (("range(2M)", f"range({n})"), ("generator of 2M ints", f"_gen({n})")):
        loop = "_t0 = _pc()\nfor x in {}:\n    pass\n_dt = _pc() - _t0\n"
        cells = {
            "bare": loop.format(items),
            "tqdm": "from tqdm import tqdm as _tqdm\n" + loop.format(f"_tqdm({items}, file=_null)"),
            "nb": "%%checkpoint --force bench-loop\n" + loop.format(f"resumable({items})"),
        }

        def cell_time(source: str) -> Callable[[], float]:
            def run() -> float:
                b.run_cell(source)
                return float(b.shell.user_ns["_dt"])

            return run

        t = interleave({k: cell_time(v) for k, v in cells.items()}, repeat=5)
        rows.append(_overhead_row(f"`resumable` per item, checkpoint cell, {label}", t, n))
    return rows


# ----------------------------------------------------------------------------------------------
# 2. snapshots during a loop


ACCUMULATOR_BYTES = 50_000_000
SNAPSHOT_BUDGET = 0.02  # resumable.SNAPSHOT_BUDGET: a snapshot once the loop ran 50x its cost

# label, accumulator, loop body, seconds the loop runs, --every
SNAPSHOT_LOOPS = [
    ("numpy array, 1 ms items", "acc = _np.zeros(_narr)", ["acc[i % _narr] = i", "_sleep(1e-3)"]),
    (
        "list of floats, 1 ms items",
        "acc = [float(i) for i in range(_nfloat)]",
        ["acc[i % _nfloat] = 0.5", "_sleep(1e-3)"],
    ),
    ("numpy array, fast items", "acc = _np.zeros(_narr)", ["acc[i % _narr] = i"]),
]
SNAPSHOT_SECONDS = 6.0
SNAPSHOT_EVERY = "2s"


def bench_snapshots(b: Bench) -> list[Row]:
    """Loops in a checkpoint cell holding a 50 MB accumulator, snapshotting every 2 s.

    The default policy snapshots at the first boundary after the loop ran 50 times the last
    snapshot's cost (2%): every 10 s for a 200 ms snapshot.
    """
    import numpy as np

    from nbresume import checkpoint as engine

    costs: list[float] = []
    original = engine.CheckpointRun.snapshot

    def snapshot(self: Any, reason: str, loop: Any = None) -> float:
        cost = original(self, reason, loop)
        if reason == "periodic":
            costs.append(cost)
        return cost

    ns = b.shell.user_ns
    # a pickled float takes 9 bytes, a float64 in an array 8
    ns.update(_np=np, _nfloat=ACCUMULATOR_BYTES // 9, _narr=ACCUMULATOR_BYTES // 8)
    ns.update(_sleep=time.sleep)
    rows = []
    engine.CheckpointRun.snapshot = snapshot  # type: ignore[method-assign]
    try:
        for label, make, body in SNAPSHOT_LOOPS:
            costs.clear()
            source = "\n".join(
                [
                    f"%%checkpoint --force --every {SNAPSHOT_EVERY} bench-snapshot",
                    make,
                    "_t0 = _pc()",
                    "for i in resumable(range(10**12)):",
                    *(f"    {line}" for line in body),
                    f"    if _pc() - _t0 > {SNAPSHOT_SECONDS}:",
                    "        break",
                    "_dt = _pc() - _t0",
                ]
            )
            b.run_cell(source)
            wall, items = float(ns["_dt"]), int(ns["i"])
            alt = _pickle_snapshot(ns["acc"], b.path("snapshot.pkl"))
            del ns["acc"]
            rows.extend(_snapshot_rows(label, list(costs), wall, items, alt))
    finally:
        engine.CheckpointRun.snapshot = original  # type: ignore[method-assign]
    return rows


def _pickle_snapshot(value: Any, path: Path) -> float:
    """The alternative snapshot: pickle protocol 5 to a temporary file, then os.replace."""

    def once() -> float:
        start = pc()
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            pickle.dump(value, f, protocol=5)
        os.replace(tmp, path)
        return pc() - start

    return median([once() for _ in range(3)])


def _snapshot_rows(
    label: str, costs: list[float], wall: float, items: int, alt: float
) -> list[Row]:
    name = f"50 MB {label}"
    if not costs:
        return [Row(f"snapshot, {name}", "no snapshot taken", "", "", "", False)]
    cost = median(costs)
    share = sum(costs) / wall
    interval = cost / SNAPSHOT_BUDGET
    return [
        Row(
            f"one snapshot, {name} ({items:,} items done)",
            f"{fmt_time(cost)} (median of {len(costs)})",
            f"pickle p5 of acc to a file {fmt_time(alt)}",
            fmt_ratio(cost / alt),
            "-",
            None,
        ),
        Row(
            f"snapshot share, {name}, --every {SNAPSHOT_EVERY} (measured)",
            f"{fmt_time(sum(costs))} in {len(costs)} snapshots",
            f"loop wall {fmt_time(wall)}",
            f"{share:.1%}",
            "- (5x the default rate)",
            None,
        ),
        Row(
            f"snapshot share, {name}, default policy (cost / interval)",
            f"{fmt_time(cost)} per snapshot",
            f"one every {fmt_time(interval)}",
            f"{cost / interval:.2%}",
            "<= 2%",
            cost / interval <= SNAPSHOT_BUDGET + 1e-9,
        ),
    ]


# ----------------------------------------------------------------------------------------------
# 2b. the loss window: items redone after a SIGKILL


LOSS_KILLS = (9, 12, 16)  # the item in flight at each kill (a run per kill)
LOSS_ITEM_SECONDS = (0.01, 0.1, 0.3)
LOSS_ACCUMULATORS = {
    "small list": ("acc = []", "acc.append(i)"),
    "50 MB numpy array": ("acc = _np.zeros(6_250_000)", "acc[i] = i"),
}

LOSS_RUN = r'''
import os, signal, sys, time
import numpy as _np
kill, seconds, make, update, where = int(sys.argv[1]), float(sys.argv[2]), *sys.argv[3:6]
def mark(i):
    with open("runs.txt", "a") as f:
        f.write(f"{i}\n")
body = f"""{make}
for i in resumable(range({kill + 2})):
    mark(i)
    time.sleep({seconds})
    {update}
    if i == {kill} and not os.path.exists("killed"):
        open("killed", "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
"""
names = {"mark": mark, "time": time, "os": os, "signal": signal, "_np": _np}
if where == "cell":
    from IPython.testing.globalipapp import start_ipython
    shell = start_ipython()
    shell.run_line_magic("load_ext", "nbresume")
    shell.user_ns.update(names)
    shell.run_cell("%%checkpoint loss\n" + body)
else:
    from nbresume import resumable
    exec(body, {"resumable": resumable, **names})
'''


def _items_lost(b: Bench, where: str, seconds: float, accumulator: str) -> float:
    """Mean count of finished items that ran again after a SIGKILL (the item in flight excluded)."""
    make, update = LOSS_ACCUMULATORS[accumulator]
    lost = []
    for kill in LOSS_KILLS:
        work = b.path(f"loss-{where}-{seconds}-{len(accumulator)}-{kill}")
        work.mkdir()
        env = {**os.environ, "NBRESUME_DIR": str(work / "store")}
        args = [str(kill), str(seconds), make, update, where]
        for _ in range(2):  # killed at item `kill`, then run to the end
            subprocess.run(
                [sys.executable, "-c", LOSS_RUN, *args],
                cwd=work,
                env=env,
                check=False,
                capture_output=True,
            )
        runs = [int(line) for line in (work / "runs.txt").read_text().split()]
        if runs[kill + 1 :][-1:] != [kill + 1]:
            raise RuntimeError(f"the re-run did not finish the loop: {runs}")
        lost.append(kill - runs[kill + 1])
    return sum(lost) / len(lost)


def _lost_every_10s(seconds: float) -> float:
    """The same kills under the policy before issue 14 (a snapshot every 10 s, none before)."""
    per = max(1, int(10.0 / seconds))  # items between two snapshots
    return sum(kill - kill // per * per for kill in LOSS_KILLS) / len(LOSS_KILLS)


def bench_loss_window(b: Bench) -> list[Row]:
    """Items lost per kill against item time and accumulator size, by the default policy.

    Each run SIGKILLs its own process while item K is in flight, after its work; the re-run
    says which finished items it ran again. The alternative is the policy before issue 14, a
    snapshot every 10 s and none before, on the same kills (computed, not run).
    """
    rows = []
    for where, accumulators in (("cell", list(LOSS_ACCUMULATORS)), ("script", ["small list"])):
        for accumulator in accumulators:
            for seconds in LOSS_ITEM_SECONDS:
                lost = _items_lost(b, where, seconds, accumulator)
                before = _lost_every_10s(seconds)
                label = "checkpoint cell" if where == "cell" else "script"
                # the spec's example: a boundary save of a few ms, items of 0.3 s
                cheap = accumulator == "small list" and seconds >= 0.3
                rows.append(
                    Row(
                        f"items lost per kill, {label}, {accumulator}, {fmt_time(seconds)} items",
                        f"{lost:.1f} (mean of {len(LOSS_KILLS)} kills)",
                        f"a snapshot every 10 s (before): {before:.1f}",
                        fmt_ratio(lost / before),
                        "<= 1 item when saving is cheap" if cheap else "-",
                        lost <= 1.0 if cheap else None,
                    )
                )
    return rows


# ----------------------------------------------------------------------------------------------
# 3. large arrays and frames: save, restore, memory


def _engine_save(store: Any, key: str, value: Any) -> float:
    """What CheckpointRun.end runs to save a cell's variables."""
    from nbresume._serialize import dumps_namespace

    store.delete(key)
    start = pc()
    pickled, _ = dumps_namespace({"value": value}, {"outputs": []})
    store.put(key, pickled)
    return pc() - start


def _engine_load(store: Any, key: str) -> float:
    """What a hit runs before it updates the namespace."""
    start = pc()
    entry = store.get(key)
    value = entry["vars"]["value"]
    elapsed = pc() - start
    del value, entry
    return elapsed


def _np_save(path: Path, value: Any) -> float:
    import numpy as np

    path.unlink(missing_ok=True)
    start = pc()
    np.save(path, value)
    return pc() - start


def _np_load(path: Path) -> float:
    import numpy as np

    start = pc()
    value = np.load(path)
    elapsed = pc() - start
    del value
    return elapsed


def _pickle_save(path: Path, value: Any) -> float:
    path.unlink(missing_ok=True)
    start = pc()
    with path.open("wb") as f:
        pickle.dump(value, f, protocol=5)
    return pc() - start


def _pickle_load(path: Path) -> float:
    start = pc()
    with path.open("rb") as f:
        value = pickle.load(f)
    elapsed = pc() - start
    del value
    return elapsed


def _open_store(b: Bench, name: str) -> Any:
    from nbresume._store import Store

    return Store(b.path(name))


def bench_arrays(b: Bench) -> list[Row]:
    import numpy as np

    size = b.size_label
    arr = np.random.default_rng(0).random(b.array_bytes // 8)
    store = _open_store(b, "store-arrays")
    npy, pkl = b.path("a.npy"), b.path("a.pkl")
    saves = {
        "nb": lambda: _engine_save(store, "arr", arr),
        "np": lambda: _np_save(npy, arr),
        "pickle": lambda: _pickle_save(pkl, arr),
    }

    def alone(save: Callable[[], float]) -> Callable[[], float]:
        """``save``, after deleting every variant's file (outside the timing).

        NB. the dirty pages of a deleted file are dropped, never written back: no save pays for
        writing back the file of the one before it, and none starts with the disk busy.
        """

        def run() -> float:
            store.delete("arr")
            npy.unlink(missing_ok=True)
            pkl.unlink(missing_ok=True)
            return save()

        return run

    os.sync()  # NB. dirty pages of earlier sections would be written back during the timing
    save = interleave({name: alone(run) for name, run in saves.items()}, repeat=18, permute=True)
    for run in saves.values():  # the files the loads read, written back before they run
        run()
    os.sync()
    load = interleave(
        {
            "nb": lambda: _engine_load(store, "arr"),
            "np": lambda: _np_load(npy),
            "pickle": lambda: _pickle_load(pkl),
        },
        repeat=18,
        permute=True,
    )
    mem = _array_memory(b)
    n = b.array_bytes
    rows = [
        Row(
            f"save {size} float64 array (checkpoint miss)",
            fmt_time(save["nb"]),
            f"np.save {fmt_time(save['np'])}",
            fmt_ratio(save["nb"] / save["np"]),
            "<= 1.2x",
            save["nb"] / save["np"] <= 1.2,
        ),
        Row(
            f"save {size} array: peak extra memory",
            f"{fmt_bytes(mem['nb-save'])} ({mem['nb-save'] / n:.1%})",
            f"np.save {fmt_bytes(mem['np-save'])}",
            "",
            "<= 5% of the array",
            mem["nb-save"] <= 0.05 * n,
        ),
        Row(
            f"save {size} array vs pickle",
            fmt_time(save["nb"]),
            f"pickle.dump p5 {fmt_time(save['pickle'])}",
            fmt_ratio(save["nb"] / save["pickle"]),
            "-",
            None,
        ),
        Row(
            f"restore {size} array (checkpoint hit)",
            fmt_time(load["nb"]),
            f"np.load {fmt_time(load['np'])}",
            fmt_ratio(load["nb"] / load["np"]),
            "<= 1.1x",
            load["nb"] / load["np"] <= 1.1,
        ),
        Row(
            f"restore {size} array: extra copy",
            f"{fmt_bytes(mem['nb-load'])} ({mem['nb-load'] / n:.1%})",
            f"np.load {fmt_bytes(mem['np-load'])}",
            "",
            "no copy (<= 5%)",
            mem["nb-load"] <= 0.05 * n,
        ),
        Row(
            f"restore {size} array vs pickle",
            fmt_time(load["nb"]),
            f"pickle.load p5 {fmt_time(load['pickle'])}",
            fmt_ratio(load["nb"] / load["pickle"]),
            "-",
            None,
        ),
    ]
    store.close()
    return rows


MEMORY_CODE = """
import json, sys
from pathlib import Path
import numpy as np
from nbresume._serialize import dumps_namespace
from nbresume._store import Store

mode, where, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])

def status(field):  # bytes; VmHWM is the peak RSS since the last reset
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

store = Store(where / "store")
store.get("warm-up")  # sqlite and the key file are opened before the baseline
if mode.endswith("save"):
    a = np.arange(n // 8, dtype=np.float64)
    reset_peak()
    before = status("VmRSS")
    if mode == "nb-save":
        store.put("arr", dumps_namespace({"value": a}, {"outputs": []})[0])
    else:
        np.save(where / "a.npy", a)
    extra = status("VmHWM") - before
else:
    reset_peak()
    before = status("VmRSS")
    if mode == "nb-load":
        a = store.get("arr")["vars"]["value"]
    else:
        a = np.load(where / "a.npy")
    extra = status("VmHWM") - before - a.nbytes
print(json.dumps({"extra": extra}))
"""


def _array_memory(b: Bench) -> dict[str, float]:
    """Peak RSS above what the array itself needs, each operation in a fresh process.

    Linux only: the peak is /proc's VmHWM, reset just before the operation (a child's ru_maxrss
    would start at this big parent's, inherited through fork and exec).
    """
    where = b.path("memory")
    where.mkdir(exist_ok=True)
    out = {}
    for mode in ("nb-save", "np-save", "nb-load", "np-load"):
        runs = [
            subprocess_json(MEMORY_CODE, mode, str(where), str(b.array_bytes))["extra"]
            for _ in range(2)
        ]
        out[mode] = float(min(runs))  # the least noisy of two fresh processes
    shutil.rmtree(where)
    return out


def bench_dataframe(b: Bench) -> list[Row]:
    import numpy as np
    import pandas as pd

    columns = 32
    rows = b.array_bytes // 8 // columns
    df = pd.DataFrame(
        np.random.default_rng(1).random((rows, columns)), columns=[f"c{i}" for i in range(columns)]
    )
    store = _open_store(b, "store-frames")
    pkl = b.path("df.pkl")

    def to_pickle() -> float:
        pkl.unlink(missing_ok=True)
        start = pc()
        df.to_pickle(pkl)
        return pc() - start

    os.sync()
    save = interleave({"nb": lambda: _engine_save(store, "df", df), "pd": to_pickle}, repeat=7)
    os.sync()
    load = interleave(
        {"nb": lambda: _engine_load(store, "df"), "pd": timed(lambda: pd.read_pickle(pkl))},
        repeat=7,
    )
    store.close()
    label = f"{b.size_label} numeric DataFrame ({rows:,} x {columns})"
    return [
        Row(
            f"save {label}",
            fmt_time(save["nb"]),
            f"df.to_pickle {fmt_time(save['pd'])}",
            fmt_ratio(save["nb"] / save["pd"]),
            "<= 0.5x",
            save["nb"] / save["pd"] <= 0.5,
        ),
        Row(
            f"restore {label}",
            fmt_time(load["nb"]),
            f"pd.read_pickle {fmt_time(load['pd'])}",
            fmt_ratio(load["nb"] / load["pd"]),
            "<= 0.5x",
            load["nb"] / load["pd"] <= 0.5,
        ),
    ]


# ----------------------------------------------------------------------------------------------
# 4. fingerprints


def bench_fingerprint(b: Bench) -> list[Row]:
    """Deciding hit or miss on a big input: nbresume's fingerprint vs the hash it is built on.

    Throughput in GB/s follows the machine's load; the 10 GB/s target (half of raw xxh3 on an
    idle machine here) is judged against half of raw xxh3 measured in the same run.
    """
    import numpy as np
    import pandas as pd
    import xxhash

    from nbresume._keys import fingerprint

    arr = np.random.default_rng(2).random(b.array_bytes // 8)
    raw = memoryview(arr).cast("B")
    t = interleave(
        {
            "nb": timed(lambda: fingerprint(arr)),
            "raw": timed(lambda: xxhash.xxh3_128(raw).digest()),
        },
        repeat=7,
    )
    tracemalloc.start()
    fingerprint(arr)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    gbps = b.array_bytes / t["nb"] / 1e9
    raw_gbps = b.array_bytes / t["raw"] / 1e9

    df = pd.DataFrame(
        np.random.default_rng(3).random((1_000_000, 10)), columns=[f"c{i}" for i in range(10)]
    )
    fd = interleave(
        {
            "nb": timed(lambda: fingerprint(df)),
            "pd": timed(lambda: pd.util.hash_pandas_object(df)),
        },
        repeat=7,
    )
    containers = _container_rows()
    return [
        *containers,
        Row(
            f"fingerprint {b.size_label} numpy array",
            f"{gbps:.1f} GB/s, peak alloc {fmt_bytes(traced_peak)}",
            f"raw xxh3_128 {raw_gbps:.1f} GB/s",
            fmt_ratio(t["nb"] / t["raw"]),
            ">= 10 GB/s (half of raw xxh3), no copy",
            gbps >= min(10.0, raw_gbps / 2) and traced_peak < 0.01 * b.array_bytes,
        ),
        Row(
            "fingerprint 1M x 10 float DataFrame",
            fmt_time(fd["nb"]),
            f"hash_pandas_object {fmt_time(fd['pd'])}",
            fmt_ratio(fd["nb"] / fd["pd"]),
            "<= 0.1x (10x faster)",
            fd["nb"] / fd["pd"] <= 0.1,
        ),
    ]


CONTAINER_TARGET_MBPS = 200.0  # issue 15: Python containers of 10M scalars at >= 200 MB/s


def _deep_size(value: Any) -> int:
    """Bytes a container and its items take in memory (what "MB" means in the MB/s rows)."""
    items = [*value, *value.values()] if isinstance(value, dict) else list(value)
    return sys.getsizeof(value) + sum(map(sys.getsizeof, items))


def _container_rows() -> list[Row]:
    """Fingerprints of large lists and dicts of scalars, in MB/s of their in-memory size.

    Compared with `pickle.dumps` of the same container (a serialisation that touches every
    item, as a fingerprint must).
    """
    from nbresume._keys import fingerprint

    values = {
        "list of 10M ints": list(range(10_000_000)),
        "dict of 1M str->float": {f"key-{i}": i * 0.5 for i in range(1_000_000)},
    }
    rows = []
    for label, value in values.items():
        size = _deep_size(value)
        t = interleave(
            {
                "nb": timed(lambda v=value: fingerprint(v, budget=None)),
                "pickle": timed(lambda v=value: pickle.dumps(v, protocol=5)),
            },
            repeat=5,
        )
        mbps = size / t["nb"] / 1e6
        rows.append(
            Row(
                f"fingerprint {label} ({fmt_bytes(size)})",
                f"{mbps:.0f} MB/s ({fmt_time(t['nb'])})",
                f"pickle.dumps {size / t['pickle'] / 1e6:.0f} MB/s ({fmt_time(t['pickle'])})",
                fmt_ratio(t["nb"] / t["pickle"]),
                f">= {CONTAINER_TARGET_MBPS:.0f} MB/s",
                mbps >= CONTAINER_TARGET_MBPS,
            )
        )
    return rows


# ----------------------------------------------------------------------------------------------
# 5. small cells and small values


TINY_REPEAT = 40


def bench_tiny_cells(b: Bench) -> list[Row]:
    """A tiny cell that prints, run plainly, as a checkpoint hit, and as a checkpoint miss."""
    ns = b.shell.user_ns
    plain = "y = 6 * 7\nprint(y)\n"
    hit = "%%checkpoint bench-tiny\ny = 6 * 7\nprint(y)\n"
    miss = "%%checkpoint bench-tiny-miss\ny = seed * 7\nprint(y)\n"
    b.run_cell(hit)  # the entry the hits restore
    counter = iter(range(10**9))

    def run_miss() -> float:
        ns["seed"] = next(counter)  # a changed input: a real miss (lookup, run, record, save)
        return b.run_cell(miss)

    t = interleave(
        {"plain": lambda: b.run_cell(plain), "hit": lambda: b.run_cell(hit), "miss": run_miss},
        repeat=TINY_REPEAT,
    )
    return [
        Row(
            "tiny cell hit (restore + replay), added time",
            f"+{fmt_time(t['hit'] - t['plain'])} (cell {fmt_time(t['hit'])})",
            f"plain run_cell {fmt_time(t['plain'])}",
            fmt_ratio(t["hit"] / t["plain"]),
            "<= +1 ms",
            t["hit"] - t["plain"] <= 1e-3,
        ),
        Row(
            "tiny cell miss (record + save), added time",
            f"+{fmt_time(t['miss'] - t['plain'])} (cell {fmt_time(t['miss'])})",
            f"plain run_cell {fmt_time(t['plain'])}",
            fmt_ratio(t["miss"] / t["plain"]),
            "<= +5 ms",
            t["miss"] - t["plain"] <= 5e-3,
        ),
    ]


def bench_small_values(b: Bench) -> list[Row]:
    """A cached small value: %%checkpoint (the magic called directly) vs joblib.Memory, %store."""
    import joblib

    shell = b.shell
    ns = shell.user_ns
    b.run_cell("def slow(a):\n    return {'a': a, 'doubled': [a] * 2}\n")
    memory = joblib.Memory(b.path("joblib"), verbose=0)
    cached = memory.cache(ns["slow"])
    ns.update(a=21, cached=cached)
    body = "v = slow(a)\n"
    with quiet():
        shell.run_cell_magic("checkpoint", "bench-small", body)
        cached(21)
        shell.run_line_magic("load_ext", "storemagic")
        ns["v"] = ns["slow"](21)
        shell.run_line_magic("store", "v")

    def magic_hit() -> float:
        with quiet():
            start = pc()
            shell.run_cell_magic("checkpoint", "bench-small", body)
            return pc() - start

    def store_r() -> float:
        with quiet():
            start = pc()
            shell.run_line_magic("store", "-r v")
            return pc() - start

    from nbresume._store import open_store

    store = open_store()
    key = next(k for k in store.keys("cell:bench-small:"))
    hits = interleave(
        {
            "nb": magic_hit,
            "joblib": timed(lambda: cached(21)),
            "store-get": timed(lambda: store.get(key)),
            "%store": store_r,
        },
        repeat=50,
    )

    args = iter(range(1000, 10**9))

    def magic_miss() -> float:
        ns["a"] = next(args)
        with quiet():
            start = pc()
            shell.run_cell_magic("checkpoint", "bench-small-miss", body)
            return pc() - start

    def joblib_miss() -> float:
        value = next(args)
        start = pc()
        cached(value)
        return pc() - start

    misses = interleave({"nb": magic_miss, "joblib": joblib_miss}, repeat=20)
    ratio = hits["nb"] / hits["joblib"]
    return [
        Row(
            "small-value hit: %%checkpoint magic",
            fmt_time(hits["nb"]),
            f"joblib.Memory hit {fmt_time(hits['joblib'])}",
            fmt_ratio(ratio),
            "<= 0.2x",
            ratio <= 0.2,
        ),
        Row(
            "small-value hit: Store.get alone (floor of a hit)",
            fmt_time(hits["store-get"]),
            f"joblib.Memory hit {fmt_time(hits['joblib'])}",
            fmt_ratio(hits["store-get"] / hits["joblib"]),
            "-",
            None,
        ),
        Row(
            "small-value hit: %%checkpoint magic vs %store -r",
            fmt_time(hits["nb"]),
            f"%store -r {fmt_time(hits['%store'])}",
            fmt_ratio(hits["nb"] / hits["%store"]),
            "-",
            None,
        ),
        Row(
            "small-value miss: %%checkpoint magic",
            fmt_time(misses["nb"]),
            f"joblib.Memory miss {fmt_time(misses['joblib'])}",
            fmt_ratio(misses["nb"] / misses["joblib"]),
            "-",
            None,
        ),
    ]


# ----------------------------------------------------------------------------------------------
# 6. import time and progress messages


IMPORT_CODE = """
import json, sys, time
import IPython
from IPython.core.interactiveshell import InteractiveShell
what = sys.argv[1]
shell = InteractiveShell.instance()
start = time.perf_counter()
if what == "load_ext":
    shell.run_line_magic("load_ext", "nbresume")
else:
    __import__(what)
elapsed = time.perf_counter() - start
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"ipywidgets", "jupyter_server", "notebook",
    "anywidget", "numpy", "pandas", "matplotlib"})
print(json.dumps({"seconds": elapsed, "heavy": heavy}))
"""


def bench_import(b: Bench) -> list[Row]:
    runs: dict[str, list[float]] = {"nbresume": [], "load_ext": [], "tqdm": []}
    heavy: dict[str, list[str]] = {}
    for _ in range(5):
        for what, seconds in runs.items():
            out = subprocess_json(IMPORT_CODE, what, cwd=b.tmp)
            seconds.append(out["seconds"])
            heavy[what] = out["heavy"]
    t = {k: median(v) for k, v in runs.items()}
    rows = []
    for what, label in (("nbresume", "import nbresume"), ("load_ext", "%load_ext nbresume")):
        extra = ", ".join(heavy[what]) or "none"
        rows.append(
            Row(
                f"`{label}` (IPython imported)",
                f"{fmt_time(t[what])}, heavy imports: {extra}",
                f"import tqdm {fmt_time(t['tqdm'])}",
                fmt_ratio(t[what] / t["tqdm"]),
                "<= 100 ms, no widget/server",
                t[what] <= 0.1 and not {"ipywidgets", "jupyter_server"} & set(heavy[what]),
            )
        )
    return rows


PROGRESS_ITEMS = 1_000_000
STEADY_AFTER = 1.0  # seconds: the rate after the first second leaves out the opening burst


def bench_progress(b: Bench) -> list[Row]:
    """Widget update messages of a 1M-item loop (about 2 us an item) in a cell.

    nbresume: a checkpoint cell's progress widget (the shell is told it is a notebook kernel);
    tqdm.notebook with mininterval=0.1 s. Both widgets' comm messages go to the comm package's
    DummyComm, where the updates ("comm_msg") are counted with their times.
    """
    import comm

    ns = b.shell.user_ns
    ns["_small"] = list(range(200))
    stamps: list[float] = []
    original = comm.DummyComm.publish_msg

    def publish_msg(self: Any, msg_type: str, *args: Any, **kwargs: Any) -> None:
        if msg_type == "comm_msg":
            stamps.append(pc())
        return original(self, msg_type, *args, **kwargs)

    loop = "_t0 = _pc()\nfor i in {}:\n    sum(_small)\n_t1 = _pc()\n"
    cells = {
        "nb": "%%checkpoint --force bench-widget\n"
        + loop.format(f"resumable(range({PROGRESS_ITEMS}))"),
        "tqdm": "from tqdm.notebook import tqdm as _tqdm_nb\n"
        + loop.format(f"_tqdm_nb(range({PROGRESS_ITEMS}), mininterval=0.1)"),
    }

    def rates(source: str) -> Callable[[], float]:
        def run() -> float:
            stamps.clear()
            b.run_cell(source)
            t0, t1 = float(ns["_t0"]), float(ns["_t1"])
            during = [t for t in stamps if t0 <= t <= t1]
            steady = [t for t in during if t >= t0 + STEADY_AFTER]
            overall_rates[source].append(len(during) / (t1 - t0))
            return len(steady) / (t1 - t0 - STEADY_AFTER)

        return run

    overall_rates: dict[str, list[float]] = {source: [] for source in cells.values()}
    comm.DummyComm.publish_msg = publish_msg  # type: ignore[method-assign]
    try:
        steady = interleave({k: rates(v) for k, v in cells.items()}, repeat=3, warmup=0)
    finally:
        comm.DummyComm.publish_msg = original  # type: ignore[method-assign]
    overall = {k: median(overall_rates[v]) for k, v in cells.items()}
    return [
        Row(
            "widget update messages/s, 1M-item loop in a cell",
            f"{steady['nb']:.1f}/s after 1 s ({overall['nb']:.1f}/s overall)",
            f"tqdm.notebook {steady['tqdm']:.1f}/s ({overall['tqdm']:.1f}/s overall)",
            fmt_ratio(steady["nb"] / steady["tqdm"]) if steady["tqdm"] else "",
            "<= 10/s",
            steady["nb"] <= 10,
        )
    ]


MAP_CPU_ITEMS = 24  # CPU-bound items of about 40 ms: enough to keep 2 workers busy for ~0.5 s
MAP_TINY_ITEMS = 2_000


def _spin(n: int) -> int:
    """A CPU-bound item: pure Python arithmetic (no I/O, no GIL release)."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def _double(x: int) -> int:
    return 2 * x


def bench_map(b: Bench) -> list[Row]:
    """`resumable.map` on a 2-worker process pool: speed-up over a serial loop for CPU-bound
    items (with the bare pool's own speed-up beside it: the ceiling on a loaded machine), and its
    cost per item over a bare ``executor.map`` for trivial items.

    Each run maps under a new name, so nothing is restored: every item is computed and saved.
    """
    from concurrent.futures import ProcessPoolExecutor

    from nbresume import resumable

    size = 400_000  # ~40 ms of `_spin` on this machine
    cpu_items = [size] * MAP_CPU_ITEMS
    tiny_items = list(range(MAP_TINY_ITEMS))
    runs = iter(range(1_000_000))
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_double, range(4)))  # the workers are up before anything is timed
        t = interleave(
            {
                "serial": timed(lambda: [_spin(n) for n in cpu_items]),
                "pool": timed(lambda: list(pool.map(_spin, cpu_items))),
                "map": timed(
                    lambda: resumable.map(_spin, cpu_items, executor=pool, name=f"cpu{next(runs)}")
                ),
                "bare": timed(lambda: list(pool.map(_double, tiny_items))),
                "tiny": timed(
                    lambda: resumable.map(
                        _double, tiny_items, executor=pool, name=f"tiny{next(runs)}"
                    )
                ),
            },
            repeat=5,
        )
    speedup = t["serial"] / t["map"]
    per_item = t["tiny"] / MAP_TINY_ITEMS
    bare_item = t["bare"] / MAP_TINY_ITEMS
    return [
        Row(
            f"`resumable.map` speed-up, 2-process pool, {MAP_CPU_ITEMS} CPU-bound items",
            f"{fmt_time(t['map'])} ({speedup:.2f}x faster)",
            f"serial loop {fmt_time(t['serial'])} (bare executor.map: "
            f"{t['serial'] / t['pool']:.2f}x faster)",
            fmt_ratio(t["map"] / t["serial"]),
            ">= 1.7x speed-up",
            speedup >= 1.7,
        ),
        Row(
            f"`resumable.map` per item, 2-process pool, {MAP_TINY_ITEMS:,} trivial items",
            f"{fmt_time(per_item)}/item",
            f"executor.map {fmt_time(bare_item)}/item",
            fmt_ratio(per_item / bare_item),
            "<= 1.2x",
            per_item <= 1.2 * bare_item,
        ),
    ]


# ----------------------------------------------------------------------------------------------


OUTPUT_CELL = "for i in range(40_000):\n    print(f'row {i:>6} ' + 'x' * 90)\n"  # 4 MB, 80k writes
OUTPUT_REPEAT = 5
SPILL_TEST_MB = 100


def bench_outputs(b: Bench) -> list[Row]:
    """A cell printing 4 MB in a real kernel: plain, as a checkpoint miss (record + save) and as a
    hit (replay); and the peak memory of recording and saving 100 MB of output."""
    from jupyter_client import KernelManager

    workdir = b.path("kernel")
    workdir.mkdir(exist_ok=True)
    km = KernelManager(kernel_name="python3")
    km.start_kernel(
        cwd=str(workdir), env=dict(os.environ), extra_arguments=["--HistoryManager.enabled=False"]
    )
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)

        def run(code: str) -> float:
            start = pc()
            reply = kc.execute_interactive(code, timeout=600, output_hook=lambda msg: None)
            elapsed = pc() - start
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"benchmark cell failed: {reply['content'].get('evalue')}")
            return elapsed

        run("%load_ext nbresume")
        hit = "%%checkpoint bench-out-hit\n" + OUTPUT_CELL
        run(hit)  # the entry the hits restore
        t = interleave(
            {
                "plain": lambda: run(OUTPUT_CELL),
                "miss": lambda: run("%%checkpoint bench-out --force\n" + OUTPUT_CELL),
                "hit": lambda: run(hit),
            },
            repeat=OUTPUT_REPEAT,
        )
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    peak = _record_peak(b, SPILL_TEST_MB)
    return [
        Row(
            "4 MB printed, checkpoint miss (record + save), kernel",
            fmt_time(t["miss"]),
            f"plain cell {fmt_time(t['plain'])}",
            fmt_ratio(t["miss"] / t["plain"]),
            "<= 1.5x",
            t["miss"] <= 1.5 * t["plain"],
        ),
        Row(
            "4 MB printed, checkpoint hit (replay), kernel",
            fmt_time(t["hit"]),
            f"plain cell {fmt_time(t['plain'])}",
            fmt_ratio(t["hit"] / t["plain"]),
            "<= 1.5x",
            t["hit"] <= 1.5 * t["plain"],
        ),
        Row(
            f"{SPILL_TEST_MB} MB printed: peak memory of recording + saving",
            fmt_bytes(peak),
            f"the text: {fmt_bytes(SPILL_TEST_MB * MiB)}",
            fmt_ratio(peak / (SPILL_TEST_MB * MiB)),
            "<= 32 MiB",
            peak <= 32 * MiB,
        ),
    ]


def _record_peak(b: Bench, megabytes: int) -> int:
    """Peak traced allocations while a recorder tees ``megabytes`` of 1 KiB lines (1 MiB writes)
    and the outputs are pickled and written to a store, as a checkpoint miss saves them."""
    import sys as _sys

    from nbresume import _capture, _serialize
    from nbresume._store import open_store

    store = open_store(b.path("spill-store"))
    chunk = ("x" * 1023 + "\n") * 1024
    old = _sys.stdout
    _sys.stdout = NullFile()  # type: ignore[assignment]
    tracemalloc.start()
    try:
        publisher = types.SimpleNamespace(publish=print, clear_output=print)  # never called
        recorder = _capture.Recorder(publisher, spill_dir=store.path)
        with recorder:
            for _ in range(megabytes):
                _sys.stdout.write(chunk)
        outputs = _capture.merge_streams(_capture.strip_for_replay(recorder.outputs))
        pickled, _ = _serialize.dumps_namespace({}, {"outputs": outputs})
        store.put("bench-spill", pickled)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        _sys.stdout = old
        store.close()
    return peak


SECTIONS: dict[str, Callable[[Bench], list[Row]]] = {
    "loop-script": bench_loop_script,
    "loop-cell": bench_loop_cell,
    "snapshots": bench_snapshots,
    "loss-window": bench_loss_window,
    "arrays": bench_arrays,
    "dataframe": bench_dataframe,
    "fingerprint": bench_fingerprint,
    "tiny-cells": bench_tiny_cells,
    "small-values": bench_small_values,
    "import": bench_import,
    "progress": bench_progress,
    "map": bench_map,
    "outputs": bench_outputs,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="1 GiB arrays and frames (the issue)")
    parser.add_argument("--only", nargs="*", choices=list(SECTIONS), help="run these sections")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="nbresume-bench-"))
    # Before anything imports nbresume or IPython: a throw-away store, key, config and profile.
    os.environ.update(
        NBRESUME_KEY="nbresume-bench-key",
        NBRESUME_DIR=str(tmp / "store"),
        XDG_CONFIG_HOME=str(tmp / "config"),
        IPYTHONDIR=str(tmp / "ipython"),
    )
    bench = Bench(tmp, args.full)
    rows: list[Row] = []
    started = pc()
    try:
        for name, section in SECTIONS.items():
            if args.only and name not in args.only:
                continue
            print(f"running {name}...", file=sys.stderr, flush=True)
            section_start = pc()
            try:
                rows.extend(section(bench))
            except Exception as exc:  # one broken comparison must not hide the others
                rows.append(Row(name, f"error: {exc!r:.80}", "", "", "", False))
            print(f"  {pc() - section_start:.1f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    header = (
        f"nbresume benchmarks: arrays/frames {bench.size_label}"
        f"{'' if args.full else ' (the issue says 1 GiB: run with --full)'}; "
        f"tqdm with a discarding file and default mininterval; medians of interleaved runs; "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs; {pc() - started:.0f} s"
    )
    print_table(rows, header)
    return 0


if __name__ == "__main__":
    sys.exit(main())
