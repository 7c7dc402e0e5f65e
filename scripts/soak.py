"""Soak test: SIGKILL a real kernel at random moments of a resumable loop, many times; count losses.

    python scripts/soak.py                  # 200 kills
    python scripts/soak.py --kills 1000 --seed 7 --json
    python scripts/soak.py --shape nested   # epochs around batches (also: inplace, append-first)

A round is one ``%%checkpoint soak-R --every 1`` cell: a loop of ``--items`` items of 20-50 ms
that appends each item's index to ``runs-R.txt`` before its work and grows two accumulators (a
results list and a running total). ``--shape`` picks how the loop is written (every shape ends with
the same ``results``, ``total`` and stdout): ``flat``; ``nested``, epochs of 8 items around batches,
with per-epoch state set above the inner loop; ``inplace``, ``resumable(enumerate(slots))`` filling
each item's own list in place; ``append-first``, accumulators grown before the item's sleep.
A cycle restarts the kernel, runs the cell and SIGKILLs the
kernel after a random delay, drawn from the start of the cell to a bit past the loop's expected
end, so kills land while the snapshot is restored, inside items, inside snapshot writes and
after the loop. When the cell finishes before its kill, the round is checked and the next one
starts. After the last kill the current round is run to the end.

What is counted, from the runs files (an item is *completed* when a later item started after it in
the same cycle, when its cycle finished, or when a later cycle skipped it):

* ``lost``: values missing from a round's final ``results`` (a completed item whose work vanished);
* ``extra_runs``: completed items that ran again (the guarantee: zero);
* ``in_flight_reruns``: items in flight at a kill that ran again (documented: at most one per kill);
* ``mismatched``: rounds whose final ``results``, ``total``, stdout or result differ from an
  uninterrupted run's.

Exit status 0 when nothing was lost or run twice, 1 otherwise. The test suite imports `run`
(tests/test_reliability.py) with a handful of kills.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client import KernelManager

__all__ = ["Report", "cell_source", "expected_stdout", "main", "run", "tally"]

SOAK_KEY = "nbresume-soak-key"  # signing key of the soak kernels; never a user's key file
READY_TIMEOUT = 60.0  # seconds for a kernel to start on a loaded machine
ROUND_CYCLES = 200  # a round that needs more cycles than this is not resuming: give up
ITEM_SECONDS = 0.035  # mean duration of one item (20-50 ms)
SLACK_SECONDS = 0.4  # kills are drawn up to this long past the expected end of the loop

SETUP = """\
%load_ext nbresume
import time

def mark(path, i):
    with open(path, "a") as f:
        f.write(f"{i}\\n")
"""

CELLS = {
    "flat": """\
%%checkpoint soak-{round} --every 1
print("soak round {round}")
results = []
total = 0
for i in resumable(range({items})):
    mark("runs-{round}.txt", i)
    time.sleep(0.02 + 0.003 * ((i * 7) % 11))
    results.append(i * i)
    total += i
    print(f"item {{i}} -> {{i * i}}")
print("total", total)
total
""",
    "nested": """\
