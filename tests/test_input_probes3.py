"""Third round of stale-restore probes: state a cell changes without assigning it at the top level,
restored by a hit in a new kernel; inputs reached only through a regex, a union type or a class's
string annotations; stacked cell magics."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from conftest import CellRun, runs
from nbresume import CheckpointWarning
from nbresume._fingerprint import fingerprint
from test_inputs import new_kernel, ok, restored

RunCell = Callable[..., CellRun]

# (define: a plain cell run before, cell: the checkpoint cell's body, check: an expression whose
# value after a hit in a new kernel must equal its value after the real run)
MUTATIONS: dict[str, tuple[str, str, str]] = {
    "setattr": (
        "class Obj:\n    pass\nobj = Obj()\nobj.a = 1",
        "setattr(obj, 'a', 5)",
        "obj.a",
    ),
    "augmented-attribute": (
        "class Obj:\n    pass\nobj = Obj()\nobj.a = 1",
        "obj.a += 1",
        "obj.a",
    ),
    "dict-update": ("d = {'a': 1}", "d.update(b=2)", "d"),
    "list-sort": ("xs = [3, 1, 2]", "xs.sort()", "xs"),
    "del-item": ("d = {'a': 1, 'k': 2}", "del d['k']", "d"),
    "np-copyto": ("import numpy as np\na = np.zeros(3)", "np.copyto(a, np.ones(3))", "a.tolist()"),
    "helper-writes-an-array": (
        "import numpy as np\na = np.zeros(3)\ndef fill(arr):\n    arr[...] = 7",
        "fill(a)",
        "a.tolist()",
    ),
    "drop-inplace": (
        "import pandas as pd\nimport warnings\ndf = pd.DataFrame({'a': [1], 'b': [2]})",
        # NB. pandas 3.1 deprecates inplace=True (PDEP-8)
        "with warnings.catch_warnings():\n"
        "    warnings.simplefilter('ignore')\n"
        "    df.drop(columns='b', inplace=True)",
        "list(df.columns)",
    ),
    "series-name": ("import pandas as pd\ns = pd.Series([1])", "s.name = 'price'", "s.name"),
    "frame-flags": (
        "import pandas as pd\ndf = pd.DataFrame({'a': [1]})",
        "df.flags.allows_duplicate_labels = False",
        "df.flags.allows_duplicate_labels",
    ),
    "series-attrs-and-values": (
        "import pandas as pd\ns = pd.Series([1])",
        "s.attrs['unit'] = 'm'\ns[0] = 5",
        "(s.attrs, s.tolist())",
    ),
    "columns-assigned": (
        "import pandas as pd\ndf = pd.DataFrame({'a': [1], 'b': [2]})",
        "df.columns = ['x', 'y']",
        "list(df.columns)",
    ),
    "index-name": (
        "import pandas as pd\ndf = pd.DataFrame({'a': [1]})",
        "df.index.name = 'idx'",
        "df.index.name",
    ),
    "attrs": (
        "import pandas as pd\ndf = pd.DataFrame({'a': [1]})",
        "df.attrs['unit'] = 'm'",
        "df.attrs",
    ),
    "class-attribute": (
        "class Model:\n    default_lr = 1.0",
        "Model.default_lr = 0.1",
        "Model.default_lr",
    ),
    "class-attribute-via-instance-method": (
        "class Model:\n    runs = 0\n    def bump(self):\n        type(self).runs += 1\nm = Model()",
        "m.bump()",
        "Model.runs",
    ),
    "function-attribute": ("def f():\n    return 1", "f.cache = {'k': 1}", "f.cache"),
    "function-attribute-mutated": (
        "def f():\n    return 1\nf.calls = []",
        "f.calls.append(1)",
        "f.calls",
    ),
    "function-attribute-deleted": (
        "def f():\n    return 1\nf.tag = 1",
        "del f.tag",
        "hasattr(f, 'tag')",
    ),
    "class-attribute-mutated": (
        "class Registry:\n    items = {}",
        "Registry.items['a'] = 1",
        "Registry.items",
    ),
    "class-attribute-mutated-keeps-its-identity": (
        "class Registry:\n    items = {}\nalias = Registry.items",
        "Registry.items['a'] = 1",
        "(alias, alias is Registry.items)",
    ),
    "class-method-replaced": (
        "class Model:\n    def lr(self):\n        return 1\ndef lr2(self):\n    return 2",
        "Model.lr = lr2",
        "Model().lr()",
    ),
    "class-attribute-through-a-helper": (
        "class Model:\n    default_lr = 1.0\ndef tune():\n    Model.default_lr = 0.5",
        "tune()",
        "Model.default_lr",
    ),
    "classmethod-sets-a-class-attribute": (
        "class Model:\n    n = 0\n    @classmethod\n    def bump(cls):\n        cls.n += 1",
        "Model.bump()",
        "Model.n",
    ),
    "set-discard": ("s = {1, 2}", "s.discard(1)", "sorted(s)"),
    "bytearray-extend": ("b = bytearray(b'a')", "b.extend(b'bc')", "bytes(b)"),
    "deque-append": ("import collections\nq = collections.deque([1])", "q.append(2)", "list(q)"),
    "nested-list-in-dict": ("cfg = {'layers': [1]}", "cfg['layers'].append(2)", "cfg"),
    "object-in-list": (
        "class Obj:\n    pass\nitems = [Obj()]",
        "items[0].done = True",
        "getattr(items[0], 'done', None)",
    ),
    "set-index-inplace": (
        "import pandas as pd\nimport warnings\ndf = pd.DataFrame({'a': [1, 2], 'b': [3, 4]})",
        "with warnings.catch_warnings():\n"
        "    warnings.simplefilter('ignore')\n"
        "    df.set_index('a', inplace=True)",
        "(df.index.name, df.index.tolist(), list(df.columns))",
    ),
    "loc-set": (
        "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2]})",
        "df.loc[0, 'a'] = 5",
        "df['a'].tolist()",
    ),
    "columns-name": (
        "import pandas as pd\ndf = pd.DataFrame({'a': [1]})",
        "df.columns.name = 'cols'",
        "df.columns.name",
    ),
    "shuffle-in-place": (
        "import numpy as np\na = np.arange(10)",
        "np.random.seed(3)\nnp.random.shuffle(a)",
        "a.tolist()",
    ),
    "array-sort": ("import numpy as np\na = np.array([3, 1, 2])", "a.sort()", "a.tolist()"),
    "object-in-a-dict-with-its-own-name": (
        "class Model:\n    pass\nm = Model()\nmodels = {'a': m}",
        "models['a'].fitted = True",
        "(getattr(m, 'fitted', None), models['a'] is m)",
    ),
    "object-in-a-list-with-its-own-name": (
        "class Model:\n    pass\nm = Model()\nzoo = [m]",
        "zoo[0].fitted = True\nzoo.append(1)",
        "(getattr(m, 'fitted', None), zoo[0] is m, len(zoo))",
    ),
    "array-in-a-dict-with-its-own-name": (
        "import numpy as np\nw = np.zeros(2)\nparams = {'w': w}",
        "params['w'] += 1",
        "(w.tolist(), params['w'] is w)",
    ),
    "counter-update": (
        "import collections\nc = collections.Counter()",
        "c.update('aab')",
        "dict(c)",
    ),
}


@pytest.mark.parametrize("case", list(MUTATIONS))
def test_a_mutation_the_cell_did_not_assign_is_restored_in_a_new_kernel(
    case: str, shell: InteractiveShell, run_cell: RunCell
) -> None:
    define, body, check = MUTATIONS[case]
    cell = f"%%checkpoint mutation\ntick()\n{body}\n"
    ok(run_cell(define))
    ok(run_cell(cell))
    expected = eval(check, shell.user_ns)
    new_kernel(shell)
    ok(run_cell(define))
    again = ok(run_cell(cell))
    assert restored(again)
    assert runs() == 1
    assert eval(check, shell.user_ns) == expected


def test_a_hit_sets_class_members_on_the_live_class_and_keeps_notebook_functions_live(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    define = "class Model:\n    default_lr = 1.0\ndef lr2(self):\n    return 2\nm = Model()"
    cell = "%%checkpoint members\ntick()\nModel.default_lr = 0.1\nModel.lr = lr2\n"
    ok(run_cell(define))
    ok(run_cell(cell))
    new_kernel(shell)
    ok(run_cell(define))
    live = shell.user_ns["Model"]
    ok(run_cell(cell))
    assert runs() == 1
    ns = shell.user_ns
    assert ns["Model"] is live
    assert type(ns["m"]) is live
    assert ns["m"].default_lr == 0.1
    assert ns["Model"].__dict__["lr"] is ns["lr2"]
    # the same kernel: the class changed, so the cell reads another input and runs again
    ok(run_cell(cell))
    assert runs() == 2


def test_a_cell_that_leaves_notebook_classes_alone_saves_no_members(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    ok(run_cell("class Model:\n    default_lr = 1.0\n    def lr(self):\n        return 1"))
    ok(run_cell("%%checkpoint reads\ntick()\ny = Model().lr() + Model.default_lr\n"))
    ok(run_cell("%%checkpoint reads\ntick()\ny = Model().lr() + Model.default_lr\n"))
    assert runs() == 1


# -- values pickle reduces through copyreg (re.Pattern, int | str) ------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param(lambda: re.compile("a"), lambda: re.compile("b"), id="pattern"),
        pytest.param(lambda: re.compile("a"), lambda: re.compile("a", re.I), id="pattern-flags"),
        pytest.param(lambda: re.compile("a"), lambda: re.compile(b"a"), id="pattern-bytes"),
        pytest.param(
            lambda: re.compile("a").match("a"), lambda: re.compile("b").match("b"), id="match"
        ),
        pytest.param(
            lambda: re.compile("a").search("ab"),
            lambda: re.compile("a").search("ba"),
            id="match-position",
        ),
        pytest.param(lambda: int | str, lambda: int | float, id="union-type"),
        pytest.param(lambda: hashlib.sha256(b"a"), lambda: hashlib.sha256(b"b"), id="hash-content"),
        pytest.param(hashlib.sha256, hashlib.md5, id="hash-algorithm"),
        pytest.param(
            lambda: hashlib.blake2b(b"a"), lambda: hashlib.blake2b(b"b"), id="blake2-content"
        ),
        pytest.param(
            lambda: hashlib.shake_128(b"a"), lambda: hashlib.shake_128(b"b"), id="shake-content"
        ),
    ],
)
def test_values_pickle_reduces_through_copyreg_get_their_own_fingerprints(
    a: Callable[[], Any], b: Callable[[], Any]
) -> None:
    assert fingerprint(a()) == fingerprint(a())
    assert fingerprint(a()) != fingerprint(b())


def test_a_cell_using_a_compiled_pattern_runs_again_when_the_pattern_changes(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    cell = "%%checkpoint words\ntick()\nfound = pat.findall('Ab ab')\n"
    ok(run_cell("import re\npat = re.compile('ab')"))
    ok(run_cell(cell))
    ok(run_cell(cell))
    assert runs() == 1
    ok(run_cell("pat = re.compile('ab', re.I)"))
    again = ok(run_cell(cell))
    assert runs() == 2
    assert "'pat'" in again.note_text, again.note_text
    assert shell.user_ns["found"] == ["Ab", "ab"]


# -- a class's string annotations name globals typing.get_type_hints reads ----------------------

HINTS = {
    "string-annotation": "class Row:\n    x: 'Unit'",
    "future-annotations": "from __future__ import annotations\nclass Row:\n    x: Unit",
    "dataclass": (
        "from __future__ import annotations\nimport dataclasses\n"
        "@dataclasses.dataclass\nclass Row:\n    x: list[Unit]"
    ),
    "inherited": "class Base:\n    x: 'Unit'\nclass Row(Base):\n    pass",
}


@pytest.mark.parametrize("case", list(HINTS))
def test_a_cell_resolving_type_hints_runs_again_when_a_named_type_changes(
    case: str, shell: InteractiveShell, run_cell: RunCell
) -> None:
    cell = "%%checkpoint hints\ntick()\nimport typing\nhints = typing.get_type_hints(Row)\n"
    try:
        ok(run_cell(f"Unit = int\n{HINTS[case]}"))
    finally:
        shell.compile.reset_compiler_flags()  # NB. the shell outlives the test
    ok(run_cell(cell))
    ok(run_cell(cell))
    assert runs() == 1
    ok(run_cell("Unit = str"))
    again = ok(run_cell(cell))
    assert runs() == 2
    assert "'Row'" in again.note_text, again.note_text
    assert "str" in repr(shell.user_ns["hints"])


# -- cell magics stacked under %%checkpoint --------------------------------------------------------


@pytest.mark.parametrize("magic", ["writefile", "file", "writefile -a"])
def test_a_writefile_cell_runs_every_time_with_a_note(
    magic: str, shell: InteractiveShell, run_cell: RunCell
) -> None:
    """A hit would replay 'Writing mod1.py' without writing it: a deleted file stayed deleted."""
    cell = f"%%checkpoint wf\n%%{magic} mod1.py\nK = 1\n"
    note = "%%writefile writes 'mod1.py': a hit would not write it"
    with pytest.warns(CheckpointWarning, match=re.escape(note)):
        ok(run_cell(cell))
    Path("mod1.py").unlink()
    with pytest.warns(CheckpointWarning, match=re.escape(note)):
        ok(run_cell(cell))
    assert Path("mod1.py").read_text().strip() == "K = 1"


def test_a_captured_cell_restores_its_capture_in_a_new_kernel(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    cell = "%%checkpoint cap\n%%capture out\ntick()\nprint('hello')\ny = K * 2\n"
    shell.user_ns["K"] = 1
    assert ok(run_cell(cell)).outputs == []
    new_kernel(shell)
    shell.user_ns["K"] = 1
    again = ok(run_cell(cell))
    assert restored(again)
    assert runs() == 1
    assert shell.user_ns["out"].stdout == "hello\n"
    assert shell.user_ns["y"] == 2
    shell.user_ns["K"] = 2
    ok(run_cell(cell))
    assert runs() == 2
    assert shell.user_ns["y"] == 4


# -- files: not tracked, and the workarounds docs/decisions.md gives work ------------------------

READ_CSV = "%%checkpoint load\ntick()\nimport pandas as pd\ndf = pd.read_csv('data.csv')\n"


def test_a_file_read_by_path_is_not_an_input_as_documented(run_cell: RunCell) -> None:
    Path("data.csv").write_text("a\n1\n")
    ok(run_cell(READ_CSV))
    Path("data.csv").write_text("a\n2\n")
    ok(run_cell(READ_CSV))
    assert runs() == 1  # the documented limit ("Not tracked": files the cell reads)


@pytest.mark.parametrize(
    ("plain", "cell"),
    [
        pytest.param(
            "from pathlib import Path\nraw = Path('data.csv').read_bytes()",
            "import io\nimport pandas as pd\ndf = pd.read_csv(io.BytesIO(raw))",
            id="content",
        ),
        pytest.param(
            "import os\nst = os.stat('data.csv')\ndata_sig = (st.st_size, st.st_mtime_ns)",
            "data_sig\nimport pandas as pd\ndf = pd.read_csv('data.csv')",
            id="signature",
        ),
    ],
)
def test_the_documented_workarounds_make_a_data_file_an_input(
    plain: str, cell: str, shell: InteractiveShell, run_cell: RunCell
) -> None:
    checkpoint = f"%%checkpoint load\ntick()\n{cell}\n"
    Path("data.csv").write_text("a\n1\n")
    ok(run_cell(plain))
    ok(run_cell(checkpoint))
    ok(run_cell(checkpoint))
    assert runs() == 1
    Path("data.csv").write_text("a\n22\n")  # NB. another size: mtime alone may not move
    ok(run_cell(plain))
    ok(run_cell(checkpoint))
    assert runs() == 2
    assert shell.user_ns["df"]["a"].tolist() == [22]


# -- pandas options: global state like rcParams -------------------------------------------------

# pandas-cookbook chapter 4 sets display.width in its first cell: restored in a new kernel, the
# setting was lost, and every later cell that ran again printed frames at another width
SET_OPTIONS = (
    "%%checkpoint setup\ntick()\nimport pandas as pd\n"
    "pd.set_option('display.width', 5000)\npd.set_option('display.max_rows', 4)\n"
)
SHOW = "%%checkpoint show\ntick()\nframe = pd.DataFrame({'a': range(10)})\nframe\n"


def test_a_hit_applies_the_pandas_options_its_run_set(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    import pandas as pd

    try:
        ok(run_cell(SET_OPTIONS))
        pd.reset_option("display.width")
        pd.reset_option("display.max_rows")
        new_kernel(shell)
        assert restored(ok(run_cell(SET_OPTIONS)))
        assert runs() == 1
        assert pd.get_option("display.width") == 5000
        assert pd.get_option("display.max_rows") == 4
    finally:
        pd.reset_option("display.width")
        pd.reset_option("display.max_rows")


def test_pandas_options_are_an_input_of_a_cell_that_shows_something(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    import pandas as pd

    try:
        ok(run_cell("import pandas as pd"))
        first = ok(run_cell(SHOW))
        assert restored(ok(run_cell(SHOW)))
        ok(run_cell("pd.set_option('display.max_rows', 4)"))
        again = ok(run_cell(SHOW))
        assert runs() == 2
        assert "'pd.options'" in again.note_text, again.note_text
        assert again.outputs != first.outputs  # the frame printed in 4 rows, as a plain cell would
        ok(run_cell("pd.reset_option('display.max_rows')"))
        assert restored(ok(run_cell(SHOW)))
        assert runs() == 2
    finally:
        pd.reset_option("display.max_rows")


def test_two_stylers_of_one_frame_are_the_same_input_and_other_styles_are_not() -> None:
    import pandas as pd

    frame = pd.DataFrame({"a": [1.0, 2.0]})
    assert fingerprint(frame.style) == fingerprint(frame.style)
    assert fingerprint(frame.style) != fingerprint(frame.style.format("{:.1f}").hide())
    assert fingerprint(frame.style) != fingerprint((frame + 1).style)


# -- a setting put on a local module (a .py file next to the notebook) --------------------------


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ("settings.SCALE = 5", "settings.SCALE"),
        ("settings.CONFIG['lr'] = 0.5", "settings.CONFIG"),
        ("settings.configure(7)", "settings.SCALE"),
    ],
)
def test_a_setting_put_on_a_local_module_is_put_back_by_a_hit_in_a_new_kernel(
    body: str,
    check: str,
    shell: InteractiveShell,
    run_cell: RunCell,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib
    import sys

    monkeypatch.syspath_prepend(str(Path.cwd()))
    Path("settings.py").write_text(
        "SCALE = 1\nCONFIG = {'lr': 0.1}\ndef configure(s):\n    global SCALE\n    SCALE = s\n"
    )
    importlib.invalidate_caches()
    cell = f"%%checkpoint setup\ntick()\n{body}\n"
    try:
        ok(run_cell("import settings"))
        ok(run_cell(cell))
        expected = eval(check, shell.user_ns)
        new_kernel(shell)
        del sys.modules["settings"]
        ok(run_cell("import settings"))
        assert restored(ok(run_cell(cell)))
        assert runs() == 1
        assert eval(check, shell.user_ns) == expected
        assert shell.user_ns["settings"] is sys.modules["settings"]
    finally:
        sys.modules.pop("settings", None)


def test_a_hit_applies_the_numpy_print_options_its_run_set(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    """fastai's 'How to Implement Linear Regression' sets them in a cell that also shows R."""
    import numpy as np

    cell = "%%checkpoint opts\ntick()\nimport numpy as np\nnp.set_printoptions(precision=2)\n"
    show = "%%checkpoint show\ntick()\nnp.array([1 / 3])\n"
    try:
        ok(run_cell(cell))
        first = ok(run_cell(show))
        np.set_printoptions(precision=8)
        new_kernel(shell)
        assert restored(ok(run_cell(cell)))
        assert np.get_printoptions()["precision"] == 2
        assert restored(ok(run_cell(show)))
        assert runs() == 2
        ok(run_cell("np.set_printoptions(precision=5)"))
        again = ok(run_cell(show))
        assert runs() == 3
        assert "'np.printoptions'" in again.note_text, again.note_text
        assert again.outputs != first.outputs
    finally:
        np.set_printoptions(precision=8)


