"""One base exception for Bocage and small subclasses that carry data."""

from __future__ import annotations


class BocageError(Exception):
    """Base of every error Bocage raises on purpose (the CLI prints these without traceback)."""


class ConfigError(BocageError):
    """A configuration file or environment variable is invalid.

    ``field`` names the offending setting (dotted path) when it is known.
    """

    def __init__(
        self, message: str, *, field: str | None = None, source: str | None = None
    ) -> None:
        self.field = field
        self.source = source
        where = f" in {source}" if source else ""
        at = f" (field `{field}`)" if field else ""
        super().__init__(f"invalid configuration{where}{at}: {message}")


class UnreachableError(BocageError):
    """A server Bocage needs (NATS, ClickHouse) cannot be reached."""

    def __init__(self, what: str, url: str, reason: str) -> None:
        self.what = what
        self.url = url
        self.reason = reason
        super().__init__(f"cannot reach {what} at {url}: {reason}")
