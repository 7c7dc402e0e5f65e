"""Inputs that depend on the kernel: magics in a checkpoint cell, `%run`, a restart (issue 15)."""

from __future__ import annotations

from kernel_helpers import KernelPool, note_kinds, notes, read_runs

SETUP = """\
%load_ext nbresume
def tick(label='x'):
    with open('runs.txt', 'a') as f:
        f.write('1\\n')
"""

MAGIC_CELL = """\
%%checkpoint magics
tick()
%time doubled = [v * 2 for v in data]
!echo {len(data)} items
y = len(doubled)
"""


def _note_text(outputs: list[dict[str, object]]) -> str:
    return "\n".join(str(o.get("data", {}).get("text/plain", "")) for o in notes(outputs))  # type: ignore[union-attr]


def test_a_cell_with_magics_restores_and_reruns_when_what_a_magic_reads_changes(
    kernels: KernelPool,
) -> None:
    kernel = kernels.start()
    runs = kernel.workdir / "runs.txt"
    kernel.run(SETUP + "data = [1, 2, 3]\n")
    kernel.run(MAGIC_CELL)
    hit = kernel.run(MAGIC_CELL)
    assert read_runs(runs) == [1], "a cell with %time and !echo never restored"
    assert "restored" in note_kinds(hit)
    kernel.run("data = [1, 2, 3, 4]")
    again = kernel.run(MAGIC_CELL)
    assert read_runs(runs) == [1, 1]
    assert "'data'" in _note_text(again), _note_text(again)
    assert kernel.eval("y") == "4"


def test_a_cell_running_a_script_reruns_when_the_script_changes_and_restores_after_a_restart(
    kernels: KernelPool,
) -> None:
    kernel = kernels.start()
    runs = kernel.workdir / "runs.txt"
    script = kernel.workdir / "prepare.py"
    script.write_text("SCALE = 2\n")
    cell = "%%checkpoint scripted\ntick()\n%run prepare.py\nscaled = [v * SCALE for v in (1, 2)]\n"
    kernel.run(SETUP)
    kernel.run(cell)
    kernel.restart()
    kernel.run(SETUP)
    kernel.run(cell)
    assert read_runs(runs) == [1], "the body ran again after the restart"
    script.write_text("SCALE = 3\n")
    again = kernel.run(cell)
    assert read_runs(runs) == [1, 1]
    assert "'%run prepare.py'" in _note_text(again), _note_text(again)
    assert kernel.eval("scaled") == "[3, 6]"
