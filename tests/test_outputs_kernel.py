"""Outputs in real kernels: only the cell's own output is recorded (not other threads', not the
kernel's), the result keeps its place and its recorded form, C-level and big outputs replay."""

from __future__ import annotations

import json
import queue
from typing import Any

import pytest

from kernel_helpers import KernelPool, note_kinds, own_outputs, read_runs, stdout_of

pytestmark = pytest.mark.kernel

# NB. matplotlib imported up front, as a notebook's first cell would: a plotting cell has
# rcParams as an input, and "not imported yet" (the state after a restart) is another state
SETUP = """\
%load_ext nbresume
import matplotlib.pyplot
def mark(i):
    with open("runs.txt", "a") as f:
        f.write(f"{i}\\n")
"""


def _plain(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in o.items() if k != "execution_count"} for o in own_outputs(outputs)]


def _stderr_of(outputs: list[dict[str, Any]]) -> str:
    return "".join(
        o["text"] for o in outputs if o["output_type"] == "stream" and o["name"] == "stderr"
    )


THREADS = """\
%%checkpoint chatter --exclude noise,stop
import logging, sys, threading, time
mark(0)
stop = threading.Event()
def noise():
    log = logging.getLogger("background")
    while not stop.is_set():
        sys.stderr.write("thread stderr\\n")
        print("thread stdout")
        log.warning("thread log")
        time.sleep(0.005)
noise = threading.Thread(target=noise, daemon=True)
noise.start()
for i in range(5):
    print("own", i)
    time.sleep(0.05)
stop.set()
noise.join()
print("own done")
"""


def test_other_threads_output_is_shown_live_but_not_replayed(kernels: KernelPool) -> None:
    kernel = kernels.start()
    kernel.run(SETUP)
    first = kernel.run(THREADS)
    assert "thread stdout" in stdout_of(first) or "thread stderr" in _stderr_of(first)
    kernel.restart()
    kernel.run(SETUP)
    again = kernel.run(THREADS)
    assert read_runs(kernel.workdir / "runs.txt") == [0]
    assert "restored" in note_kinds(again)
    assert stdout_of(again) == "".join(f"own {i}\n" for i in range(5)) + "own done\n"
    assert "thread" not in _stderr_of(again)


def _iopub_text(kernel: Any, msg_id: str) -> str:
    """Every stream text the kernel sent so far (any parent), after the reply of ``msg_id``."""
    texts = []
    while True:
        try:
            msg = kernel.kc.get_iopub_msg(timeout=2)
        except queue.Empty:
            return "".join(texts)
        if msg["msg_type"] == "stream":
            texts.append(msg["content"]["text"])


COMM_NOISE = """\
%%checkpoint awaiting
import asyncio
mark(0)
print("before")
for _ in range(40):
    await asyncio.sleep(0.05)
print("after")
"""


def test_kernel_text_for_a_comm_message_during_an_await_is_not_recorded(
    kernels: KernelPool,
) -> None:
    kernel = kernels.start()
    kernel.run(SETUP)
    msg_id = kernel.submit(COMM_NOISE)
    # a page reload: the frontend talks to a comm the kernel no longer has
    for _ in range(5):
        msg = kernel.kc.session.msg("comm_msg", {"comm_id": "no-such-comm", "data": {}})
        kernel.kc.shell_channel.send(msg)
    reply = kernel.wait_reply(msg_id)
    assert reply["status"] == "ok"
    shown = _iopub_text(kernel, msg_id)
    assert "before" in shown
    kernel.restart()
    kernel.run(SETUP)
    again = kernel.run(COMM_NOISE)
    assert read_runs(kernel.workdir / "runs.txt") == [0]
    assert "restored" in note_kinds(again)
    assert stdout_of(again) == "before\nafter\n"
    assert "comm" not in _stderr_of(again).lower()


FIGURE = """\
import numpy as np
import matplotlib.pyplot as plt
mark(0)
plt.plot([1, 3, 2])
print("plotted")
np.array([1, 2], dtype=np.int32)
"""


def test_result_and_figure_keep_the_plain_order_and_the_recorded_form(
    kernels: KernelPool,
) -> None:
    kernel = kernels.start()
    kernel.run(SETUP)
    plain = _plain(kernel.run(FIGURE))
    kinds = [o["output_type"] for o in plain]
    assert kinds == ["stream", "execute_result", "display_data"], kinds
    first = kernel.run("%%checkpoint fig\n" + FIGURE)
    assert _plain(first) == plain
    kernel.restart()
    kernel.run(SETUP)
    again = kernel.run("%%checkpoint fig\n" + FIGURE)
    assert read_runs(kernel.workdir / "runs.txt") == [0, 0]
    assert "restored" in note_kinds(again)
    assert _plain(again) == plain
    count = next(o["execution_count"] for o in again if o["output_type"] == "execute_result")
    assert kernel.eval(f"Out[{count}].dtype == np.int32") == "True"
    assert kernel.eval("_.tolist()") == "[1, 2]"


# NB. --exclude get_ipython: a `!command` makes get_ipython an input; that is _keys.py's affair
C_LEVEL = """\
%%checkpoint c-level --exclude get_ipython
import os, subprocess, sys
mark(0)
os.system("echo from-os-system")
subprocess.run(["echo", "from-subprocess"], check=True)
!echo from-bang
print("python")
"""


def test_subprocess_and_shell_output_of_the_cell_are_recorded(kernels: KernelPool) -> None:
    kernel = kernels.start()
    kernel.run(SETUP)
    first = kernel.run(C_LEVEL)
    text = stdout_of(first)
    for word in ("from-os-system", "from-subprocess", "from-bang", "python"):
        assert word in text, text
    kernel.restart()
    kernel.run(SETUP)
    again = kernel.run(C_LEVEL)
    assert "restored" in note_kinds(again), json.dumps(again)[:2000]
    assert read_runs(kernel.workdir / "runs.txt") == [0]
    replayed = stdout_of(again)
    for word in ("from-os-system", "from-subprocess", "from-bang", "python"):
        assert word in replayed, replayed


BIG = """\
%%checkpoint big
mark(0)
for i in range(40_000):
    print(f"row {i:>6} " + "x" * 90)
"""


def test_four_megabytes_of_print_replay_byte_identically_after_a_restart(
    kernels: KernelPool,
) -> None:
    kernel = kernels.start()
    kernel.run(SETUP)
    first = stdout_of(kernel.run(BIG, timeout=120))
    assert len(first) > 4_000_000
    kernel.restart()
    kernel.run(SETUP)
    again = kernel.run(BIG, timeout=120)
    assert read_runs(kernel.workdir / "runs.txt") == [0]
    assert stdout_of(again) == first
