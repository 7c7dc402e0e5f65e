"""``nbresume run`` through its console script with real kernels: a cell that times out, a
SIGTERM to the command, a kernel that dies before nbresume is loaded. Counts what ran through
the file the cells append to."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path

import nbformat
import pytest

from kernel_helpers import kernel_env, read_runs, wait_until
from test_cli import BIN, MARK, alive, write_notebook

pytestmark = pytest.mark.kernel


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux: /proc)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(n) for n in text.split()]


def start_run(folder: Path, notebook: Path) -> subprocess.Popen[str]:
    """``nbresume run NOTEBOOK`` in ``folder``, in the background, its output piped."""
    return subprocess.Popen(
        [str(BIN / "nbresume"), "run", notebook.name],
        cwd=folder,
        env=kernel_env(folder),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def nbresume(folder: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "nbresume"), *argv],
        cwd=folder,
        env=kernel_env(folder),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_a_timed_out_loop_keeps_its_progress_says_so_in_one_line_and_the_next_run_resumes(
    tmp_path: Path,
) -> None:
    """The kernel is shut down while the cell runs: its socket errors stay out of stderr."""
    nb = write_notebook(
        tmp_path / "hang.ipynb",
        "%load_ext nbresume\n" + MARK,
        """
        %%checkpoint sweep --every 1
        for i in resumable(range(6)):
            mark(i)
            if i == 3 and not os.path.exists("go"):
                time.sleep(600)
        print("finished")
        """,
    )
    first = nbresume(tmp_path, "run", nb.name, "--timeout", "20")
    assert first.returncode == 1, first.stdout + first.stderr
    assert first.stderr.count("\n") == 1, first.stderr
    assert first.stderr.startswith("nbresume: error: code cell 2 (%%checkpoint sweep --every 1) ")
    assert "timed out after 20s (--timeout)" in first.stderr
    assert "checkpoints are kept: run again to resume" in first.stderr
    assert read_runs(tmp_path / "ran.txt") == [0, 1, 2, 3]
    (tmp_path / "go").touch()
    second = nbresume(tmp_path, "run", nb.name, "--timeout", "20")
    assert (second.returncode, second.stderr) == (0, ""), second.stdout + second.stderr
    assert "(resumed after 3 items)" in second.stdout
    assert Counter(read_runs(tmp_path / "ran.txt")) == {0: 1, 1: 1, 2: 1, 3: 2, 4: 1, 5: 1}
    executed = nbformat.read(tmp_path / "hang.out.ipynb", as_version=4)
    assert "finished" in str(executed.cells[1].outputs)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_run_and_its_kernel_without_a_retry(
    tmp_path: Path, stop: signal.Signals
) -> None:
    nb = write_notebook(
        tmp_path / "long.ipynb",
        MARK + "\nfrom pathlib import Path\nPath('kernel.pid').write_text(str(os.getpid()))",
        "%%checkpoint long --every 1\nfor i in resumable(range(500)):\n    mark(i)\n    time.sleep(0.1)",
    )
    process = start_run(tmp_path, nb)
    try:
        assert wait_until(lambda: len(read_runs(tmp_path / "ran.txt")) >= 2, 60)
        kernel = int((tmp_path / "kernel.pid").read_text())
        process.send_signal(stop)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + stop, out + err  # 130 for Ctrl-C, as a shell reports it
    assert f"[2/2] %%checkpoint long --every 1 ... stopped by {stop.name}" in out
    assert "retry" not in out
    assert (
        err
        == f"nbresume: error: stopped by {stop.name}; checkpoints are kept: run again to resume\n"
    )
    assert wait_until(lambda: not alive(kernel), 10)
    assert len(read_runs(tmp_path / "ran.txt")) < 500
    assert (tmp_path / "long.out.ipynb").is_file()


def test_a_kernel_death_before_nbresume_is_loaded_is_retried(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "early.ipynb",
        MARK + "\nmark(100)\nif not os.path.exists('died'):\n    open('died', 'w').close()\n"
        "    os._exit(9)",
        "%load_ext nbresume",
        "%%checkpoint a\nmark(200)\nx = 1",
    )
    done = nbresume(tmp_path, "run", nb.name, "-o", "-")
    assert (done.returncode, done.stdout.count('"cells"')) == (0, 1), done.stderr
    assert "kernel died (exit code 9), retry 1/3" in done.stderr
    assert read_runs(tmp_path / "ran.txt") == [100, 100, 200]
    executed = nbformat.reads(done.stdout, as_version=4)
    assert executed.metadata["nbresume"] == {"attempts": 2, "kernel_deaths": ["exit code 9"]}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_kernel_starts_stops_in_one_line_and_leaves_no_kernel(
    tmp_path: Path, signum: int
) -> None:
    """Before any cell runs, nbclient's own handlers (kill the kernel, go on) and asyncio's
    (a CancelledError traceback) were in charge."""
    nb = write_notebook(tmp_path / "quick.ipynb", MARK + "\nmark(1)", "mark(2)")
    # NB. a kernel that takes a minute to start: the signal comes while it starts, however fast
    # or loaded the machine is
    startup = tmp_path / ".ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-slow.py").write_text("import time\ntime.sleep(60)\n")
    process = start_run(tmp_path, nb)
    try:
        assert wait_until(lambda: bool(children(process.pid)), 60)
        kernels = children(process.pid)
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum, out + err
    assert err == f"nbresume: error: stopped by {name}; checkpoints are kept: run again to resume\n"
    assert "ran " not in out
    assert wait_until(lambda: not any(alive(k) for k in kernels), 10)
    assert read_runs(tmp_path / "ran.txt") == []


def test_a_papermill_run_whose_kernel_dies_resumes_when_run_again(tmp_path: Path) -> None:
    pytest.importorskip("papermill")
    nb = write_notebook(
        tmp_path / "pm.ipynb",
        "n = 6",
        "%load_ext nbresume\n" + MARK,
        """
        %%checkpoint sweep --every 1
        out = []
        for i in resumable(range(n)):
            mark(i)
            if i == 3 and not os.path.exists("died"):
                open("died", "w").close()
                os._exit(1)
            out.append(i)
        print("sum", sum(out))
        """,
        tags={0: ["parameters"]},
    )
    argv = [str(BIN / "papermill"), nb.name, "out.ipynb", "-p", "n", "6", "--cwd", str(tmp_path)]
    env = kernel_env(tmp_path)
    first = subprocess.run(
        argv, cwd=tmp_path, env=env, capture_output=True, timeout=120, check=False
    )
    assert first.returncode != 0
    assert read_runs(tmp_path / "ran.txt") == [0, 1, 2, 3]
    subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, timeout=120, check=True)
    assert Counter(read_runs(tmp_path / "ran.txt")) == {0: 1, 1: 1, 2: 1, 3: 2, 4: 1, 5: 1}
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert "sum 15" in str(executed.cells[-1].outputs)


def test_the_output_notebook_is_what_nbclient_writes_plus_the_run_note(tmp_path: Path) -> None:
    """Without checkpoints nbresume adds nothing to the cells: same outputs, counts, ids."""
    from nbclient import NotebookClient

    nb = write_notebook(
        tmp_path / "plain.ipynb",
        "import sys\nprint('out')\nprint('err', file=sys.stderr)",
        "from IPython.display import HTML, display\ndisplay(HTML('<b>x</b>'))\n1 + 1",
        "x = 2",
    )
    nb_in = nbformat.read(nb, as_version=4)
    nb_in.cells.insert(1, nbformat.v4.new_markdown_cell("# title"))
    nbformat.write(nb_in, nb)
    done = nbresume(tmp_path, "run", nb.name)
    assert (done.returncode, done.stderr) == (0, ""), done.stdout + done.stderr
    ours = nbformat.read(tmp_path / "plain.out.ipynb", as_version=4)
    theirs = nbformat.read(nb, as_version=4)
    NotebookClient(theirs, resources={"metadata": {"path": str(tmp_path)}}).execute()
    for cell in (*ours.cells, *theirs.cells):
        cell.metadata.pop("execution", None)
    assert ours.cells == theirs.cells
    assert ours.metadata.pop("nbresume") == {"attempts": 1, "kernel_deaths": []}
    assert ours.metadata == theirs.metadata


def test_a_second_run_of_a_notebook_being_run_is_refused_in_one_line(tmp_path: Path) -> None:
    """Two runs (a cron job overlapping, a double launch) would both run the same loop."""
    nb = write_notebook(
        tmp_path / "long.ipynb",
        MARK,
        "%%checkpoint long --every 1\nfor i in resumable(range(500)):\n    mark(i)\n    time.sleep(0.1)",
    )
    process = start_run(tmp_path, nb)
    try:
        assert wait_until(lambda: len(read_runs(tmp_path / "ran.txt")) >= 1, 60)
        second = nbresume(tmp_path, "run", str(tmp_path / "." / nb.name), "-o", "other.ipynb")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert second.returncode == 1
    assert second.stdout == ""
    assert second.stderr.count("\n") == 1, second.stderr
    assert "another nbresume run is running" in second.stderr
    assert not (tmp_path / "other.ipynb").exists()
    assert process.returncode == 128 + signal.SIGTERM, out + err


def test_a_run_piped_into_a_reader_that_leaves_still_runs_and_writes_its_notebook(
    tmp_path: Path,
) -> None:
    """``nbresume run nb.ipynb | head -1``: the run wrote no notebook and said exit 0."""
    nb = write_notebook(tmp_path / "piped.ipynb", MARK + "\nmark(1)", "mark(2)")
    process = start_run(tmp_path, nb)
    assert process.stdout is not None
    process.stdout.close()  # the reader left before the first line
    _, err = process.communicate(timeout=120)
    assert (process.returncode, err) == (0, "")
    assert read_runs(tmp_path / "ran.txt") == [1, 2]
    executed = nbformat.read(tmp_path / "piped.out.ipynb", as_version=4)
    assert executed.metadata["nbresume"]["attempts"] == 1
