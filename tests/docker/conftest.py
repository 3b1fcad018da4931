"""Fixtures for the docker setup's tests."""
from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

from tests.support.docker import DOCKER


@pytest.fixture(scope="session")
def render() -> ModuleType:
    """docker/asterisk/render.py, the docker Asterisk's entrypoint, as a module."""
    spec = importlib.util.spec_from_file_location("caseline_docker_render", DOCKER / "asterisk" / "render.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