%%checkpoint soak-{round} --every 1
print("soak round {round}")
results = []
total = 0
for epoch in resumable(range({items} // 8)):
    part = []
    for b in resumable(range(8)):
        i = epoch * 8 + b
        mark("runs-{round}.txt", i)
        time.sleep(0.02 + 0.003 * ((i * 7) % 11))
        part.append(i * i)
        total += i
        print(f"item {{i}} -> {{i * i}}")
    results.extend(part)
print("total", total)
total
""",
    "inplace": """\
%%checkpoint soak-{round} --every 1
print("soak round {round}")
slots = [[] for _ in range({items})]
total = 0
for i, slot in resumable(enumerate(slots)):
    mark("runs-{round}.txt", i)
    time.sleep(0.02 + 0.003 * ((i * 7) % 11))
    slot.append(i * i)
    total += i
    print(f"item {{i}} -> {{i * i}}")
results = [s[0] for s in slots]
print("total", total)
total
""",
    "append-first": """\
%%checkpoint soak-{round} --every 1
print("soak round {round}")
results = []
total = 0
for i in resumable(range({items})):
    mark("runs-{round}.txt", i)
    results.append(i * i)
    total += i
    time.sleep(0.02 + 0.003 * ((i * 7) % 11))
    print(f"item {{i}} -> {{i * i}}")
print("total", total)
total
""",
}
CELL = CELLS["flat"]


def cell_source(round_: int, items: int, shape: str = "flat") -> str:
    return CELLS[shape].format(round=round_, items=items)


def expected_stdout(round_: int, items: int) -> str:
    """What an uninterrupted run of round ``round_`` prints."""
    lines = [f"soak round {round_}\n"]
    lines += [f"item {i} -> {i * i}\n" for i in range(items)]
    lines.append(f"total {sum(range(items))}\n")
    return "".join(lines)


@dataclass
class Tally:
    """What the runs files of one round say."""

    extra_runs: int = 0
    in_flight_reruns: int = 0
    item_runs: int = 0


def tally(cycles: list[tuple[list[int], bool]]) -> Tally:
    """Count re-runs over a round's cycles: (items started in order, whether it was killed).

    Items are the indices 0, 1, ... of the soak's loop, run in order.
    """
    result = Tally()
    completed: set[int] = set()
    started_before: set[int] = set()
    for started, killed in cycles:
        if started:  # the loop skipped the items before its first: its snapshot says they are done
            completed.update(range(started[0]))
        for item in started:
            result.item_runs += 1
            if item in completed:
                result.extra_runs += 1
            elif item in started_before:
                result.in_flight_reruns += 1
            started_before.add(item)
        completed.update(started[:-1] if killed else started)
    return result


@dataclass
class Report:
    kills: int = 0
    rounds: int = 0
    items: int = 0  # items per round
    item_runs: int = 0  # loop bodies executed, all rounds
    lost: int = 0
    extra_runs: int = 0
    in_flight_reruns: int = 0
    kills_without_item: int = 0  # no item started: loading, restoring, or after the cell
    kills_after_last_item: int = 0  # after the loop's last item started (inside it, or the save)
    mismatched: list[str] = field(default_factory=list)
    seconds: float = 0.0
    seed: int = 0
    shape: str = "flat"

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.extra_runs == 0
            and not self.mismatched
            and self.in_flight_reruns <= self.kills
        )

    def summary(self) -> str:
        return (
            f"kills: {self.kills}  rounds: {self.rounds} x {self.items} items  "
            f"item runs: {self.item_runs}\n"
            f"items lost: {self.lost}  completed items run twice: {self.extra_runs}  "
            f"in-flight items re-run: {self.in_flight_reruns} (allowed: <= {self.kills})\n"
            f"kills with no item started (load, restore, after the cell): {self.kills_without_item}  "
            f"after the last item started: {self.kills_after_last_item}\n"
            f"rounds differing from an uninterrupted run: {len(self.mismatched)}\n"
            f"time: {self.seconds:.0f} s ({self.seconds / max(self.kills, 1):.2f} s per kill), "
            f"seed {self.seed}, shape {self.shape}: {'OK' if self.ok else 'FAILED'}"
        )


class _Kernel:
    """One kernel in ``workdir``, isolated from the user's profile and key, killable."""

    def __init__(self, workdir: Path) -> None:
        home = workdir / ".home"
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
        env.pop("NBRESUME_DIR", None)
        env.update(
            IPYTHONDIR=str(home / ".ipython"), NBRESUME_KEY=SOAK_KEY, XDG_CONFIG_HOME=str(home)
        )
        self._log = open(workdir / ".kernel.log", "ab")  # noqa: SIM115 (closed in shutdown)
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(
            cwd=str(workdir),
            env=env,
            extra_arguments=["--HistoryManager.enabled=False"],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=READY_TIMEOUT)

    def run(self, code: str, timeout: float = 60.0) -> None:
        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=lambda _: None)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"{code!r} failed: {reply['content'].get('evalue')}")

    def eval(self, expr: str) -> Any:
        reply = self.kc.execute_interactive(
            "", user_expressions={"v": f"repr({expr})"}, output_hook=lambda _: None, timeout=60
        )
        value = reply["content"]["user_expressions"]["v"]
        if value["status"] != "ok":
            return None
        return ast.literal_eval(ast.literal_eval(value["data"]["text/plain"]))

    def execute_for(self, code: str, seconds: float) -> dict[str, Any] | None:
        """Run ``code`` for at most ``seconds``; -> its stdout and result if it finished, else None."""
        msg_id = self.kc.execute(code)
        deadline = time.monotonic() + seconds
        outputs: dict[str, Any] = {"stdout": "", "result": None, "status": None, "idle": False}
        while outputs["status"] is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                msg = self.kc.get_shell_msg(timeout=min(left, 0.02))
            except queue.Empty:
                self._drain(msg_id, outputs, 0.0)
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                outputs["status"] = msg["content"]["status"]
        while not outputs["idle"]:  # the outputs of a request end with its idle status
            self._drain(msg_id, outputs, 30.0)
        return outputs

    def _drain(self, msg_id: str, outputs: dict[str, Any], timeout: float) -> None:
        """Collect the request's outputs from IOPub until none is waiting (or it went idle)."""
        while not outputs["idle"]:
            try:
                msg = self.kc.get_iopub_msg(timeout=timeout)
            except queue.Empty:
                return
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content["name"] == "stdout":
                outputs["stdout"] += content["text"]
            elif kind == "execute_result":
                outputs["result"] = content["data"].get("text/plain")
            elif kind == "status" and content["execution_state"] == "idle":
                outputs["idle"] = True

    def kill_and_restart(self) -> None:
        pid = int(self.km.provisioner.pid)  # type: ignore[union-attr]
        os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + 10
        while self.km.is_alive() and time.monotonic() < end:
            time.sleep(0.005)
        self.km.restart_kernel(now=True)
        self.kc.wait_for_ready(timeout=READY_TIMEOUT)

    def shutdown(self) -> None:
        try:
            self.kc.stop_channels()
            self.km.shutdown_kernel(now=True)
        finally:
            self._log.close()


