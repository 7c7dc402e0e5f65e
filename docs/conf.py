"""Sphinx configuration of the nbresume docs: `make docs` builds them into build/docs.

The build is strict (`-W --keep-going -n`) and offline: no intersphinx, nothing fetched.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # NB. autodoc documents this checkout, not an installed copy

import nbresume  # noqa: E402

project = "nbresume"
author = "the nbresume authors"
copyright = "the nbresume authors"
release = version = nbresume.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # the public API's docstrings are numpydoc
]
source_suffix = {".md": "markdown"}
root_doc = "index"
# pypi.md is the PyPI page (pyproject's readme), not a page of this site
exclude_patterns = ["pypi.md", "_build"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3  # README-style #section links between pages resolve

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_typehints_description_target = "documented"
# `name` in a docstring is a reference to a Python object, checked by -n like any other
default_role = "py:obj"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

# With -n every reference must resolve. Names of the standard library would resolve through
# intersphinx, which fetches inventories over the network: the build is offline, so those (and only
# those) are left unlinked. nbresume's own names must resolve.
nitpick_ignore_regex = [(r"py:class", r"collections\.abc\..*")]
# numpydoc's words for a parameter's kind ("callable, optional"), not classes
napoleon_preprocess_types = True
nitpick_ignore = [("py:class", "callable"), ("py:class", "iterable")]

html_theme = "pydata_sphinx_theme"
html_title = f"nbresume {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path: list[str] = []
html_show_sourcelink = False
