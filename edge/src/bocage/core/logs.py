"""Structured logs: one line per event, ``key=value`` pairs (or JSON with ``BOCAGE_LOG_JSON=1``).

Long-running loops log and count; they never die on one bad message. Log through
:func:`get_logger` and pass context as keyword arguments.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any


class _Formatter(logging.Formatter):
    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields.update(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[1] is not None:
            fields["error"] = repr(record.exc_info[1])
        if self.as_json:
            return json.dumps(fields, default=str)
        return " ".join(f"{k}={_quote(v)}" for k, v in fields.items())


def _quote(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (" " in text or "=" in text or not text) else text


class StructLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger whose calls take context as keyword arguments: ``log.info("sent", frames=3)``."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        std = {k: kwargs.pop(k) for k in ("exc_info", "stack_info", "stacklevel") if k in kwargs}
        std["extra"] = {"fields": dict(kwargs)}
        return msg, std


def get_logger(name: str) -> StructLogger:
    """A structured logger for component ``name`` (e.g. ``bocage.edge.spool``)."""
    return StructLogger(logging.getLogger(name), {})


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record (it may be replaced)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def setup(level: str = "info", *, as_json: bool = False) -> None:
    """Configure the root logger once, for a CLI process."""
    handler = _StderrHandler()
    handler.setFormatter(_Formatter(as_json))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
