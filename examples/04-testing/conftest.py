"""Lets `python -m pytest test_regression.py` run from a clone where racefree is
not installed: puts the clone's src/ on the path and enables racefree's pytest
plugin, which an installed racefree enables by itself."""

import _lesson  # noqa: F401  (puts the clone's src/ on the path)
import pytest


def pytest_configure(config: pytest.Config) -> None:
    import racefree.pytest_plugin as plugin

    if not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin, "racefree")
