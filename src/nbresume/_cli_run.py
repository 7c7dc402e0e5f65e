"""``nbresume run``: a notebook executed headless, resumed after a dead kernel."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ._cli_common import EXIT_OK, CliError, _error

# -- run ----------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from ._runfiles import STDOUT, RunFileError, check_output, lock_notebook, read_notebook

    try:
        import nbclient  # noqa: F401
        import nbformat  # noqa: F401
    except ImportError as exc:
        raise CliError(f"nbresume run needs nbclient ({exc}); pip install nbclient") from exc

    path = Path(args.notebook).expanduser()
    output: Path | str = (
        STDOUT
        if args.output == STDOUT
        else Path(args.output).expanduser()
        if args.output
        else path.with_name(f"{path.stem}.out.ipynb")
    )
    try:
        nb = read_notebook(path)
        check_output(output, path)
        lock = lock_notebook(path)
    except RunFileError as exc:
        raise CliError(str(exc)) from exc
    try:
        return _run_locked(args, path, nb, output)
    finally:
        os.close(lock)


def _run_locked(args: argparse.Namespace, path: Path, nb: Any, output: Path | str) -> int:
    from ._run import NotebookRun, Report, signal_name
    from ._runfiles import STDOUT, save_elsewhere, write_output

    cwd = Path(args.cwd).expanduser() if args.cwd else path.parent
    if not cwd.is_dir():
        raise CliError(f"--cwd {str(cwd)!r} is not a directory")
    # NB. with -o - stdout carries the notebook alone
    report = Report(sys.stderr if output == STDOUT else sys.stdout)
    runner = NotebookRun(
        nb,
        cwd=cwd.absolute(),
        kernel=args.kernel,
        timeout=args.timeout,
        retries=args.retries,
        report=report,
    )
    result = runner.run()
    if result.ran:  # a kernel ran cells: the notebook holds outputs, also when the run failed
        try:
            write_output(result.nb, output)
        except OSError as exc:
            raise CliError(
                f"cannot write {str(output)!r}: {exc.strerror or exc}; "
                + save_elsewhere(result.nb, output)
            ) from exc
    written = "the notebook to stdout" if output == STDOUT else str(output)
    if result.error is not None:
        where = f"; the executed notebook is in {output}" if result.ran and output != STDOUT else ""
        raise CliError(result.error + where)
    if result.signal:
        _error(
            f"stopped by {signal_name(result.signal)}; checkpoints are kept: run again to resume"
        )
        return 128 + result.signal
    runner.report.line(result.summary + f"; wrote {written}")
    return EXIT_OK
