"""The ``nbresume`` command line, through ``main(argv)``; ``run`` end to end with real kernels.

Store content comes from real ``%%checkpoint`` cells in the in-process shell (conftest's
``run_cell``), whose working directory is the test's tmp_path, so ``./.nbresume`` is the store
the commands find by default. Kernel tests count what ran through files the cells append to.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest

from conftest import CellRun, cli, runs
from kernel_helpers import kernel_env, own_outputs, read_runs, stdout_of, wait_until
from nbresume import StoreError, _store
from nbresume._globalstate import PSEUDO_INPUTS
from nbresume._run import Report, cell_label, loads_extension

RunCell = Callable[..., CellRun]
BIN = Path(sys.executable).parent  # the venv's scripts: nbresume, papermill


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("nbresume: error: "), err
    return lines[0]


def reopen_stores() -> None:
    """Forget opened stores (each caches its signing key), as a new process would."""
    for store in _store._stores.values():
        store.close()
    _store._stores.clear()


# -- usage --------------------------------------------------------------------------------------


def test_help_lists_every_command_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "--help")
    assert code == 0
    for command in ("run", "list", "show", "status", "clear", "gc", "trust", "install"):
        assert f"\n    {command} " in out
    assert "examples:" in out
    assert "nbresume run train.ipynb" in out
    code, out, _ = cli(capsys, "run", "--help")
    assert code == 0
    assert ".out.ipynb" in out
    assert "--retries N" in out


def test_help_does_not_import_the_heavy_modules() -> None:
    code = (
        "import sys; from nbresume.cli import main; main(['--help']); "
        "print(sorted(m for m in ('nbclient', 'IPython', 'diskcache') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.splitlines()[-1] == "[]"


def test_python_dash_m_nbresume_is_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nbresume", "frobnicate"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("nbresume: ")
    assert "frobnicate" in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["run"],
        ["run", "nb.ipynb", "--retries", "-1"],
        ["run", "nb.ipynb", "--timeout", "soon"],
        ["clear"],
        ["clear", "train", "--all"],
        ["gc"],
        ["gc", "--older-than", "7"],
        ["gc", "--keep-last", "0"],
        ["show"],
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, *argv)
    assert code == 2
    assert out == ""
    assert "--help" in one_error_line(err)


def test_run_with_a_missing_or_broken_notebook_fails_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = cli(capsys, "run", str(tmp_path / "missing.ipynb"))
    assert out == ""
    assert code == 1
    assert "no such notebook" in one_error_line(err)
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    code, _, err = cli(capsys, "run", str(broken))
    assert code == 1
    assert "cannot read" in one_error_line(err)
    assert not (tmp_path / "broken.out.ipynb").exists()


def test_store_commands_need_an_existing_store_and_never_create_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NBRESUME_DIR", raising=False)
    for argv in (["list"], ["show", "x"], ["status", "--json"], ["clear", "--all"], ["trust", "."]):
        code, _, err = cli(capsys, *argv)
        assert code == 1, argv
        assert "no checkpoint store" in one_error_line(err) or "not a checkpoint store" in err
    assert not (tmp_path / ".nbresume").exists()


# -- list, show, status -------------------------------------------------------------------------

SCALE = "%%checkpoint scale\ntick('scale')\nscaled = [alpha * x for x in range(1000)]\nlen(scaled)"
FIXED = "%%checkpoint fixed\ntick('fixed')\nanswer = 42\nprint(answer)"
BROKEN = "%%checkpoint broken\ntick('broken')\nraise ValueError('no data')"


def make_phases(shell: Any, run_cell: RunCell, alphas: tuple[int, ...] = (1,)) -> None:
    """Phase ``scale``: one version per alpha (newest last); ``fixed``: done; ``broken``: failed."""
    for alpha in alphas:
        shell.user_ns["alpha"] = alpha
        assert run_cell(SCALE).error is None
    assert run_cell(FIXED).error is None
    assert isinstance(run_cell(BROKEN).error, ValueError)


def test_list_shows_each_phase_with_its_status_age_and_size(
    shell: Any, run_cell: RunCell, capsys: pytest.CaptureFixture[str]
) -> None:
    make_phases(shell, run_cell)
    code, out, err = cli(capsys, "list")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["phase", "status", "last", "run", "duration", "loops", "size"]
    rows = {line.split()[0]: line.split() for line in lines[1:4]}
    assert {name: row[1] for name, row in rows.items()} == {
        "scale": "done",
        "fixed": "done",
        "broken": "failed",
    }
    assert rows["scale"][-1] in ("B", "KB")
    assert lines[-1].startswith("3 phases, ")
    assert str(Path(".nbresume").absolute()) in lines[-1]
    assert lines[-1].endswith(("last change 0s ago", "last change 1s ago"))


def test_list_accepts_the_notebook_folder_as_dir(
    shell: Any,
    run_cell: RunCell,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    make_phases(shell, run_cell)
    monkeypatch.chdir("/")
    code, out, err = cli(capsys, "list", "--dir", str(tmp_path))
    assert code == 0, err
    assert "scale" in out


def test_show_lists_versions_newest_first_with_why_they_differ_and_their_inputs(
    shell: Any, run_cell: RunCell, capsys: pytest.CaptureFixture[str]
) -> None:
    make_phases(shell, run_cell, alphas=(1, 2))
    code, out, err = cli(capsys, "show", "scale")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("phase 'scale': done, last change ")
    assert "2 versions" in lines[0]
    assert lines[1].lstrip().startswith("#1 ")
    assert "input 'alpha' changed" in lines[1]
    assert "[cell:scale:" in lines[1]
    assert "KB" in lines[1]
    first, second = (dict(f.split("=") for f in lines[i].split()[1:]) for i in (2, 4))
    assert lines[2].split()[0] == "inputs:"
    # the cell shows a value: pandas' and numpy's print options are inputs once an earlier test
    # imported them, as in a notebook that did
    assert set(first) - set(PSEUDO_INPUTS) == {"alpha", "tick"}
    assert "the oldest kept" in lines[3]
    assert first["tick"] == second["tick"]
    assert first != second  # alpha's fingerprints differ


def test_show_of_an_unknown_phase_fails_in_one_line(
    shell: Any, run_cell: RunCell, capsys: pytest.CaptureFixture[str]
) -> None:
    make_phases(shell, run_cell)
    code, _, err = cli(capsys, "show", "nope")
    assert code == 1
    assert "no phase named 'nope'" in one_error_line(err)


INTERRUPTED = """%%checkpoint sweep --every 1
tick('sweep')
squares = []
for i in resumable(range(10)):
    if i == 4:
        raise RuntimeError('bad item')
    squares.append(i * i)
