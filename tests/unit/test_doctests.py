"""The wire and number examples in docstrings stay true: doctests of agi/ and ari_app/core/."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import agi
import ari_app.core

MODULES = sorted(
    name for package in (agi, ari_app.core)
    for _, name, _ in pkgutil.walk_packages(package.__path__, package.__name__ + "."))
# modules whose examples are the documentation of a wire format or a rule: they must have some
MUST_HAVE_EXAMPLES = {"agi.protocol", "ari_app.core.numbers"}


# the lab's wire helpers too (scripts/ is on pytest's pythonpath)
MODULES += ["labkit.baresip"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} example(s) failed in {name}"
    if name in MUST_HAVE_EXAMPLES:
        assert result.attempted > 0, f"{name} lost its examples"
