"""Fixtures for the sync engine: an empty site, and a test connector plugin registered for one test."""

from __future__ import annotations

import pytest

from personalize.sync.testing import recording_sleep


@pytest.fixture
def shop(ctx):
    from personalize.sites import create_site

    site, _secret = create_site("Sync shop")
    return site


@pytest.fixture
def sleep():
    return recording_sleep()


@pytest.fixture
def register(app):
    """register(*connector_classes): make connectors available to this test's app, as a plugin would."""
    from personalize import hookimpl

    pm = app.extensions["personalize.plugins"].pm
    added = []

    def add(*classes):
        class Plugin:
            @hookimpl
            def register_connectors(self):
                return list(classes)

        plugin = Plugin()
        pm.register(plugin)
        added.append(plugin)

    yield add
    for plugin in added:
        pm.unregister(plugin)
