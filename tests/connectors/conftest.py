"""Fixtures for the first-party connectors: a site and a recording sleep."""

from __future__ import annotations

import pytest

from personalize.sync.testing import recording_sleep


@pytest.fixture
def shop(ctx):
    from personalize.sites import create_site

    site, _secret = create_site("Connector shop")
    return site


@pytest.fixture
def sleep():
    return recording_sleep()