# -- `from package import submodule` restored in a kernel that has not imported the submodule ---


def test_a_submodule_imported_by_name_is_restored_before_its_package_loaded_it(
    shell: InteractiveShell,
    run_cell: RunCell,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """fastai's gradient-descent-intro: `from matplotlib import animation` in a new kernel, where
    matplotlib was imported but not matplotlib.animation: the entry could not be unpickled."""
    import sys

    site = tmp_path_factory.mktemp("site")  # NB. outside the notebook's folder: "installed"
    (site / "pkgsub").mkdir()
    (site / "pkgsub" / "__init__.py").write_text("")
    (site / "pkgsub" / "anim.py").write_text("FRAMES = 3\n")
    monkeypatch.syspath_prepend(str(site))
    cell = "%%checkpoint sub\ntick()\nimport pkgsub\nfrom pkgsub import anim\nn = anim.FRAMES\n"
    try:
        ok(run_cell(cell))
        new_kernel(shell)
        del sys.modules["pkgsub.anim"]
        del sys.modules["pkgsub"].anim
        again = ok(run_cell(cell))
        assert restored(again), again.note_text
        assert runs() == 1
        assert shell.user_ns["anim"] is sys.modules["pkgsub.anim"]
        assert shell.user_ns["n"] == 3
    finally:
        for name in ("pkgsub.anim", "pkgsub"):
            sys.modules.pop(name, None)


def test_an_attribute_that_cannot_be_saved_is_left_unset_not_the_class_deleted(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    define = "class Model:\n    lock = 'an older value'\n"
    cell = (
        "%%checkpoint lock\ntick()\nimport threading\nModel.lock = threading.Lock()\nModel.n = 3\n"
    )
    ok(run_cell(define))
    with pytest.warns(
        CheckpointWarning, match="could not save attribute 'lock' the cell set on 'Model'"
    ):
        ok(run_cell(cell))
    new_kernel(shell)
    ok(run_cell(define))
    assert restored(ok(run_cell(cell)))
    assert runs() == 1
    model = shell.user_ns["Model"]
    assert model.n == 3
    assert not hasattr(model, "lock")  # not the older value


# -- ipywidgets: a widget holds the kernel's comm -------------------------------------------------

WIDGET_CELL = """%%checkpoint slider
import ipywidgets as widgets
w = widgets.IntSlider(value=3, description='n')
box = widgets.VBox([w, widgets.Text(value='t')])
w.value = 7
"""


READ_WIDGET = "%%checkpoint read\ndoubled = w.value * 2\n"


@pytest.mark.kernel
def test_a_widget_made_in_a_checkpoint_cell_is_restored_in_a_new_kernel(kernels: Any) -> None:
    """ipywidgets' Widget Basics: restored in a new kernel, `w` was deleted ("could not be
    saved": the comm holds a lock) and every later `display(w)`, `w.value` failed."""
    from kernel_helpers import note_kinds

    kernel = kernels.start()
    kernel.run("%load_ext nbresume")
    first = kernel.run(WIDGET_CELL)
    assert not [o for o in first if o.get("name") == "stderr"], first
    kernel.run(READ_WIDGET)
    kernel.restart()
    kernel.run("%load_ext nbresume")
    again = kernel.run(WIDGET_CELL)
    assert "restored" in note_kinds(again), again
    assert not [o for o in again if o.get("name") == "stderr"], again
    assert "restored" in note_kinds(kernel.run(READ_WIDGET))  # the same input in a new kernel
    assert kernel.eval("(w.value, w.description, box.children[0] is w, box.children[1].value)") == (
        "(7, 'n', True, 't')"
    )


def test_a_widget_counts_by_its_class_and_synced_traits() -> None:
    import ipywidgets as widgets

    assert fingerprint(widgets.IntSlider(value=3)) == fingerprint(widgets.IntSlider(value=3))
    assert fingerprint(widgets.IntSlider(value=3)) != fingerprint(widgets.IntSlider(value=4))
    assert fingerprint(widgets.IntSlider(value=3)) != fingerprint(widgets.IntText(value=3))
    box = widgets.VBox([widgets.Text(value="a")])
    assert fingerprint(box) != fingerprint(widgets.VBox([widgets.Text(value="b")]))


def test_widgets_made_from_their_traits_are_rebuilt_and_interactive_is_not() -> None:
    import ipywidgets as widgets

    from nbresume._widgets import rebuild_widget, widget_reduction

    a, b = widgets.FloatText(value=1.5), widgets.FloatSlider()
    link = widgets.jslink((a, "value"), (b, "value"))
    reduced = widget_reduction(link)
    assert reduced is not None
    again = rebuild_widget(*reduced[1])
    assert again.source == (a, "value")
    assert again.target == (b, "value")
    assert widget_reduction(widgets.interactive(lambda x: x, x=1)) is None


def test_interact_on_a_notebook_function_restores_quietly(
    shell: InteractiveShell, run_cell: RunCell
) -> None:
    """ipywidgets' Using Interact: `interact(f, x=10)` sets f.widget (an `interactive`)."""
    ok(run_cell("import ipywidgets as widgets\ndef f(x):\n    return x"))
    cell = "%%checkpoint interact\ntick()\nwidgets.interact(f, x=10);\n"
    ok(run_cell(cell))  # NB. no warning (filterwarnings = error)
    new_kernel(shell)
    ok(run_cell("import ipywidgets as widgets\ndef f(x):\n    return x"))
    assert restored(ok(run_cell(cell)))
    assert runs() == 1
    assert shell.user_ns["f"](3) == 3
