"""``%checkpoint status | list | clear | dir``: the phase table and the line commands' errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

from kernel_helpers import KernelPool, note_kinds, notes, read_runs, wait_until
from nbresume import checkpoint

FIRST = """\
%%checkpoint first
x = 1
"""
SWEEP = """\
%%checkpoint sweep
total = 0
for i in resumable(range(10), desc="items"):
    total += i
"""


def status(run_cell: Callable[..., Any]) -> tuple[str, str]:
    """``%checkpoint status`` -> (text/plain, text/html) of its one marked display."""
    run = run_cell("%checkpoint status")
    assert run.error is None, run.error
    (shown,) = run.notes
    assert shown.metadata == {"nbresume": {"view": "status"}}
    assert not run.outputs  # nothing but the marked display
    return shown.data["text/plain"], shown.data["text/html"]


def row(text: str, name: str) -> list[str]:
    (line,) = [line for line in text.splitlines() if line.split()[:1] == [name]]
    return line.split()


def restart(shell: Any) -> None:
    """What a kernel restart does to nbresume: the phases run in the kernel are forgotten."""
    checkpoint.phases.clear()


def write_notebook(path: Path, *sources: str) -> None:
    cells = [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": s}
        for s in sources
    ]
    path.write_text(
        json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    )


def test_status_shows_each_phase_with_its_status_loops_and_size(
    run_cell: Callable[..., Any],
) -> None:
    assert run_cell(FIRST).error is None
    assert run_cell(SWEEP).error is None
    text, page = status(run_cell)
    assert text.splitlines()[0].split()[:2] == ["phase", "status"]
    assert row(text, "first")[1] == "done"
    sweep = row(text, "sweep")
    assert sweep[1] == "done"
    assert "items 10/10" in " ".join(sweep)
    assert "store " in text.splitlines()[-1]
    assert page.count("<tr>") == 3
    assert page.count('class="nbresume-status"') == 2


def test_after_a_restart_phases_are_pending_then_restored_when_re_run(
    run_cell: Callable[..., Any], shell: Any
) -> None:
    assert run_cell(FIRST).error is None
    restart(shell)
    assert row(status(run_cell)[0], "first")[1] == "pending"
    assert run_cell(FIRST).error is None  # a hit
    assert row(status(run_cell)[0], "first")[1] == "restored"


def test_a_phase_whose_cell_changed_in_the_notebook_is_stale(
    run_cell: Callable[..., Any], shell: Any, tmp_path: Path
) -> None:
    assert run_cell(FIRST).error is None
    assert run_cell(SWEEP).error is None
    notebook = tmp_path / "work.ipynb"
    shell.user_ns["__session__"] = str(notebook)  # what ipykernel sets from JupyterLab's session
    write_notebook(notebook, "%load_ext nbresume", FIRST + "\n\n", SWEEP.replace("10", "20"))
    text, page = status(run_cell)
    assert row(text, "first")[1] == "done"  # same source (trailing blank lines do not count)
    assert row(text, "sweep")[1] == "stale"
    assert ">stale</span>" in page
    restart(shell)
    assert row(status(run_cell)[0], "first")[1] == "pending"
    assert row(status(run_cell)[0], "sweep")[1] == "stale"


def test_without_a_notebook_file_status_says_stale_cannot_be_told(
    run_cell: Callable[..., Any],
) -> None:
    assert run_cell(FIRST).error is None
    assert "stale cells cannot be told" in status(run_cell)[0]


def test_an_interrupted_loop_shows_interrupted_with_its_progress_after_a_restart(
    run_cell: Callable[..., Any], shell: Any
) -> None:
    cell = """\
%%checkpoint stopped --every 1
import time
for i in resumable(range(10), desc="items"):
    time.sleep(0.03)
    if i == 3:
        raise KeyboardInterrupt
