"""Helpers the connector contract offers every connector."""

from __future__ import annotations

from datetime import datetime

import pytest

from personalize.connectors import parse_time


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5)),  # Shopify, HubSpot
        ("2026-01-02T05:04:05+02:00", datetime(2026, 1, 2, 3, 4, 5)),  # Mailchimp's offsets
        ("2026-01-02 03:04:05", datetime(2026, 1, 2, 3, 4, 5)),  # files without a zone are UTC
        (1767323045, datetime(2026, 1, 2, 3, 4, 5)),  # epoch seconds
        ("", None),
        (None, None),
        ("yesterday", None),
    ],
)
def test_parse_time_gives_naive_utc_or_none(value, expected):
    assert parse_time(value) == expected
