"""The docs tell the truth where a machine can check it: the public API's docstring examples run
(they are on the docs site's API page), and every relative link in README.md and docs/ leads to a
file of the checkout (GitHub shows them as they are). The site itself is built strict by
`make docs` in CI (.ci/run), not here: it needs the docs extra."""

from __future__ import annotations

import builtins
import doctest
import re
from pathlib import Path

import pytest

import nbresume

REPO = Path(__file__).resolve().parent.parent
# [text](target) and ![alt](target), outside code; the target up to a space, ')' or '#'
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s#]*)(#[^)\s]*)?\)")


def test_public_docstring_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBRESUME_DIR", str(tmp_path / "store"))
    # NB. doctest's displayhook sets builtins._, after which IPython's shells stop setting `_`
    monkeypatch.setattr(builtins, "_", None, raising=False)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = [
        test
        for name in nbresume.__all__
        for test in finder.find(
            getattr(nbresume, name), name, globs={"resumable": nbresume.resumable}
        )
        if test.examples
    ]
    assert {test.name for test in tests} >= {"resumable", "resumable.map"}
    for test in tests:
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} docstring example(s) failed; see stdout"


def _prose(text: str) -> str:
    """``text`` without fenced code blocks: a link inside one is an example, not a link."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


MARKDOWN = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda path: str(path.relative_to(REPO)))
def test_relative_links_lead_to_files_of_the_checkout(page: Path) -> None:
    broken = []
    for target, _anchor in LINK.findall(_prose(page.read_text())):
        if not target or re.match(r"[a-z]+:", target):  # an anchor on the page, or a URL
            continue
        if not (page.parent / target).exists():
            broken.append(target)
    assert not broken, f"{page.name} links to files that do not exist: {broken}"


def test_readme_links_every_docs_page() -> None:
    readme = (REPO / "README.md").read_text()
    pages = {
        path.name
        for path in (REPO / "docs").glob("*.md")
        # the site's own pages (an index, includes of README.md and CHANGELOG.md) and PyPI's
        if path.name
        not in ("index.md", "quickstart.md", "guide.md", "reference.md", "changelog.md", "pypi.md")
    }
    linked = {Path(target).name for target, _ in LINK.findall(readme) if target.startswith("docs/")}
    assert pages <= linked, f"docs pages the README does not link: {sorted(pages - linked)}"


def test_pypi_description_has_no_relative_links() -> None:
    # PyPI shows the long description on its own: a relative image or link would be broken there
    text = _prose((REPO / "docs" / "pypi.md").read_text())
    relative = [t for t, _ in LINK.findall(text) if t and not re.match(r"https?://", t)]
    assert not relative, f"docs/pypi.md has relative links PyPI cannot follow: {relative}"


# -- every option and command is documented, where users look ------------------------------------

COMMANDS_PAGE = REPO / "docs" / "commands.md"


def test_every_checkpoint_option_is_in_the_help_and_on_the_commands_page() -> None:
    from nbresume._magics import CHECKPOINT_DOC, _cell_parser

    page = COMMANDS_PAGE.read_text()
    options = [o for a in _cell_parser()._actions for o in a.option_strings]
    assert options, "the parser has no options: this test would check nothing"
    missing = [o for o in options if o not in CHECKPOINT_DOC or f"`{o}" not in page]
    assert not missing, f"options missing from %%checkpoint? or docs/commands.md: {missing}"


def test_the_help_states_the_adaptive_snapshot_default_of_resumable() -> None:
    from nbresume._magics import CHECKPOINT_DOC
    from nbresume.resumable import SNAPSHOT_BUDGET

    (every,) = [line for line in CHECKPOINT_DOC.splitlines() if line.strip().startswith("--every")]
    assert f"{SNAPSHOT_BUDGET:.0%}" in every, every
    assert "10 s" not in every, every  # the policy before issue 14


def test_every_line_command_is_on_the_commands_page() -> None:
    from nbresume._commands import _COMMANDS, USAGE

    page = COMMANDS_PAGE.read_text()
    commands = {"status", "list", "clear", "dir", "hints", *_COMMANDS}
    missing = [c for c in sorted(commands) if c not in USAGE or f"`{c}" not in page]
    assert not missing, (
        f"%checkpoint commands missing from its usage or docs/commands.md: {missing}"
    )


def test_every_cli_command_and_option_is_on_the_commands_page() -> None:
    import argparse

    from nbresume.cli import build_parser

    page = COMMANDS_PAGE.read_text()
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    missing = []
    for name, command in sub.choices.items():
        if f"nbresume {name}" not in page and f"| {name}" not in page:
            missing.append(name)
        for action in command._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help", "--prefix") and option not in page:
                    missing.append(f"{name} {option}")
    assert not missing, f"not on docs/commands.md: {missing}"


def test_the_status_example_on_the_docs_site_matches_the_schema() -> None:
    import json

    import jsonschema

    schema = json.loads((REPO / "docs" / "status.schema.json").read_text())
    example = json.loads((REPO / "docs" / "status.example.json").read_text())
    jsonschema.validate(
        example, schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