"""


def mark_running(name: str, pid: int) -> None:
    """Make ``name`` look as a kernel with ``pid`` running it would (its progress record)."""
    store = _store.open_store()
    record = store.get_json(f"progress:{name}")
    record.update(status="running", pid=pid, updated=time.time())
    store.put_json(f"progress:{name}", record)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_status_json_holds_phases_timestamps_and_loop_progress(
    shell: Any, run_cell: RunCell, capsys: pytest.CaptureFixture[str]
) -> None:
    make_phases(shell, run_cell)
    assert isinstance(run_cell(INTERRUPTED).error, RuntimeError)
    code, out, err = cli(capsys, "status", "--json")
    assert code == 0, err
    state = json.loads(out)
    assert state["store"] == str(Path(".nbresume").absolute())
    assert state["size"] > 0
    assert state["running"] == 0
    phases = {p["name"]: p for p in state["phases"]}
    assert set(phases) == {"scale", "fixed", "broken", "sweep"}
    scale = phases["scale"]
    assert (scale["kind"], scale["status"], scale["versions"]) == ("phase", "done", 1)
    started = dt.datetime.fromisoformat(scale["started"])
    completed = dt.datetime.fromisoformat(scale["completed"])
    assert started.tzinfo is not None
    assert abs(started.timestamp() - time.time()) < 60
    assert started <= completed <= dt.datetime.fromisoformat(scale["updated"])
    broken = phases["broken"]
    assert broken["status"] == "failed"
    assert broken["completed"] is None  # its last run raised: when it began, never completed
    assert abs(dt.datetime.fromisoformat(broken["started"]).timestamp() - time.time()) < 60
    sweep = phases["sweep"]
    assert (sweep["status"], sweep["resumable"], sweep["running"]) == ("failed", True, False)
    assert (sweep["progress"]["done"], sweep["progress"]["total"]) == (4, 10)
    dt.datetime.fromisoformat(sweep["last_snapshot"])


def test_status_tells_a_dead_run_from_a_running_one(
    shell: Any, run_cell: RunCell, capsys: pytest.CaptureFixture[str]
) -> None:
    assert isinstance(run_cell(INTERRUPTED).error, RuntimeError)
    mark_running("sweep", dead_pid())  # as a SIGKILL mid-loop leaves it
    code, out, err = cli(capsys, "status")
    assert code == 0, err
    assert out.splitlines()[1].split()[:2] == ["sweep", "interrupted"]
    assert "sweep: interrupted: 4/10 items" in out
    assert "re-run the cell to resume" in out
    mark_running("sweep", os.getpid())
    code, out, err = cli(capsys, "status", "--json")
    assert code == 0, err
    [sweep] = json.loads(out)["phases"]
    assert (sweep["status"], sweep["running"]) == ("running", True)
    assert sweep["completed"] is None


# -- clear, gc, trust ---------------------------------------------------------------------------


def test_clear_removes_one_phase_then_everything(
    shell: Any, run_cell: RunCell, capsys: pytest.CaptureFixture[str]
) -> None:
    make_phases(shell, run_cell)
    code, out, err = cli(capsys, "clear", "scale")
    assert code == 0, err
    assert out.startswith("cleared phase 'scale'")
    store = _store.open_store()
    assert not [key for key in store.keys(prefix="") if "scale" in key]
    assert store.keys("phase:fixed")
    assert run_cell(SCALE).error is None
    assert runs("scale") == 2  # recomputed: its checkpoint is gone
    code, _, err = cli(capsys, "clear", "nope")
    assert code == 1
    assert "no phase named 'nope'" in one_error_line(err)
    code, out, err = cli(capsys, "clear", "--all")
    assert code == 0, err
    assert store.keys() == []


def test_clear_refuses_a_phase_that_is_running(
    shell: Any, run_cell: RunCell, capsys: pytest.CaptureFixture[str]
) -> None:
    make_phases(shell, run_cell)
    mark_running("fixed", os.getpid())
    for argv in (["clear", "fixed"], ["clear", "--all"]):
        code, _, err = cli(capsys, *argv)
        assert code == 1
        assert "'fixed' is running in a kernel; interrupt it first" in one_error_line(err)
    assert _store.open_store().keys("cell:fixed:")


def age_versions(phase: str, days: list[float]) -> None:
    """Backdate the versions of ``phase`` (newest first) by ``days`` and its record by the newest."""
    store = _store.open_store()
    record = store.get_json(f"phase:{phase}")
    now = time.time()
    for version, age in zip(record.get("versions", []), days, strict=False):
        version["created"] = now - age * 86400
    record["updated"] = now - days[0] * 86400
    store.put_json(f"phase:{phase}", record)


def test_gc_dry_run_says_what_would_go_and_removes_nothing(
    shell: Any, run_cell: RunCell, capsys: pytest.CaptureFixture[str]
) -> None:
    make_phases(shell, run_cell, alphas=(1, 2, 3))
    age_versions("scale", [1, 8, 9])
    store = _store.open_store()
    before = {key: store.get_json(key) for key in store.keys(prefix="")}
    code, out, err = cli(capsys, "gc", "--older-than", "7d", "--dry-run")
    assert code == 0, err
    lines = out.splitlines()
    assert sum(line.startswith("would remove 'scale' version of ") for line in lines) == 2
    assert all(line.endswith("): older than 7d") for line in lines[:2])
    assert lines[-1].startswith("would free about ")
    assert "KB" in lines[-1]
    assert {key: store.get_json(key) for key in store.keys(prefix="")} == before


def test_gc_removes_old_versions_and_keeps_the_newest_usable(
    shell: Any, run_cell: RunCell, capsys: pytest.CaptureFixture[str]
) -> None:
    make_phases(shell, run_cell, alphas=(1, 2, 3))
    age_versions("scale", [1, 8, 9])
    age_versions("broken", [30])
    store = _store.open_store()
    versions = store.get_json("phase:scale")["versions"]
    code, out, err = cli(capsys, "gc", "--older-than", "7d")
    assert code == 0, err
    assert "remove phase 'broken' (last run " in out
    assert out.splitlines()[-1].startswith("removed 5 entries, freed ")  # its event log too
    assert [v["key"] for v in store.get_json("phase:scale")["versions"]] == [versions[0]["key"]]
    assert versions[0]["key"] in store
    assert versions[1]["key"] not in store
    assert versions[2]["key"] not in store
    assert not [key for key in store.keys(prefix="") if "broken" in key]
    assert store.keys("phase:fixed")  # ran just now
    shell.user_ns["alpha"] = 3
    again = run_cell(SCALE)
    assert any(n.metadata["nbresume"].get("kind") == "restored" for n in again.notes)
    assert runs("scale") == 3
    code, out, err = cli(capsys, "gc", "--older-than", "7d")
    assert code == 0, err
    assert out.startswith("nothing to remove")


def test_gc_keep_last_and_both_rules_together(
    shell: Any, run_cell: RunCell, capsys: pytest.CaptureFixture[str]
) -> None:
    make_phases(shell, run_cell, alphas=(1, 2, 3))
    age_versions("scale", [8, 9, 10])
    store = _store.open_store()
    versions = [v["key"] for v in store.get_json("phase:scale")["versions"]]
    code, out, err = cli(capsys, "gc", "--older-than", "7d", "--keep-last", "2")
    assert code == 0, err
    assert "older than 7d and beyond the newest 2" in out
    assert [v["key"] for v in store.get_json("phase:scale")["versions"]] == versions[:2]
    code, out, err = cli(capsys, "gc", "--keep-last", "1")
    assert code == 0, err
    assert [v["key"] for v in store.get_json("phase:scale")["versions"]] == versions[:1]
    assert versions[1] not in store


def test_gc_prunes_old_loop_snapshots_but_never_a_running_phase(
    shell: Any, run_cell: RunCell, capsys: pytest.CaptureFixture[str]
) -> None:
    assert isinstance(run_cell(INTERRUPTED).error, RuntimeError)
    store = _store.open_store()
    snapshots = store.keys("snap:")
    assert snapshots
    code, out, err = cli(capsys, "gc", "--older-than", "7d")
    assert code == 0, err
    assert out.startswith("nothing to remove")
    mark_running("sweep", os.getpid())
    code, out, err = cli(capsys, "gc", "--older-than", "0s")
    assert code == 0, err
    assert "left alone while running: 'sweep'" in out
    assert store.keys("snap:") == snapshots
    mark_running("sweep", dead_pid())
    code, out, err = cli(capsys, "gc", "--older-than", "0s")
    assert code == 0, err
    assert "remove the loop snapshot of 'sweep' (saved " in out
    assert "unfinished and older than 0s" in out
    assert store.keys("snap:") == []


def test_trust_resigns_a_store_written_with_another_key(
    shell: Any,
    run_cell: RunCell,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_phases(shell, run_cell)
    entry = _store.open_store().keys("cell:fixed:")[0]
    reopen_stores()
    monkeypatch.setenv("NBRESUME_KEY", "someone-else-entirely")
    with pytest.raises(StoreError, match="not signed by your key"):
        _store.open_store().get(entry)
    reopen_stores()
    code, out, err = cli(capsys, "trust", ".nbresume")
    assert code == 0, err
    assert out.startswith("re-signed 2 entries in ")
    reopen_stores()
    assert _store.open_store().get(entry)["vars"]["answer"] == 42


# -- install / uninstall ------------------------------------------------------------------------


def test_install_creates_the_config_once_and_uninstall_deletes_what_it_created(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "etc" / "ipython" / "ipython_kernel_config.json"
    code, out, err = cli(capsys, "install", "--prefix", str(tmp_path))
    assert code == 0, err
    assert json.loads(config.read_text()) == {
        "InteractiveShellApp": {"extra_extensions": ["nbresume"]}
    }
    code, out, err = cli(capsys, "install", "--prefix", str(tmp_path))
    assert code == 0, err
    assert "already installed" in out
    assert json.loads(config.read_text())["InteractiveShellApp"]["extra_extensions"] == ["nbresume"]
    code, out, err = cli(capsys, "uninstall", "--prefix", str(tmp_path))
    assert code == 0, err
    assert not config.exists()
    assert list(config.parent.iterdir()) == []
    code, out, err = cli(capsys, "uninstall", "--prefix", str(tmp_path))
    assert code == 0, err
    assert "not installed" in out


@pytest.mark.parametrize(
    "existing",
    [
        {},
        {
            "InteractiveShellApp": {"extra_extensions": ["other_ext"], "exec_lines": ["x = 1"]},
            "IPKernelApp": {"matplotlib": "inline"},
        },
    ],
)
def test_install_merges_into_an_existing_config_and_uninstall_restores_it(
    existing: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "etc" / "ipython" / "ipython_kernel_config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps(existing))
    code, _, err = cli(capsys, "install", "--prefix", str(tmp_path))
    assert code == 0, err
    merged = json.loads(config.read_text())
    assert merged["InteractiveShellApp"]["extra_extensions"][-1] == "nbresume"
    assert {k: v for k, v in merged.items() if k != "InteractiveShellApp"} == {
        k: v for k, v in existing.items() if k != "InteractiveShellApp"
    }
    code, _, err = cli(capsys, "uninstall", "--prefix", str(tmp_path))
    assert code == 0, err
    assert json.loads(config.read_text()) == existing


def test_install_refuses_to_touch_a_config_that_is_not_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "etc" / "ipython" / "ipython_kernel_config.json"
    config.parent.mkdir(parents=True)
    config.write_text("{'not': json")
    code, _, err = cli(capsys, "install", "--prefix", str(tmp_path))
    assert code == 1
    assert "not valid JSON" in one_error_line(err)
    assert config.read_text() == "{'not': json"


# -- run: the parts that need no kernel ---------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "label"),
    [
        ("%%checkpoint sweep --every 1\nfor x in y:\n    pass", "%%checkpoint sweep --every 1"),
        ("# load the data\n\nimport pandas as pd", "import pandas as pd"),
        ("x = '" + "a" * 60 + "'", "x = '" + "a" * 34 + "…"),
    ],
)
def test_cells_are_labelled_by_their_first_line_of_code(source: str, label: str) -> None:
    assert cell_label(source) == label


def test_the_extension_is_preloaded_only_for_notebooks_that_do_not_load_it() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os\n%load_ext autoreload")]
    assert not loads_extension(nb)
    nb.cells.append(nbformat.v4.new_code_cell("x = 1\n%load_ext nbresume\n"))
    assert loads_extension(nb)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_running_cell_is_one_line_redrawn_in_place() -> None:
    stream = _Terminal()
    report = Report(stream)
    report.start("[2/3] %%checkpoint sweep")
    report.noted("sweep: 12/40\n  ETA 3s")
    report.end("done in 4.0s")
    text = stream.getvalue()
    assert text.count("\n") == 1
    assert "\r\x1b[K[2/3] %%checkpoint sweep ... " in text
    assert "sweep: 12/40 ETA 3s" in text
    assert text.endswith("\r\x1b[K[2/3] %%checkpoint sweep ... done in 4.0s\n")


def test_without_a_terminal_a_long_cell_prints_a_plain_progress_line_every_10_s() -> None:
    now = [0.0]
    plain = io.StringIO()
    report = Report(plain, clock=lambda: now[0])
    report.start("[1/2] x = 1")
    report.noted("nbresume's notes go to the terminal line only")
    report.end("done in 0.01s")
    report.start("[2/2] %%checkpoint sweep")
    for second in range(1, 26):  # a 25 s loop, its progress text updated every second
        now[0] += 1
        report.progress(f"sweep: {second}/25, ETA {25 - second}s")
    report.end("done in 25s")
    assert plain.getvalue().splitlines() == [
        "[1/2] x = 1 ... done in 0.01s",
        "[2/2] %%checkpoint sweep ... sweep: 10/25, ETA 15s",
        "[2/2] %%checkpoint sweep ... sweep: 20/25, ETA 5s",
        "[2/2] %%checkpoint sweep ... done in 25s",
    ]


# -- run: real kernels --------------------------------------------------------------------------


def write_notebook(path: Path, *cells: str, tags: dict[int, list[str]] | None = None) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(cell).strip()) for cell in cells]
    for index, cell_tags in (tags or {}).items():
        nb.cells[index].metadata["tags"] = cell_tags
    nbformat.write(nb, path)
    return path


MARK = """
import os, time
def mark(i):
    with open("ran.txt", "a") as f:
        f.write(f"{i}\\n")
