"""Imports every module that defines tables, so the metadata (and Alembic) sees them all.

A package that adds tables adds one import line here.
"""

from . import models  # noqa: F401
