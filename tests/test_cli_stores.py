"""``nbresume list/status/show/history/log`` without ``--dir``: the store next to the notebooks.

``nbresume run notebooks/x.ipynb`` leaves its store in notebooks/.nbresume. Run from the project's
folder, the reading commands find it as the dashboard does (hidden folders skipped), say which
store they read, and show every store when there are several; the commands that write never
guess.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbresume import _store
from nbresume._store import Store, StoreReader
from nbresume.cli import main


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NBRESUME_DIR", raising=False)
    monkeypatch.setenv("NBRESUME_KEY", "a-test-key-of-32-bytes-or-more!!")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    stores: dict[Path, Store] = {}
    monkeypatch.setattr(_store, "_stores", stores)
    yield tmp_path
    for store in stores.values():
        store.close()


def make_store(folder: Path, *names: str) -> Path:
    store = Store(folder / ".nbresume")
    try:
        for name in names:
            store.put_json(f"phase:{name}", {"name": name, "status": "done", "versions": []})
            store.put_json(f"events:{name}", [{"t": 1.0, "event": "started", "text": "started"}])
    finally:
        store.close()
    return folder / ".nbresume"


@pytest.mark.parametrize(
    "argv",
    [["list"], ["status"], ["show", "train"], ["history", "train"], ["log"], ["log", "train"]],
)
def test_the_only_store_under_the_folder_is_read_and_named(
    capsys: pytest.CaptureFixture[str], project: Path, argv: list[str]
) -> None:
    make_store(project / "notebooks", "train")
    code, out, err = cli(capsys, *argv)
    assert code == 0, err
    assert "train" in out or argv[0] == "log", out
    assert err == (
        "nbresume: reading notebooks/.nbresume, the only store under this folder "
        "(--dir chooses another)\n"
    )


def test_status_json_of_the_only_store_stays_valid_json_and_names_it(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    path = make_store(project / "notebooks", "train")
    code, out, err = cli(capsys, "status", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["store"] == str(path)
    assert "notebooks/.nbresume" in err


def test_several_stores_are_all_listed(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    make_store(project / "a", "alpha")
    make_store(project / "b" / "deep", "beta")
    for command in ("list", "status"):
        code, out, err = cli(capsys, command)
        assert code == 0, err
        assert out.index("a/.nbresume") < out.index("alpha") < out.index("b/deep/.nbresume")
        assert out.index("b/deep/.nbresume") < out.index("beta")
        assert "2 stores under this folder" in err


@pytest.mark.parametrize(
    "argv", [["show", "alpha"], ["history", "alpha"], ["log"], ["status", "--json"]]
)
def test_with_several_stores_a_command_about_one_asks_for_dir(
    capsys: pytest.CaptureFixture[str], project: Path, argv: list[str]
) -> None:
    make_store(project / "a", "alpha")
    make_store(project / "b", "beta")
    code, out, err = cli(capsys, *argv)
    assert code == 1
    assert out == ""
    (line,) = err.splitlines()
    assert "several checkpoint stores under this folder: a/.nbresume, b/.nbresume" in line
    assert "--dir" in line


@pytest.mark.parametrize(
    "argv",
    [["clear", "train"], ["clear", "--all"], ["gc", "--keep-last", "1"], ["rollback", "train"]],
)
def test_commands_that_write_never_guess_the_store_but_name_the_one_found(
    capsys: pytest.CaptureFixture[str], project: Path, argv: list[str]
) -> None:
    path = make_store(project / "notebooks", "train")
    code, _, err = cli(capsys, *argv)
    assert code == 1
    (line,) = err.splitlines()
    assert "no checkpoint store at" in line
    assert "found notebooks/.nbresume: pass --dir notebooks" in line
    with StoreReader(path) as reader:
        assert reader.get_json("phase:train") is not None


def test_the_store_of_the_folder_itself_comes_first_and_is_not_announced(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    make_store(project, "here")
    make_store(project / "notebooks", "there")
    code, out, err = cli(capsys, "list")
    assert code == 0, err
    assert "here" in out
    assert "there" not in out
    assert err == ""


def test_nbresume_dir_is_never_second_guessed(
    capsys: pytest.CaptureFixture[str], project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_store(project / "notebooks", "train")
    monkeypatch.setenv("NBRESUME_DIR", str(project / "elsewhere"))
    code, _, err = cli(capsys, "list")
    assert code == 1
    assert "no checkpoint store at" in err


def test_stores_in_hidden_folders_are_not_found(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    make_store(project / ".cache", "hidden")
    code, _, err = cli(capsys, "list")
    assert code == 1
    assert "found" not in err
    assert ".cache" not in err