"""


@pytest.fixture
def kernel_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Kernels started from this process run isolated under tmp_path, as kernel_helpers' do."""
    for name, value in kernel_env(tmp_path).items():
        if os.environ.get(name) != value:
            monkeypatch.setenv(name, value)
    for name in ("PYTEST_CURRENT_TEST", "NBRESUME_DIR", "MPLBACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.kernel
def test_run_without_a_terminal_prints_the_loop_progress_of_a_long_cell(
    kernel_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a CI log the running loop shows up as plain lines: done/total, rate, ETA."""
    monkeypatch.setattr("nbresume._run.PLAIN_SECONDS", 2.0)  # instead of every 10 s
    nb = write_notebook(
        kernel_home / "slow.ipynb",
        "%load_ext nbresume",
        """
        %%checkpoint slow
        import time
        for step in resumable(range(40)):
            time.sleep(0.15)
        """,
    )
    code, out, err = cli(capsys, "run", str(nb))
    assert code == 0, out + err
    lines = [line for line in out.splitlines() if line.startswith("[2/2] %%checkpoint slow ... ")]
    progress = [re.fullmatch(r".* \.\.\. step: (\d+)/40, [\d.]+ it/s, ETA .*", ln) for ln in lines]
    done = [int(m.group(1)) for m in progress if m is not None]
    assert done, out
    assert all(0 < n < 40 for n in done), out
    assert lines[-1].startswith("[2/2] %%checkpoint slow ... done in "), out


@pytest.mark.kernel
def test_run_restarts_a_dead_kernel_and_the_loop_resumes_where_it_died(
    kernel_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nb = write_notebook(
        kernel_home / "sweep.ipynb",
        "%load_ext nbresume\n" + MARK,
        "%%checkpoint setup\nbase = 10\nprint('setup', base)",
        """
        %%checkpoint sweep --every 1
        results = []
        for i in resumable(range(6)):
            mark(i)
            if i == 3 and not os.path.exists("crashed"):
                open("crashed", "w").close()
                os._exit(1)
            print("item", i)
            results.append(base + i)
        print("total", sum(results))
        """,
    )
    code, out, err = cli(capsys, "run", str(nb))
    assert code == 0, out + err
    lines = out.splitlines()
    assert "[3/3] %%checkpoint sweep --every 1 ... kernel died (exit code 1), retry 1/3" in lines
    assert "[2/3] %%checkpoint setup ... restored" in lines
    assert lines[-2].startswith("[3/3] %%checkpoint sweep --every 1 ... done in ")
    assert lines[-2].endswith("(resumed after 3 items)")
    assert lines[-1].startswith("ran 3 cells in ")
    assert "1 kernel restart" in lines[-1]
    assert Counter(read_runs(kernel_home / "ran.txt")) == {0: 1, 1: 1, 2: 1, 3: 2, 4: 1, 5: 1}
    executed = nbformat.read(kernel_home / "sweep.out.ipynb", as_version=4)
    expected = "".join(f"item {i}\n" for i in range(6)) + "total 75\n"
    assert stdout_of(own_outputs(executed.cells[2].outputs)) == expected
    assert stdout_of(own_outputs(executed.cells[1].outputs)) == "setup 10\n"
    assert executed.metadata["nbresume"] == {"attempts": 2, "kernel_deaths": ["exit code 1"]}


@pytest.mark.kernel
def test_run_survives_a_sigkill_of_its_kernel_through_the_console_script(
    tmp_path: Path,
) -> None:
    nb = write_notebook(
        tmp_path / "slow.ipynb",
        MARK + "\nfrom pathlib import Path\nPath('kernel.pid').write_text(str(os.getpid()))",
        """
        %%checkpoint slow --every 1
        done = []
        for i in resumable(range(8)):
            mark(i)
            time.sleep(0.25)
            done.append(i)
        print(done)
        """,
    )
    env = kernel_env(tmp_path)
    process = subprocess.Popen(
        [str(BIN / "nbresume"), "run", nb.name, "-o", "result.ipynb"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: len(read_runs(tmp_path / "ran.txt")) >= 3, 60)
        os.kill(int((tmp_path / "kernel.pid").read_text()), signal.SIGKILL)
        before = read_runs(tmp_path / "ran.txt")
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, out + err
    assert "[2/2] %%checkpoint slow --every 1 ... kernel died (SIGKILL), retry 1/3" in out
    assert "resumed after" in out
    counts = Counter(read_runs(tmp_path / "ran.txt"))
    assert set(counts) == set(range(8))
    assert all(counts[i] == 1 for i in before[:-1])  # finished before the kill: never again
    assert sum(counts.values()) <= 8 + 1  # at most the item in flight ran twice
    executed = nbformat.read(tmp_path / "result.ipynb", as_version=4)
    assert stdout_of(own_outputs(executed.cells[1].outputs)) == f"{list(range(8))}\n"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.kernel
def test_a_cell_error_stops_the_run_in_one_line_without_retrying(
    kernel_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nb = write_notebook(  # no %load_ext: run loads nbresume in the kernel itself
        kernel_home / "bad.ipynb",
        "%%checkpoint first\nx = 1\nprint('first', x)",
        "x / 0",
        "print('never')",
    )
    code, out, err = cli(capsys, "run", str(nb))
    assert code == 1
    line = one_error_line(err)
    assert "code cell 2 (x / 0) raised ZeroDivisionError: division by zero" in line
    assert "bad.out.ipynb" in line
    assert "[1/3] %%checkpoint first ... done in " in out
    assert "[2/3] x / 0 ... failed: ZeroDivisionError: division by zero" in out
    assert "retry" not in out
    assert "never" not in out
    executed = nbformat.read(kernel_home / "bad.out.ipynb", as_version=4)
    assert executed.cells[1].outputs[0]["ename"] == "ZeroDivisionError"
    assert executed.cells[2].outputs == []


@pytest.mark.kernel
def test_a_keyboard_interrupt_in_the_kernel_names_itself(
    kernel_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An interrupt that reaches the kernel (not nbresume) fails the cell: said in words."""
    nb = write_notebook(
        kernel_home / "interrupted.ipynb",
        "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(30)",
    )
    code, out, err = cli(capsys, "run", str(nb))
    assert code == 1
    line = one_error_line(err)
    assert "raised KeyboardInterrupt (the kernel was interrupted)" in line, line
    assert ": ;" not in line
    assert "failed: KeyboardInterrupt (the kernel was interrupted)" in out, out


@pytest.mark.kernel
def test_run_gives_up_after_the_retries_with_one_line(
    kernel_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nb = write_notebook(kernel_home / "doomed.ipynb", "import os\nos._exit(3)")
    code, out, err = cli(capsys, "run", str(nb), "--retries", "1")
    assert code == 1
    line = one_error_line(err)
    assert "the kernel died 2 times, last in code cell 1 (import os) (exit code 3)" in line
    assert "gave up after 1 retry;" in line
    assert out.count("kernel died") == 2


@pytest.mark.kernel
def test_install_user_makes_new_kernels_load_nbresume_and_uninstall_undoes_it(
    kernel_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    def run_probe() -> None:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("%%checkpoint probe\nprint('loaded')")]
        NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": "."}}).execute()

    code, out, err = cli(capsys, "install", "--user")
    assert code == 0, err
    assert str(kernel_home / ".ipython" / "profile_default") in out
    run_probe()
    code, out, err = cli(capsys, "uninstall", "--user")
    assert code == 0, err
    with pytest.raises(CellExecutionError, match="checkpoint"):
        run_probe()


@pytest.mark.kernel
def test_papermill_reruns_only_the_checkpoint_that_reads_the_changed_parameter(
    tmp_path: Path,
) -> None:
    pytest.importorskip("papermill")
    tick = "def tick(label):\n    with open('runs.txt', 'a') as f:\n        f.write(label + '\\n')"
    nb = write_notebook(
        tmp_path / "params.ipynb",
        "%load_ext nbresume\n" + tick,
        "alpha = 1",
        "%%checkpoint scaled\ntick('scaled')\nscaled = alpha * 10\nprint('scaled', scaled)",
        "%%checkpoint fixed\ntick('fixed')\nfixed = 42\nprint('fixed', fixed)",
        tags={1: ["parameters"]},
    )
    env = kernel_env(tmp_path)
    for alpha, out in (("1", "first.ipynb"), ("2", "second.ipynb")):
        subprocess.run(
            [str(BIN / "papermill"), nb.name, out, "-p", "alpha", alpha, "--cwd", str(tmp_path)],
            cwd=tmp_path,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
    assert Counter((tmp_path / "runs.txt").read_text().split()) == {"scaled": 2, "fixed": 1}
    second = nbformat.read(tmp_path / "second.ipynb", as_version=4)
    scaled, fixed = (c for c in second.cells if c.source.startswith("%%checkpoint"))
    assert stdout_of(own_outputs(scaled.outputs)) == "scaled 20\n"
    assert stdout_of(own_outputs(fixed.outputs)) == "fixed 42\n"
