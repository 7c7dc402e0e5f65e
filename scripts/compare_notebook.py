"""Run a notebook plain and with every code cell under ``%%checkpoint``; compare cell by cell.

    python scripts/compare_notebook.py NOTEBOOK.ipynb [...] [--json REPORT] [--timeout S]

For each notebook (its own ``%%checkpoint`` lines and ``%load_ext nbresume`` are taken out first, so
public notebooks and nbresume's own examples are treated alike):

1. plain: the cells as they are, in a fresh kernel;
2. first: ``%load_ext nbresume`` then every code cell as ``%%checkpoint cell-NNN`` (cells that start
   with another cell magic stay as they are), in a fresh kernel in another folder;
3. second: the same notebook again in a fresh kernel in that folder: every cell should restore;
4. with ``--edit N:CODE``: CODE appended to code cell N (an edit that changes what it assigns),
   run plain in a fresh folder and with nbresume in the folder of 1-3: every cell must show what
   the plain run of the edited notebook shows (a cell restored from before the edit that shows
   something else is ``stale after the edit``); the report counts the cells that ran again.

Errors do not stop a run (a public notebook may fail to download its data: only a cell that fails
*only* under nbresume counts). A finding is one of: ``fails only under nbresume``, ``outputs differ
from the plain run``, ``not restored``, ``restore shows other outputs``, ``fails on restore``.
The exit status is 1 when there is a finding. Kernels run isolated (their own IPYTHONDIR, config
folder and signing key), as the tests' kernels do.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

NOTE_KEY = "nbresume"
CHECKPOINT_LINE = re.compile(r"^%%checkpoint\b[^\n]*\n?")
LOAD_EXT = re.compile(r"^\s*%load_ext\s+nbresume\s*$", re.MULTILINE)
# text that differs between two honest runs of one cell: timings, addresses, temporary paths,
# the clock (statsmodels' summary() prints the date and time), %timeit's loop count
VOLATILE = [
    (re.compile(r"0x[0-9a-f]{6,}"), "0x…"),
    (re.compile(r"\d+(\.\d+)?\s*(ns|µs|μs|us|ms|s)\b"), "T"),
    (re.compile(r"/tmp/[^\s'\"]+"), "/tmp/…"),
    (re.compile(r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4}\b"), "DATE"),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}\b"), "HH:MM:SS"),
    (re.compile(r"\b[\d,]+ loops? each\b"), "N loops each"),
    (re.compile(r"The slowest run took [^\\]*?(\\n)+"), ""),  # %timeit, on a noisy machine
    (re.compile(r'"model_id": "[0-9a-f]{32}"'), '"model_id": "…"'),  # a widget's view: new each run
]


def plain_source(source: str) -> str:
    return LOAD_EXT.sub("", CHECKPOINT_LINE.sub("", source, count=1))


def checkpointed(source: str, index: int, options: str = "") -> str:
    if source.lstrip().startswith("%%") or not source.strip():
        return source
    return f"%%checkpoint cell-{index:03d}{' ' + options if options else ''}\n{source}"


def variants(nb: Any, options: str = "") -> tuple[Any, Any]:
    """The plain notebook and the one with every code cell checkpointed."""
    import copy

    import nbformat

    plain = copy.deepcopy(nb)
    for cell in plain.cells:
        if cell.cell_type == "code":
            cell.source = plain_source(cell.source)
            cell.outputs, cell.execution_count = [], None
    wrapped = copy.deepcopy(plain)
    for index, cell in enumerate(wrapped.cells):
        if cell.cell_type == "code":
            cell.source = checkpointed(cell.source, index, options)
    wrapped.cells.insert(0, nbformat.v4.new_code_cell("%load_ext nbresume"))
    return plain, wrapped


def own(outputs: list[Any]) -> list[dict[str, Any]]:
    """A cell's own outputs, comparable between runs: notes out, streams merged, volatile text
    (timings, addresses) masked, execution counts dropped."""
    merged: list[dict[str, Any]] = []
    for original in outputs:
        if NOTE_KEY in (original.get("metadata") or {}):
            continue
        output = {k: v for k, v in original.items() if k != "execution_count"}
        if output["output_type"] == "error":
            output = {"output_type": "error", "ename": output["ename"]}
        last = merged[-1] if merged else None
        if (
            last is not None
            and output["output_type"] == "stream"
            and last["output_type"] == "stream"
            and last["name"] == output["name"]
        ):
            merged[-1] = {**last, "text": last["text"] + output["text"]}
        else:
            merged.append(output)
    text = json.dumps(merged, sort_keys=True, ensure_ascii=False)  # "µs" stays one word
    for pattern, replacement in VOLATILE:
        text = pattern.sub(replacement, text)
    return list(json.loads(text))


def restored(outputs: list[Any]) -> bool:
    return any(
        (o.get("metadata") or {}).get(NOTE_KEY, {}).get("kind") in ("restored", "empty")
        for o in outputs
    )


def failed(outputs: list[Any]) -> str | None:
    for output in outputs:
        if output["output_type"] == "error":
            return f"{output['ename']}: {output['evalue']}"[:300]
    return None


def kernel_environ(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    for name in ("NBRESUME_DIR", "MPLBACKEND"):
        env.pop(name, None)
    env.update(
        IPYTHONDIR=str(home / ".ipython"),
        XDG_CONFIG_HOME=str(home),
        NBRESUME_KEY=env.get("NBRESUME_KEY", "compare-notebook-key"),
    )
    return env


def execute(nb: Any, workdir: Path, home: Path, timeout: int) -> tuple[Any, str | None]:
    """-> the executed notebook and why the run stopped early (a timeout, a dead kernel)."""
    from nbclient import NotebookClient

    workdir.mkdir(parents=True, exist_ok=True)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
        timeout=timeout,
        startup_timeout=60,
        allow_errors=True,
        extra_arguments=["--HistoryManager.enabled=False"],
    )
    try:
        client.execute(env=kernel_environ(home))
    except Exception as exc:  # nbclient stops at a timeout or a dead kernel even with allow_errors
        return nb, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return nb, None


def edited(nb: Any, edit: str) -> Any:
    """``nb`` with the code of ``edit`` ("N:CODE") appended to its cell N."""
    import copy

    index, _, code = edit.partition(":")
    nb = copy.deepcopy(nb)
    cell = nb.cells[int(index)]
    if cell.cell_type != "code":
        raise SystemExit(f"--edit {edit!r}: cell {index} is not a code cell")
    cell.source = cell.source.rstrip("\n") + "\n" + code
    return nb


def compare(
    path: Path, workdir: Path, timeout: int = 600, options: str = "", edit: str | None = None
) -> dict[str, Any]:
    """Run ``path`` three times (plain, first, second) under ``workdir``, then edited if ``edit``
    ("N:CODE"); -> the report."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    plain_nb, wrapped_nb = variants(nb, options)
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    for extra in path.parent.iterdir():  # data files and folders (data/) next to the notebook
        if extra.name.startswith(".") or extra.suffix == ".ipynb":
            continue
        for folder in ("plain", "nbresume", "plain-edited"):
            (workdir / folder).mkdir(parents=True, exist_ok=True)
            if extra.is_dir():
                shutil.copytree(extra, workdir / folder / extra.name, dirs_exist_ok=True)
            elif extra.is_file():
                shutil.copy(extra, workdir / folder / extra.name)
    import copy

    plain, stopped = execute(plain_nb, workdir / "plain", home, timeout)
    first, first_stopped = execute(copy.deepcopy(wrapped_nb), workdir / "nbresume", home, timeout)
    second, second_stopped = execute(copy.deepcopy(wrapped_nb), workdir / "nbresume", home, timeout)
    findings: list[dict[str, Any]] = []
    for run, why in (("plain", stopped), ("first", first_stopped), ("second", second_stopped)):
        if why is not None:
            findings.append({"cell": -1, "source": run, "finding": "run stopped", "error": why})
    cells = 0
    for index, cell in enumerate(plain.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        cells += 1
        a, b, c = cell.outputs, first.cells[index + 1].outputs, second.cells[index + 1].outputs
        where = {"cell": index, "source": cell.source.strip().splitlines()[0][:80]}
        plain_error, first_error, second_error = failed(a), failed(b), failed(c)
        if first_error and not plain_error:
            findings.append({**where, "finding": "fails only under nbresume", "error": first_error})
            continue
        if own(a) != own(b):
            findings.append({**where, "finding": "outputs differ from the plain run"})
        if first_error:
            continue  # a failed cell is never saved: it runs again, by design
        if second_error:
            findings.append({**where, "finding": "fails on restore", "error": second_error})
        elif not restored(c) and not cell.source.lstrip().startswith("%%"):
            findings.append({**where, "finding": "not restored"})
        if own(b) != own(c):
            findings.append({**where, "finding": "restore shows other outputs"})
    report = {"notebook": str(path), "code_cells": cells, "findings": findings}
    if edit is not None:
        report["after_edit"] = _compare_edited(
            nb, edit, workdir, home, timeout=timeout, options=options, findings=findings
        )
    return report


def _compare_edited(
    nb: Any,
    edit: str,
    workdir: Path,
    home: Path,
    *,
    timeout: int,
    options: str,
    findings: list[dict[str, Any]],
) -> dict[str, int]:
    """Run the edited notebook plain and with nbresume (the store of the first runs); a cell
    whose outputs differ from the plain edited run's is stale. -> counts of restored/ran cells."""
    plain_nb, wrapped_nb = variants(edited(nb, edit), options)
    plain, stopped = execute(plain_nb, workdir / "plain-edited", home, timeout)
    after, after_stopped = execute(wrapped_nb, workdir / "nbresume", home, timeout)
    for run, why in (("plain edited", stopped), ("edited", after_stopped)):
        if why is not None:
            findings.append({"cell": -1, "source": run, "finding": "run stopped", "error": why})
    counts = {"restored": 0, "ran": 0}
    for index, cell in enumerate(plain.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        a, b = cell.outputs, after.cells[index + 1].outputs
        counts["restored" if restored(b) else "ran"] += 1
        if own(a) != own(b):
            where = {"cell": index, "source": cell.source.strip().splitlines()[0][:80]}
            finding = "stale after the edit" if restored(b) else "outputs differ after the edit"
            findings.append({**where, "finding": finding})
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, help="write the report here too")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it")
    parser.add_argument("--options", default="", help="added to every %%%%checkpoint line")
    parser.add_argument(
        "--edit",
        help="N:CODE: then append CODE to code cell N and check every cell against a plain run",
    )
    args = parser.parse_args(argv)
    reports = []
    for path in args.notebooks:
        workdir = args.keep / path.stem if args.keep else Path(tempfile.mkdtemp(prefix="nbcmp-"))
        try:
            report = compare(path, workdir, args.timeout, args.options, args.edit)
        finally:
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
        reports.append(report)
        print(f"{path.name}: {report['code_cells']} code cells, {len(report['findings'])} findings")
        if "after_edit" in report:
            print(f"  after the edit: {report['after_edit']}")
        for finding in report["findings"]:
            extra = f" ({finding['error']})" if "error" in finding else ""
            print(f"  cell {finding['cell']}: {finding['finding']}{extra}: {finding['source']}")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=1))
    return 1 if any(r["findings"] for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