"""
    assert isinstance(run_cell(cell).error, KeyboardInterrupt)
    assert row(status(run_cell)[0], "stopped")[1] == "interrupted"
    restart(shell)
    stopped = row(status(run_cell)[0], "stopped")
    assert stopped[1] == "interrupted"
    assert "3/10" in stopped


def test_list_prints_the_table_as_text(run_cell: Callable[..., Any]) -> None:
    assert run_cell(FIRST).error is None
    run = run_cell("%checkpoint list")
    assert run.error is None
    assert row(run.stdout, "first")[1] == "done"
    assert not run.notes


def test_an_empty_store_says_so(run_cell: Callable[..., Any]) -> None:
    assert status(run_cell)[0].startswith("no checkpoints yet")


def test_clear_removes_one_phase_or_all(run_cell: Callable[..., Any]) -> None:
    assert run_cell(FIRST).error is None
    assert run_cell(SWEEP).error is None
    run = run_cell("%checkpoint clear first")
    assert run.stdout.startswith("cleared phase 'first'")
    text = status(run_cell)[0]
    assert "first" not in text
    assert row(text, "sweep")
    assert run_cell("%checkpoint clear --all").stdout.startswith("cleared ")
    assert status(run_cell)[0].startswith("no checkpoints yet")


def test_dir_moves_the_store(run_cell: Callable[..., Any], tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    run = run_cell(f"%checkpoint dir {target}")
    assert run.stdout.strip() == str(target)
    assert run_cell(FIRST).error is None
    assert (target / "cache.db").exists()
    assert run_cell("%checkpoint dir").stdout.strip() == str(target)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "needs a command"),
        ("frobnicate", "unknown command 'frobnicate'"),
        ("status now", "takes no arguments"),
        ("list all", "takes no arguments"),
        ("clear", "takes NAME or --all"),
        ("clear a b", "takes NAME or --all"),
        ("clear --all extra", "takes NAME or --all"),
        ("clear --force", "takes NAME or --all"),
        ("clear nothing-here", "no phase named 'nothing-here'"),
        ("dir a b", "takes one PATH"),
        ("clear 'unbalanced", "cannot parse"),
    ],
)
def test_bad_arguments_are_one_line_usage_errors(shell: Any, line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        shell.run_line_magic("checkpoint", line)
    assert "\n" not in str(caught.value)


# -- a real kernel: killed mid-loop, restarted -----------------------------------------------


@pytest.mark.kernel
def test_after_a_kernel_is_killed_mid_loop_status_shows_interrupted_and_pending(
    kernels: KernelPool,
) -> None:
    kernel = kernels.start()
    kernel.run("%load_ext nbresume")
    kernel.run(FIRST)
    sweep = """\
%%checkpoint sweep --every 1
import time
for i in resumable(range(100), desc="items"):
    with open("runs.txt", "a") as f:
        f.write(f"{i}\\n")
    time.sleep(0.05)
