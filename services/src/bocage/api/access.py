"""Territory scoping with API keys: open data for everyone, a territory's own data for it.

Without a key a request sees open data: indicators and the sensors declared public. A key
(``Authorization: Bearer <key>`` or ``X-API-Key: <key>``) is bound to a territory and also
shows the non-public sensors of that territory and of the territories beneath it (an EPCI's
key covers its communes); a key bound to no territory is the operating union's and sees
everything. Only the SHA-256 of each key is configured, so a leaked settings file leaks no key.
An unknown key is a 401 problem: a typo must not silently fall back to public data.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import msgspec
from litestar import Request

from bocage.api.problems import problem
from bocage.core.register import Register


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """An API key: who holds it, its SHA-256 (hex) and the territory it is bound to."""

    name: str
    sha256: str
    """``sha256sum`` of the key (hex); the key itself is never stored."""
    territory: str | None = None
    """INSEE/SIREN code; None: the union's administrators (every territory)."""


class Scope(msgspec.Struct, frozen=True):
    """What a request may see beyond open data."""

    private: frozenset[str] | None
    """Territories whose non-public data is visible; None: every territory."""

    def sees(self, territory: str, public: bool) -> bool:
        """True if data of ``territory`` with that publicity is visible."""
        return public or self.private is None or territory in self.private


PUBLIC = Scope(frozenset())


def hash_key(key: str) -> str:
    """The SHA-256 hex digest configured for ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()


def _subtree(register: Register, code: str) -> frozenset[str]:
    out = {code}
    frontier = [code]
    while frontier:
        parent = frontier.pop()
        for t in register.territories:
            if t.parent == parent and t.code not in out:
                out.add(t.code)
                frontier.append(t.code)
    return frozenset(out)


def scope_of(
    request: Request[Any, Any, Any], keys: tuple[ApiKey, ...], register: Register
) -> Scope:
    """The scope of ``request``; raises a 401 problem for a key that is not configured."""
    header = request.headers.get("authorization", "")
    key = header[7:].strip() if header.lower().startswith("bearer ") else ""
    key = key or request.headers.get("x-api-key", "").strip()
    if not key:
        return PUBLIC
    digest = hash_key(key)
    for k in keys:
        if hmac.compare_digest(digest, k.sha256.lower()):
            if k.territory is None:
                return Scope(None)
            return Scope(_subtree(register, k.territory))
    raise problem(401, "unknown API key (omit it to read open data)")
