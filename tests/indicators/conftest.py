"""Fixtures of the indicator tests: a real chDB store per test and a writer of readings."""

from __future__ import annotations

from territory_sample import statuses, store, writer

__all__ = ["statuses", "store", "writer"]