"""
    kernel.submit(sweep)
    runs = kernel.workdir / "runs.txt"
    # past 1.5 s: the engine rewrites its progress record once a second
    assert wait_until(lambda: len(read_runs(runs)) >= 30, 60), "the loop did not run"
    kernel.kill()
    kernel.restart()
    kernel.run("%load_ext nbresume")
    (shown,) = notes(kernel.run("%checkpoint status"))
    text = shown["data"]["text/plain"]
    assert row(text, "first")[1] == "pending"
    items = row(text, "sweep")
    assert items[1] == "interrupted"
    assert any(part.endswith("/100") for part in items), text


def test_status_the_command_line_the_dashboard_and_the_api_agree_on_sizes(
    run_cell: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import cli
    from nbresume._progress import format_size
    from nbresume.server._dashboard import read_store
    from nbresume.server._notebook import read_notebook

    cells = [
        "%%checkpoint small\nx = 1\n",  # kept in the database row
        "%%checkpoint big\nblob = bytes(100_000)\n",  # in a value file
        "%%checkpoint big\nblob = bytes(100_001)\n",  # a second version of it
        "%%checkpoint halted --every 1\nfor i in resumable(range(5)):\n"
        "    if i == 3:\n        raise ValueError('stop')\n",  # a snapshot, no version
    ]
    for cell in cells:
        run_cell(cell)
    restart(None)
    store = tmp_path / ".nbresume"
    sizes = {row["name"]: row["size"] for row in read_store(store)["phases"]}
    assert sizes.keys() == {"small", "big", "halted"}
    assert all(size > 0 for size in sizes.values()), sizes
    assert sizes["big"] > 200_000  # both versions count: they are both on disk
    assert {row["name"]: row["size"] for row in read_notebook(store)["phases"]} == sizes

    text, _ = status(run_cell)
    code, out, _ = cli(capsys, "status")
    assert code == 0
    code, document, _ = cli(capsys, "status", "--json")
    assert code == 0
    in_json = {row["name"]: row["size"] for row in json.loads(document)["phases"]}
    assert in_json == sizes
    for name, size in sizes.items():
        assert " ".join(row(text, name)[-2:]) == format_size(size), (name, text)
        assert " ".join(row(out, name)[-2:]) == format_size(size), (name, out)
    whole = format_size(read_store(store)["size"])  # the store's, sqlite's pages included
    assert f"({whole})" in text.splitlines()[-1], text
    assert f", {whole} in " in out, out


def test_a_restored_phase_keeps_its_loop_progress_in_every_view(
    run_cell: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import cli
    from nbresume.server._dashboard import read_store
    from nbresume.server._notebook import read_notebook

    assert run_cell(SWEEP).error is None
    restart(None)
    again = run_cell(SWEEP)
    assert again.error is None
    assert any(n.metadata["nbresume"].get("kind") == "restored" for n in again.notes)
    text, _ = status(run_cell)
    assert row(text, "sweep")[1] == "restored"
    assert "10/10" in " ".join(row(text, "sweep")), text
    store = tmp_path / ".nbresume"
    for view in (read_store(store), read_notebook(store)):
        (phase,) = view["phases"]
        assert phase["status"] == "restored"
        assert (phase["progress"]["done"], phase["progress"]["total"]) == (10, 10)
        assert phase["progress"]["elapsed"] == pytest.approx(phase["duration"], abs=0.05)
        ((loop),) = phase["progress"]["loops"]
        assert (loop["desc"], loop["done"], loop["total"]) == ("items", 10, 10)
    code, out, _ = cli(capsys, "status")
    assert code == 0
    assert "10/10" in " ".join(row(out, "sweep")), out
    restart(None)  # and in the next kernel, before anything runs
    assert "10/10" in " ".join(row(status(run_cell)[0], "sweep"))


SLOW_SWEEP = """\
%%checkpoint sweep --every 1
import time
for i in resumable(range(40), desc="items"):
    with open("runs.txt", "a") as f:
        f.write(f"{i}\\n")
    time.sleep(0.05)
"""


@pytest.mark.kernel
@pytest.mark.parametrize("stop", ["sigkill", "kernel-menu-restart"])
def test_a_loop_stopped_by_a_kill_or_a_restart_shows_interrupted_then_resumes_once(
    kernels: KernelPool, stop: str
) -> None:
    from nbresume._store import StoreReader
    from nbresume.server._notebook import read_notebook

    kernel = kernels.start()
    kernel.run("%load_ext nbresume")
    kernel.submit(SLOW_SWEEP)
    runs = kernel.workdir / "runs.txt"
    assert wait_until(lambda: len(read_runs(runs)) >= 10, 60), "the loop did not run"
    if stop == "sigkill":
        kernel.kill()
        kernel.restart()
    else:  # JupyterLab's Kernel > Restart: SIGINT, shutdown_request, SIGTERM, SIGKILL
        kernel.restart(now=False)
    store = kernel.workdir / ".nbresume"
    (phase,) = read_notebook(store)["phases"]
    assert phase["status"] == "interrupted", phase
    with StoreReader(store) as reader:
        progress = reader.get_json("progress:sweep")
    assert phase["saved"] is not None
    assert progress["done"] == phase["saved"], (progress["loops"], phase)  # kept up
    assert phase["saved"] >= 9  # 10 items started

    kernel.run("%load_ext nbresume")
    (shown,) = notes(kernel.run("%checkpoint status"))
    assert row(shown["data"]["text/plain"], "sweep")[1] == "interrupted"
    resumed = kernel.run(SLOW_SWEEP)
    assert "resuming" in note_kinds(resumed)
    kernel.restart()
    kernel.run("%load_ext nbresume")
    restored = kernel.run(SLOW_SWEEP)
    (note,) = [n for n in notes(restored) if n["metadata"]["nbresume"].get("kind") == "restored"]
    assert note["data"]["text/plain"].endswith(", resumed once"), note
    (history,) = notes(kernel.run("%checkpoint history sweep"))
    assert "resumed once" in history["data"]["text/plain"]
    assert "first run" not in history["data"]["text/plain"]
