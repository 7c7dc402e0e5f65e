"""resumable.map: input order, saved results, only missing items on a re-run, pools, Dask."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from nbresume import CheckpointError, resumable


@pytest.fixture(autouse=True)
def _store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("NBRESUME_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("NBRESUME_KEY", "nbresume-test-key")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    import nbresume._store

    stores: dict[Path, Any] = {}
    monkeypatch.setattr(nbresume._store, "_stores", stores)
    yield
    # NB. Python 3.13 warns (an error here) when an unclosed sqlite connection is collected
    for store in stores.values():
        store.close()


def work(log: str, x: int, fail: int | None = None, delay: float = 0.0) -> int:
    with open(log, "a") as f:
        f.write(f"{x}\n")
    if delay:
        time.sleep(delay)
    if x == fail and not os.path.exists(log + ".fixed"):
        raise ValueError(f"bad item {x}")
    return x * x


def runs(log: Path) -> Counter[int]:
    return Counter(int(line) for line in log.read_text().split()) if log.exists() else Counter()


def test_serial_map_returns_results_in_input_order(tmp_path: Path) -> None:
    log = tmp_path / "runs.txt"
    assert resumable.map(functools.partial(work, str(log)), [3, 1, 2]) == [9, 1, 4]
    assert runs(log) == Counter({3: 1, 1: 1, 2: 1})


def test_a_raising_item_keeps_the_others_and_a_rerun_retries_only_it(tmp_path: Path) -> None:
    log = tmp_path / "runs.txt"
    fn = functools.partial(work, str(log), fail=7)
    with pytest.raises(CheckpointError, match=r"1 of 10 items failed \(keys 7\)") as info:
        resumable.map(fn, range(10), name="sq")
    assert isinstance(info.value.__cause__, ValueError)
    Path(str(log) + ".fixed").touch()
    assert resumable.map(fn, range(10), name="sq") == [x * x for x in range(10)]
    counts = runs(log)
    assert counts[7] == 2
    assert all(counts[x] == 1 for x in range(10) if x != 7)


def test_a_completed_map_outside_a_checkpoint_starts_fresh(tmp_path: Path) -> None:
    log = tmp_path / "runs.txt"
    fn = functools.partial(work, str(log))
    resumable.map(fn, range(4), name="fresh")
    resumable.map(fn, range(4), name="fresh")
    assert runs(log) == Counter(dict.fromkeys(range(4), 2))


@pytest.mark.parametrize("pool", [ThreadPoolExecutor, ProcessPoolExecutor])
def test_pools_return_results_in_input_order(tmp_path: Path, pool: type) -> None:
    log = tmp_path / "runs.txt"
    with pool(2) as executor:
        result = resumable.map(functools.partial(work, str(log)), range(200), executor=executor)
    assert result == [x * x for x in range(200)]
    assert runs(log) == Counter(range(200))


class CountingPool(ThreadPoolExecutor):
    """A thread pool that counts the futures it was given."""

    submitted = 0

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        self.submitted += 1
        return super().submit(*args, **kwargs)


def test_quick_items_go_to_workers_in_batches_and_slow_ones_one_by_one(tmp_path: Path) -> None:
    log = tmp_path / "runs.txt"
    with CountingPool(2) as pool:
        quick = resumable.map(functools.partial(work, str(log)), range(2000), executor=pool)
    assert quick == [x * x for x in range(2000)]
    assert pool.submitted < 200  # microsecond items: a future carries many
    with CountingPool(2) as pool:
        fn = functools.partial(work, str(log), delay=0.06)  # longer than a batch is meant to take
        slow = resumable.map(fn, range(12, 24), executor=pool)
    assert slow == [x * x for x in range(12, 24)]
    assert pool.submitted == 12  # one item per future: each saved as soon as it ends
    assert runs(log) == Counter(range(2000)) + Counter(range(12, 24))


def test_a_raising_item_in_a_batch_fails_alone(tmp_path: Path) -> None:
    log = tmp_path / "runs.txt"
    fn = functools.partial(work, str(log), fail=1234)
    with ThreadPoolExecutor(2) as pool, pytest.raises(CheckpointError, match=r"keys 1234\)"):
        resumable.map(fn, range(2000), executor=pool, name="batched")
    Path(str(log) + ".fixed").touch()
    with ThreadPoolExecutor(2) as pool:
        assert resumable.map(fn, range(2000), executor=pool, name="batched")[1234] == 1234**2
    counts = runs(log)
    assert counts[1234] == 2
    assert sum(counts.values()) == 2001  # only the failed item ran again


def test_bad_arguments_say_what_to_do() -> None:
    with pytest.raises(CheckpointError, match="needs a function"):
        resumable.map(5, [1])  # type: ignore[arg-type]
    with pytest.raises(CheckpointError, match="needs an iterable"):
        resumable.map(abs, 5)  # type: ignore[arg-type]
    with pytest.raises(CheckpointError, match="key function failed on item 0"):
        resumable.map(abs, [1], key=lambda item: 1 / 0)


SCRIPT = """
import functools, os, sys
from concurrent.futures import ProcessPoolExecutor
sys.path.insert(0, {tests!r})
from test_map import work
from nbresume import resumable

