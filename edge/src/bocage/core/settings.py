"""Loading settings: a TOML file, then environment overrides, validated once at start.

Settings are frozen msgspec Structs. Environment variables override the file with the form
``BOCAGE_<SECTION>__<FIELD>=value`` (double underscore between levels), e.g.
``BOCAGE_NATS__URL=nats://10.0.0.2:4222``. A wrong value stops start-up with a
:class:`~bocage.core.errors.ConfigError` naming the field. Nothing else reads ``os.environ``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from bocage.core.errors import ConfigError

T = TypeVar("T")

ENV_PREFIX = "BOCAGE_"
_PATH_RE = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_UNKNOWN_RE = re.compile(r"^Object contains unknown field `(?P<key>[^`]+)`$")


def _env_overrides(environ: Mapping[str, str], prefix: str) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(prefix) or "__" not in key:
            continue
        parts = [p.lower() for p in key[len(prefix) :].split("__")]
        node = tree
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError("conflicting environment overrides", field=".".join(parts))
            node = child
        node[parts[-1]] = value
    return tree


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def field_of(error: msgspec.ValidationError) -> tuple[str, str | None]:
    """Split a msgspec validation message into (reason, dotted field path)."""
    text = str(error)
    match = _PATH_RE.search(text)
    if not match:
        return text, None
    path = match.group("path").lstrip(".")
    path = re.sub(r"\[(\d+)\]", r".\1", path)
    reason = text[: match.start()]
    unknown = _UNKNOWN_RE.match(reason)
    if unknown:  # name the unknown key itself, not only the section holding it
        path = f"{path}.{unknown.group('key')}" if path else unknown.group("key")
    return reason, path or None


def convert(data: Mapping[str, Any], cls: type[T], *, source: str | None = None) -> T:
    """Validate ``data`` into ``cls``; strings from the environment are coerced (strict=False)."""
    try:
        return msgspec.convert(data, cls, strict=False)
    except msgspec.ValidationError as exc:
        reason, field = field_of(exc)
        raise ConfigError(reason, field=field, source=source) from None


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_without_none(v) for v in value]
    return value


def dumps(settings: object) -> str:
    """TOML text of a settings object (or plain data) that :func:`load` reads back.

    ``None`` values are left out (TOML has no null: an absent key means the default).
    """
    return msgspec.toml.encode(_without_none(msgspec.to_builtins(settings))).decode()


def load(
    cls: type[T],
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> T:
    """Read ``path`` (TOML, optional), apply ``BOCAGE_*`` overrides, validate into ``cls``."""
    data: dict[str, Any] = dict(defaults or {})
    source = None
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the file: {exc.strerror}", source=source) from None
        try:
            data = _merge(data, tomllib.loads(text))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}", source=source) from None
    env = os.environ if environ is None else environ
    data = _merge(data, _env_overrides(env, ENV_PREFIX))
    return convert(data, cls, source=source)
