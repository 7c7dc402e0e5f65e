"""Differences found by running public notebooks under ``%%checkpoint`` (scripts/compare_notebook.py
on Whirlwind Tour of Python, Python Data Science Handbook, statsmodels examples), each reduced to
the idiom that caused it. In-process: a "new kernel" is a reset namespace over the same store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from conftest import CellRun, runs
from nbresume._keys import FingerprintError, fingerprint
from nbresume.errors import CheckpointWarning
from test_inputs import new_kernel, ok, restored

RunCell = Callable[..., CellRun]

# -- dead values: a hit gives the name what a run gives it, never an older value ---------------

# Whirlwind Tour 12-Generators: `G = (n ** 2 for n in range(12)); list(G)` then `list(G)`
USED_UP = "%%checkpoint squares\ntick()\nG = (n ** 2 for n in range(12))\nfirst = list(G)\n"


def test_a_finished_generator_comes_back_finished_in_a_new_kernel(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    ok(run_cell(USED_UP))
    new_kernel(shell)
    assert restored(ok(run_cell(USED_UP)))
    assert runs() == 1
    again = ok(run_cell("second = list(G)"))
    assert again.result.result is None
    assert shell.user_ns["second"] == []
    assert shell.user_ns["first"] == [n**2 for n in range(12)]


def test_a_hit_never_leaves_an_older_value_under_a_finished_generators_name(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    ok(run_cell(USED_UP))
    new_kernel(shell)
    ok(run_cell("G = [1, 2]"))  # an earlier cell of the notebook bound G to a list
    assert restored(ok(run_cell(USED_UP)))
    ok(run_cell("second = list(G)"))
    assert shell.user_ns["second"] == []


def test_a_hit_never_leaves_an_older_value_under_a_closed_files_name(
    shell: InteractiveShell, run_cell: RunCell, tmp_path: Path
) -> None:
    (tmp_path / "data.txt").write_text("abc")
    cell = "%%checkpoint read\ntick()\nwith open('data.txt') as f:\n    text = f.read()\n"
    ok(run_cell(cell))
    new_kernel(shell)
    ok(run_cell("f = 'an older value'"))
    assert restored(ok(run_cell(cell)))
    assert runs() == 1
    assert shell.user_ns.get("f") != "an older value"


# -- caches Python keeps on a notebook class are not its code -----------------------------------

# statsmodels generic_mle: `class MyProbit(GenericLikelihoodModel)`, then a cell saving
# `MyProbit(endog, exog).fit()` and cells reading the result: never restored, because pickling an
# instance makes copyreg cache `__slotnames__` on the class, and the class's fingerprint changed.
MODEL = "class Model:\n    def __init__(self, k):\n        self.k = k\n"


def test_a_cell_saving_an_instance_of_a_notebook_class_restores(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    ok(run_cell(MODEL))
    cell = "%%checkpoint fit\ntick()\nm = Model(3)\n"
    ok(run_cell(cell))
    assert restored(ok(run_cell(cell)))
    assert runs() == 1


@pytest.mark.parametrize(
    "touch",
    ["pickle.dumps(Model(1))", "copy.copy(Model(1))", "copy.deepcopy([Model(1)])"],
)
def test_pickling_or_copying_an_instance_leaves_the_class_fingerprint(
    shell: InteractiveShell, run_cell: RunCell, touch: str
) -> None:
    ok(run_cell(MODEL))
    before = fingerprint(shell.user_ns["Model"])
    ok(run_cell(f"import copy, pickle\n{touch}"))
    assert fingerprint(shell.user_ns["Model"]) == before


def test_isinstance_checks_on_a_notebook_abc_leave_its_fingerprint(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    ok(run_cell("import abc\nclass Base(abc.ABC):\n    pass\nclass Impl(Base):\n    pass\n"))
    before = fingerprint(shell.user_ns["Base"])
    ok(run_cell("isinstance(Impl(), Base), issubclass(int, Base), isinstance(1, Base)"))
    assert fingerprint(shell.user_ns["Base"]) == before


def test_a_changed_slots_class_still_counts(run_cell: RunCell) -> None:
    ok(run_cell("class P:\n    __slots__ = ('a',)\n"))
    before = fingerprint(run_cell("P").result.result)
    ok(run_cell("class P:\n    __slots__ = ('a', 'b')\n"))
    assert fingerprint(run_cell("P").result.result) != before


# -- a variable the run could not save: never an older value on a hit --------------------------

# Whirlwind Tour 12-Generators: `G = (...)` left suspended (and, before re.Match could be saved,
# 14-Strings' `match = regex.search(line)`). A hit in a new kernel left the name to whatever an
# earlier cell bound to it.
UNPICKLABLE = [
    pytest.param("import threading\nlock = threading.Lock()\n", "lock", id="lock"),
    pytest.param("G = (i for i in range(9))\nfirst = next(G)\n", "G", id="live-generator"),
]


@pytest.mark.parametrize(("body", "name"), UNPICKLABLE)
def test_an_unsaved_variable_is_not_left_to_an_older_value_in_a_new_kernel(
    shell: InteractiveShell, run_cell: RunCell, body: str, name: str
) -> None:
    cell = f"%%checkpoint unsaved\ntick()\n{body}"
    with pytest.warns(CheckpointWarning, match=f"could not save variable '{name}'"):
        ok(run_cell(cell))
    new_kernel(shell)
    ok(run_cell(f"{name} = 'an older value'"))
    with pytest.warns(CheckpointWarning, match=f"'{name}'.*could not be saved.*--force"):
        assert restored(ok(run_cell(cell)))
    assert runs() == 1
    assert name not in shell.user_ns


@pytest.mark.parametrize(("body", "name"), UNPICKLABLE)
def test_an_unsaved_variable_stays_on_a_hit_in_the_kernel_that_made_it(
    shell: InteractiveShell, run_cell: RunCell, body: str, name: str
) -> None:
    cell = f"%%checkpoint unsaved\ntick()\n{body}"
    with pytest.warns(CheckpointWarning, match=f"could not save variable '{name}'"):
        ok(run_cell(cell))
    live = shell.user_ns[name]
    assert restored(ok(run_cell(cell)))
    assert runs() == 1
    assert shell.user_ns[name] is live


# -- a finished generator as an input: nothing is left to read, so it has a fingerprint ---------

# Whirlwind Tour 12-Generators: `list(G)` after the cell that used G up: refused every time with
# "cannot fingerprint G (type generator: its items are used up when read)".


def test_a_finished_generator_is_an_input_with_a_fingerprint(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    ok(run_cell(USED_UP))
    cell = "%%checkpoint again\ntick('again')\nsecond = list(G)\n"
    ok(run_cell(cell))
    assert restored(ok(run_cell(cell)))
    new_kernel(shell)
    assert restored(ok(run_cell(USED_UP)))  # G comes back used up, with the same fingerprint
    assert restored(ok(run_cell(cell)))
    assert runs("again") == 1
    assert shell.user_ns["second"] == []


def test_finished_generators_of_other_functions_differ_and_a_live_one_is_refused(
    run_cell: RunCell,
) -> None:
    made = run_cell("def a():\n    yield 1\ndef b():\n    yield 1\nga, gb = a(), b()\n")
    ok(made)
    ns = run_cell("ga").result.result, run_cell("gb").result.result
    with pytest.raises(FingerprintError, match="used up when read"):
        fingerprint(ns[0])
    for generator in ns:
        list(generator)
    assert fingerprint(ns[0]) != fingerprint(ns[1])
    assert fingerprint(ns[0]) == fingerprint(run_cell("x = a()\nlist(x)\nx").result.result)


def test_a_generator_the_cell_uses_up_is_refused_then_gives_what_a_plain_run_gives(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    ok(run_cell("batches = (b for b in range(3))"))
    cell = "%%checkpoint drain\ntick()\ny = list(batches)\n"
    with pytest.warns(CheckpointWarning, match="cannot fingerprint batches"):
        ok(run_cell(cell))
    assert shell.user_ns["y"] == [0, 1, 2]
    ok(run_cell(cell))  # batches is used up now: a plain run gives []
    assert shell.user_ns["y"] == []
    assert restored(ok(run_cell(cell)))
    assert shell.user_ns["y"] == []
    assert runs() == 2


# -- a dict whose attributes are its items (statsmodels' Dataset: ``self.__dict__ = self``) --------

# statsmodels tsa_dates: `data = sm.datasets.sunspots.load()` restored, then every cell reading
# `data` ran again ("input 'data' changed"): the restored copy had a __dict__ of its own.
SELF_DICT = (
    "class Dataset(dict):\n    def __init__(self, **kw):\n        dict.__init__(self, kw)\n"
    "        self.__dict__ = self\n"
)


def test_a_restored_self_dict_is_still_its_own_dict_and_keeps_its_fingerprint(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    ok(run_cell(SELF_DICT))
    load = "%%checkpoint load\ntick('load')\ndata = Dataset(endog=[1, 2], names=['a'])\n"
    use = "%%checkpoint use\ntick('use')\nn = len(data.endog)\n"
    ok(run_cell(load))
    ok(run_cell(use))
    new_kernel(shell)
    ok(run_cell(SELF_DICT))
    assert restored(ok(run_cell(load)))
    data = shell.user_ns["data"]
    assert data.__dict__ is data
    data.extra = 1
    assert data["extra"] == 1
    del data["extra"]
    assert restored(ok(run_cell(use)))
    assert runs("use") == 1


def test_combining_flags_of_a_notebook_flag_enum_leaves_its_fingerprint(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    # enum caches the combination (a pseudo-member) in the class's _value2member_map_
    ok(run_cell("import enum\nclass Perm(enum.Flag):\n    R = 1\n    W = 2\n"))
    before = fingerprint(shell.user_ns["Perm"])
    ok(run_cell("both = Perm.R | Perm.W\nPerm(3)"))
    assert fingerprint(shell.user_ns["Perm"]) == before
    ok(run_cell("class Perm(enum.Flag):\n    R = 1\n    W = 4\n"))
    assert fingerprint(shell.user_ns["Perm"]) != before


# -- names a cell imports from an installed package are saved by where they come from -----------

# scientific-python-lectures Lecture-5-Sympy: `from sympy import *` warned "could not save
# variable 'cacheit'", and its checkpoint could not be read back (a sympy lazy function pickled by
# value), so the cell never restored. A fake installed package stands in for sympy here.
PACKAGE = '''
import functools


class _Meta(type):
    @property
    def args(cls):
        return ()


class Lazy(metaclass=_Meta):
    """Pickled by value, it cannot be loaded back (a property of the metaclass has no setter)."""

    args = 1


def _cache(fn):
    return functools.lru_cache()(fn)


@_cache
def cached(x):
    return x


cached.__qualname__ = "Lazy.args"  # as sympy's cacheit: its name does not lead back to it
__all__ = ["Lazy", "cached", "value"]
value = [1, 2]
'''


def test_a_star_import_from_an_installed_package_restores_the_packages_objects(
    shell: InteractiveShell, run_cell: RunCell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path.parent / f"{tmp_path.name}-site"
    site.mkdir()
    (site / "fakesym.py").write_text(PACKAGE)
    monkeypatch.syspath_prepend(str(site))
    cell = "%%checkpoint star\ntick()\nfrom fakesym import *\n"
    ok(run_cell(cell))  # NB. a CheckpointWarning fails here (filterwarnings = error)
    new_kernel(shell)
    assert restored(ok(run_cell(cell)))
    assert runs() == 1
    import fakesym  # type: ignore[import-not-found]

    for name in ("Lazy", "cached"):
        assert shell.user_ns[name] is getattr(fakesym, name)
    assert shell.user_ns["value"] == [1, 2]  # data may be changed by the cell: saved by value


# -- writing through a view changes the array it views -----------------------------------------

# scientific-python-lectures Lecture-2-Numpy: `B = A.reshape((1, n*m))`, `B[0, 0:5] = 5`, then
# `A` ("the original variable is also changed"): after a restart the restored cells left A
# without the 5s, and the cell showing A ran again and showed another A than a plain run.
VIEW_CELLS = [
    "%%checkpoint make\nimport numpy as np\nA = np.arange(10).reshape(2, 5)\n",
    "%%checkpoint view\nB = A.reshape((1, 10))\n",
    "%%checkpoint write\nB[0, 0:5] = 5\n",
    "%%checkpoint show\ntick()\ntotal = int(A.sum())\n",
]


@pytest.mark.parametrize("view", ["A.reshape((1, 10))", "A[:, :]", "A.T", "A.ravel()"])
def test_a_write_through_a_view_is_restored_into_the_array_it_views(
    shell: InteractiveShell, run_cell: RunCell, view: str
) -> None:
    cells = [c.replace("A.reshape((1, 10))", view) for c in VIEW_CELLS]
    cells[2] = "%%checkpoint write\nB[0] = 5\n" if view != "A.reshape((1, 10))" else cells[2]
    for cell in cells:
        ok(run_cell(cell))
    plain = shell.user_ns["total"]
    first = shell.user_ns["A"].copy()
    new_kernel(shell)
    for cell in cells:
        assert restored(ok(run_cell(cell))), cell
    assert runs() == 1
    assert shell.user_ns["total"] == plain
    assert (shell.user_ns["A"] == first).all()


def test_an_unsaved_variable_of_a_loop_cell_is_not_left_to_an_older_value_either(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    cell = (
        "%%checkpoint loop --every 1\ntick()\nimport threading\nfor i in resumable(range(3)):\n"
        "    lock = threading.Lock()\n"
    )
    with pytest.warns(CheckpointWarning, match="could not save variable 'lock'"):
        ok(run_cell(cell))
    new_kernel(shell)
    ok(run_cell("lock = 'an older value'"))
    with pytest.warns(CheckpointWarning, match="'lock'.*could not be saved"):
        assert restored(ok(run_cell(cell)))
    assert runs() == 1
    assert "lock" not in shell.user_ns


@pytest.mark.parametrize(
    "make",
    [
        "re.compile('fox').search('the quick brown fox')",
        "re.match(r'(\\w+) (\\w+)', 'Isaac Newton, physicist')",
        "re.fullmatch('a|ab', 'ab')",
        "list(re.finditer(r'o(\\w)', 'brown fox of dogs'))[2]",
        "re.compile(b'x+').search(b'axxb', 1, 3)",
    ],
)
def test_a_regex_match_is_saved_and_restored_equal(
    shell: InteractiveShell, run_cell: RunCell, make: str
) -> None:
    cell = f"%%checkpoint m\ntick()\nimport re\nmatch = {make}\n"
    ok(run_cell(cell))  # NB. no "could not save variable 'match'" (filterwarnings = error)
    first = shell.user_ns["match"]
    new_kernel(shell)
    assert restored(ok(run_cell(cell)))
    again = shell.user_ns["match"]
    assert runs() == 1
    assert again is not first
    assert (again.re, again.string, again.pos, again.endpos) == (
        first.re,
        first.string,
        first.pos,
        first.endpos,
    )
    assert again.regs == first.regs
    assert again.group(0) == first.group(0)


def test_an_unsaved_variable_of_a_run_accepted_after_its_gate_is_not_left_to_an_older_value(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    """`mark done` saves again with the result's rendering when the result itself cannot be
    pickled: the names that could not be saved must keep their markers on that path too."""
    cell = (
        "%%checkpoint gated --validate 'ok'\ntick()\nimport threading\n"
        "lock = threading.Lock()\nok = False\nthreading.Lock()\n"
    )
    assert run_cell(cell).error is not None  # the gate failed: nothing saved yet
    with pytest.warns(CheckpointWarning, match="could not save variable 'lock'"):
        assert run_cell("%checkpoint mark gated done").error is None
    new_kernel(shell)
    ok(run_cell("lock = 'an older value'\nok = False"))
    with pytest.warns(CheckpointWarning, match="'lock'.*could not be saved.*--force"):
        assert restored(ok(run_cell(cell)))
    assert runs() == 1
    assert "lock" not in shell.user_ns