if __name__ == "__main__":
    with ProcessPoolExecutor(2) as ex:
        out = resumable.map(functools.partial(work, {log!r}, delay=0.05), range(60), executor=ex,
                            name="killed")
    print("sum", sum(out))
"""


def test_killing_the_process_mid_map_then_rerunning_computes_only_missing_items(
    tmp_path: Path,
) -> None:
    log = tmp_path / "runs.txt"
    script = tmp_path / "job.py"
    tests = str(Path(__file__).parent)
    script.write_text(textwrap.dedent(SCRIPT.format(tests=tests, log=str(log))))
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    proc = subprocess.Popen(
        [sys.executable, str(script)], cwd=tmp_path, env=env, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while sum(runs(log).values()) < 25 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the "kernel" and its pool die together
    proc.wait(10)
    first = runs(log)
    assert 0 < len(first) < 60
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"sum {sum(x * x for x in range(60))}" in done.stdout
    counts = runs(log)
    assert set(counts) == set(range(60))
    rerun = [x for x, n in counts.items() if n > 1]
    # only items in flight (at most 2 workers x 4 queued) or finished within the last flush
    # interval are computed twice
    assert len(rerun) <= 10, rerun


def test_dask_local_cluster_survives_a_killed_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    distributed = pytest.importorskip("distributed")
    # an in-process IPython shell (other tests) leaves a __main__ without __spec__ behind,
    # which multiprocessing's spawn of the Dask nannies needs
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", None, raising=False)
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    log = tmp_path / "runs.txt"
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        pids = client.run(os.getpid)
        victim = next(iter(pids.values()))

        def kill_later() -> None:
            while sum(runs(log).values()) < 10:
                time.sleep(0.02)
            os.kill(victim, signal.SIGKILL)

        import threading

        killer = threading.Thread(target=kill_later, daemon=True)
        killer.start()
        fn = functools.partial(work, str(log), delay=0.05)
        result = resumable.map(fn, range(40), executor=client, name="dask")
        killer.join(5)
    assert result == [x * x for x in range(40)]
    counts = runs(log)
    assert set(counts) == set(range(40))
    assert sum(counts.values()) - 40 <= 8  # only the dead worker's in-flight items ran twice


def test_a_changed_function_computes_every_item_again(tmp_path: Path) -> None:
    log = tmp_path / "runs.txt"
    with pytest.raises(CheckpointError):
        resumable.map(functools.partial(work, str(log), fail=2), range(4), name="fn")

    def cube(x: int) -> int:
        with open(log, "a") as f:
            f.write(f"{x}\n")
        return x**3

    assert resumable.map(cube, range(4), name="fn") == [0, 1, 8, 27]
    assert runs(log) == Counter({0: 2, 1: 2, 2: 2, 3: 2})


def test_results_are_keyed_by_item_so_a_reordered_list_reuses_them(tmp_path: Path) -> None:
    log = tmp_path / "runs.txt"

    def value(box: dict[str, int]) -> int:
        with open(log, "a") as f:
            f.write(f"{box['v']}\n")
        if box["v"] == 3 and not (tmp_path / "fixed").exists():
            raise ValueError(box)
        return box["v"] * 10

    with pytest.raises(CheckpointError):
        resumable.map(value, [{"v": 1}, {"v": 2}, {"v": 3}], name="boxes")
    (tmp_path / "fixed").touch()
    assert resumable.map(value, [{"v": 3}, {"v": 2}, {"v": 1}], name="boxes") == [30, 20, 10]
    assert runs(log) == Counter({1: 1, 2: 1, 3: 2})