def _read_runs(path: Path) -> list[int]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [int(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def run(
    kills: int,
    *,
    items: int = 40,
    seed: int | None = None,
    workdir: Path | None = None,
    progress: Callable[[Report], None] | None = None,
    shape: str = "flat",
) -> Report:
    """SIGKILL a kernel ``kills`` times at random moments of resumable loops; -> the `Report`."""
    seed = random.randrange(2**32) if seed is None else seed
    rng = random.Random(seed)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="nbresume-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if shape not in CELLS:
        raise ValueError(f"shape {shape!r} is not one of {', '.join(CELLS)}")
    if shape == "nested" and items % 8:
        raise ValueError(f"--shape nested needs a multiple of 8 items, not {items}")
    report = Report(items=items, seed=seed, shape=shape)
    start = time.monotonic()
    kernel = _Kernel(workdir)
    try:
        while report.kills < kills:
            _round(kernel, workdir, report, rng=rng, kills=kills, progress=progress)
    finally:
        kernel.shutdown()
        report.seconds = time.monotonic() - start
    return report


def _round(
    kernel: _Kernel,
    workdir: Path,
    report: Report,
    *,
    rng: random.Random,
    kills: int,
    progress: Callable[[Report], None] | None,
) -> None:
    """Kill-restart-rerun one round until its cell finishes; check it against an uninterrupted run."""
    round_, items = report.rounds, report.items
    report.rounds += 1
    runs = workdir / f"runs-{round_}.txt"
    cell = cell_source(round_, items, report.shape)
    cycles: list[tuple[list[int], bool]] = []
    finished: dict[str, Any] | None = None
    for _ in range(ROUND_CYCLES):
        kernel.run(SETUP)
        before = len(_read_runs(runs))
        if report.kills < kills:
            done = len(set(_read_runs(runs)))
            delay = rng.uniform(0, (items - done) * ITEM_SECONDS + SLACK_SECONDS)
            finished = kernel.execute_for(cell, delay)
        else:  # the kills are spent: finish this round
            finished = kernel.execute_for(cell, 600.0)
        started = _read_runs(runs)[before:]
        cycles.append((started, finished is None))
        if finished is not None:
            break
        report.kills += 1
        if not started:
            report.kills_without_item += 1
        elif started[-1] == items - 1:
            report.kills_after_last_item += 1
        kernel.kill_and_restart()
        if progress is not None:
            progress(report)
    else:
        report.mismatched.append(f"round {round_}: not finished after {ROUND_CYCLES} cycles")
        return
    counted = tally(cycles)
    report.item_runs += counted.item_runs
    report.extra_runs += counted.extra_runs
    report.in_flight_reruns += counted.in_flight_reruns
    expected = [i * i for i in range(items)]
    results = kernel.eval("results")
    results = results if isinstance(results, list) else []
    report.lost += sum(max(0, expected.count(v) - results.count(v)) for v in set(expected))
    problems = []
    if finished is None or finished["status"] != "ok":
        problems.append(f"status {None if finished is None else finished['status']}")
    if results != expected:
        problems.append(f"results {results!r:.200}")
    if kernel.eval("total") != sum(range(items)):
        problems.append(f"total {kernel.eval('total')!r}")
    if finished is not None and finished["stdout"] != expected_stdout(round_, items):
        problems.append(f"stdout {finished['stdout']!r:.300}")
    if finished is not None and finished["result"] != repr(sum(range(items))):
        problems.append(f"result {finished['result']!r}")
    if problems:
        report.mismatched.append(
            f"round {round_} ({len(cycles) - 1} kills): " + "; ".join(problems)
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=200, help="SIGKILLs in all (default 200)")
    parser.add_argument("--items", type=int, default=40, help="items per loop (default 40)")
    parser.add_argument("--seed", type=int, help="random seed (default: random, printed)")
    parser.add_argument("--dir", type=Path, help="working directory (default: a new temp dir)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--shape", choices=sorted(CELLS), default="flat", help="how the loop is written"
    )
    args = parser.parse_args(argv)

    def tell(report: Report) -> None:
        if report.kills % 10 == 0:
            print(
                f"  {report.kills} kills, {report.rounds} rounds, "
                f"{report.extra_runs} extra runs, {len(report.mismatched)} mismatched",
                file=sys.stderr,
                flush=True,
            )

    report = run(
        args.kills,
        items=args.items,
        seed=args.seed,
        workdir=args.dir,
        progress=tell,
        shape=args.shape,
    )
    if args.json:
        print(json.dumps({**asdict(report), "ok": report.ok}, indent=2))
    else:
        print(report.summary())
        for line in report.mismatched:
            print("  " + line)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
