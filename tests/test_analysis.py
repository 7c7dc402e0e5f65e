"""analyze_cell on the idioms that could hide an input: branches, globals, magics, dynamic reads."""

from __future__ import annotations

import pytest

from nbresume._keys import analyze_cell


@pytest.mark.parametrize(
    ("source", "inputs"),
    [
        pytest.param("if a:\n    n = 1\nelse:\n    n = 2\ny = n", {"a"}, id="both-branches"),
        pytest.param("if a:\n    n = 1\ny = n", {"a", "n"}, id="one-branch"),
        pytest.param("if a:\n    n = 1\nelif b:\n    n = 2\ny = n", {"a", "b", "n"}, id="elif"),
        pytest.param("while a:\n    n = 1\ny = n", {"a", "n"}, id="while-body"),
        pytest.param("for i in xs:\n    n = i\ny = n + i", {"xs", "n", "i"}, id="for-body"),
        pytest.param(
            "try:\n    n = f()\nexcept E:\n    n = 0\ny = n", {"f", "E"}, id="try-every-path"
        ),
        pytest.param("try:\n    n = f()\nexcept E:\n    pass\ny = n", {"f", "E", "n"}, id="try"),
        pytest.param("try:\n    n = f()\nfinally:\n    m = 1\ny = n + m", {"f"}, id="try-finally"),
        pytest.param("y = a and (n := 1)\nz = n", {"a", "n"}, id="walrus-short-circuit"),
        pytest.param("y = (n := 1) if a else 0\nz = n", {"a", "n"}, id="walrus-ternary"),
        pytest.param(
            "match p:\n    case 1:\n        n = 1\n    case _:\n        n = 2\ny = n",
            {"p", "n"},
            id="match",
        ),
        pytest.param("del n\nn = 1\ny = n", set(), id="del-then-assign"),
        pytest.param("[v := x for x in xs]\ny = v", {"xs", "v"}, id="walrus-in-empty-comp"),
        pytest.param(
            "def f():\n    def g():\n        global K\n        return K\n    return g()\ny = f()",
            {"K"},
            id="global-in-a-nested-function",
        ),
        pytest.param(
            "K = 1\ndef f():\n    global K\n    return K\n", set(), id="global-assigned-first"
        ),
    ],
)
def test_a_name_assigned_on_some_paths_only_is_an_input(source: str, inputs: set[str]) -> None:
    assert set(analyze_cell(source).inputs) == inputs


def test_a_global_a_function_in_the_cell_assigns_is_an_output() -> None:
    names = analyze_cell("def f():\n    def g():\n        global K\n        K = 1\n    g()\nf()")
    assert "K" in names.outputs
    assert "K" in names.conditional  # assigned only if g runs: the engine saves it if it moved


def test_names_assigned_on_some_paths_only_are_marked_conditional() -> None:
    names = analyze_cell("a = 1\nif b:\n    c = 2\nfor d in e:\n    f = d\nx[0] = 1")
    assert set(names.conditional) == {"c", "d", "f"}
    assert {"a", "c", "d", "f", "x"} <= set(names.outputs)


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("y = globals()['K']", "globals()"),
        ("globals()['K'] = 1", "globals()"),
        ("y = eval('K')", "eval()"),
        ("exec('y = K')", "exec()"),
        ("y = vars()['K']", "vars()"),
        ("y = locals()['K']", "locals()"),
        ("def f():\n    return eval(s)\ny = f()", "eval()"),
        ("y = [globals() for _ in range(2)]", "globals()"),
        ("import __main__\ny = __main__.K", "__main__"),
        ("import sys\ny = sys.modules['__main__'].K", "sys.modules['__main__']"),
        ("y = get_ipython().user_ns['K']", "get_ipython().user_ns"),
        ("get_ipython().run_line_magic('run', '-i job.py')", "%run -i"),
        ("get_ipython().run_line_magic('run', '$script')", "%run from a variable"),
    ],
)
def test_a_cell_reading_globals_dynamically_is_refused_with_a_note(source: str, what: str) -> None:
    note = analyze_cell(source).dynamic
    assert note is not None
    assert what in note
    assert note.endswith("dynamically: use --force or --no-deps")


@pytest.mark.parametrize(
    "source",
    [
        "y = eval(expr, {'x': 1})",
        "y = vars(obj)",
        "def f():\n    return locals()\n",
        "y = obj.globals()",
        "y = exec_time + evaluate(x)",
    ],
)
def test_reads_that_are_not_dynamic_are_not_refused(source: str) -> None:
    assert analyze_cell(source).dynamic is None


@pytest.mark.parametrize(
    ("source", "files"),
    [
        ("get_ipython().run_line_magic('run', 'a.py')", ("a.py",)),
        ("get_ipython().run_line_magic('run', '-t -N 3 b.py x y')", ("b.py",)),
        ("get_ipython().run_line_magic('run', '\"my file.py\"')", ("my file.py",)),
        ("def f():\n    get_ipython().run_line_magic('run', 'c.py')", ("c.py",)),
        ("get_ipython().run_line_magic('time', 'x = 1')", ()),
    ],
)
def test_run_files_are_listed(source: str, files: tuple[str, ...]) -> None:
    assert analyze_cell(source).run_files == files


@pytest.mark.parametrize(
    ("source", "inputs", "outputs"),
    [
        ("get_ipython().run_line_magic('time', 'model = fit(X)')", {"fit", "X"}, {"model"}),
        ("get_ipython().run_line_magic('timeit', '-n 3 -r 1 fit(X)')", {"fit", "X"}, set()),
        ("get_ipython().run_line_magic('timeit', 'z = fit(X)')", {"fit", "X"}, set()),
        ("get_ipython().run_cell_magic('time', '', 'model = fit(X)\\n')", {"fit", "X"}, {"model"}),
        ("get_ipython().run_cell_magic('capture', 'out', 'print(v)\\n')", {"print", "v"}, {"out"}),
        ("get_ipython().system('ls {folder} $pattern')", {"folder", "pattern"}, set()),
        ("files = get_ipython().getoutput('ls {base / sub}')", {"base", "sub"}, {"files"}),
        ("get_ipython().run_line_magic('env', 'DATA={path}')", {"path"}, set()),
    ],
)
def test_code_and_expansions_inside_magics_are_read(
    source: str, inputs: set[str], outputs: set[str]
) -> None:
    names = analyze_cell(source)
    assert set(names.inputs) - {"get_ipython"} == inputs
    assert outputs <= set(names.outputs)
