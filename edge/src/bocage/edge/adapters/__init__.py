"""Adapters: where readings come from (simulator, MQTT/ChirpStack, HTTP push, CSV replay).

An adapter is a :class:`Source`: an object with ``async def run(sink, stop)`` that turns its
input into :class:`~bocage.edge.reading.Reading` objects and hands them to the :class:`Sink`
(the agent). Input it cannot understand is reported with ``sink.reject(reason)`` and the
adapter carries on: a malformed payload never stops a gateway.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from bocage.core.events import Alarm
from bocage.edge.reading import Reading


class Sink(Protocol):
    """What adapters feed: the agent's filter → batch → spool pipeline."""

    def push(self, reading: Reading, *, redelivered: bool = False) -> None:
        """One reading (validated and counted by the filters).

        ``redelivered``: the input may have been handed over before (an MQTT message with the
        DUP flag after a crash or a reconnection, a retained message): the reading is dropped,
        counted ``filtered[redelivered]``, if its series already holds a reading at or after
        its time in the spool (persisted watermark) or in the open batch.
        """

    def reject(self, reason: str, count: int = 1) -> None:
        """Input that could not become readings (bad JSON, unknown device...), counted."""

    def alarm(self, alarm: Alarm) -> None:
        """A device event operators must know now (tamper, fault): sent ahead of data."""

    def watermark(self, sensor: str, metric: str) -> int | None:
        """Newest time already accepted into the spool for this series (replay resumes
        after it), or None."""

    def sampling_factor(self) -> float:
        """How much live sampling should slow down (2 on a low battery, else 1)."""

    async def breathe(self) -> None:
        """Yield to the event loop (adapters call it every few thousand readings)."""

    def checkpoint(self) -> int:
        """A mark covering everything pushed so far (for :meth:`settled`)."""

    async def settled(self, checkpoint: int) -> int:
        """Return once every reading pushed before ``checkpoint`` was taken is durable in the
        spool under its fsync policy, or will never be (refused, filtered, or held in a
        downsampling window). Sources that acknowledge their input (MQTT) wait for this.
        Returns the newest checkpoint settled so far (at least ``checkpoint``)."""

    def commit(self) -> None:
        """Spool the open batch now and make the spool durable (a source holding input it has
        not acknowledged calls this rather than wait for the batch's age)."""


class Source(Protocol):
    """An adapter instance."""

    name: str

    async def run(self, sink: Sink, stop: asyncio.Event) -> None:
        """Produce readings until ``stop`` is set or the input is exhausted."""
