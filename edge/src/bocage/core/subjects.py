"""NATS subject and stream names: the addressing part of the wire contract.

Gateways publish on ``bocage.<territory>.<gateway>.<kind>``; a gateway's NATS credentials only
allow its own territory prefix, and ingest checks that the territory inside a frame equals the
one in the subject.
"""

from __future__ import annotations

import re
from typing import Final, Literal

PREFIX: Final = "bocage"
STREAM: Final = "BOCAGE"
"""JetStream stream holding frames, alarms and gateway status, with duplicate detection."""
QUARANTINE_STREAM: Final = "BOCAGE_QUARANTINE"
QUARANTINE_PREFIX: Final = "bocage-quarantine"
MSG_ID_HEADER: Final = "Nats-Msg-Id"
FRAME_VERSION_HEADER: Final = "Bocage-Frame-Version"

Kind = Literal["frames", "alarms", "status"]
KINDS: Final[tuple[Kind, ...]] = ("frames", "alarms", "status")

# Tokens must be valid NATS subject tokens and stable identifiers: no dots, spaces or wildcards.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def valid_token(token: str) -> bool:
    """True if ``token`` can be used as a territory or gateway identifier in a subject."""
    return bool(_TOKEN.match(token))


def subject(territory: str, gateway: str, kind: Kind) -> str:
    """The subject a gateway publishes ``kind`` messages on."""
    for name, token in (("territory", territory), ("gateway", gateway)):
        if not valid_token(token):
            raise ValueError(
                f"{name} {token!r} is not a valid subject token ([A-Za-z0-9_-]{{1,64}})"
            )
    return f"{PREFIX}.{territory}.{gateway}.{kind}"


def stream_subjects() -> list[str]:
    """Subjects captured by the main stream."""
    return [f"{PREFIX}.*.*.{kind}" for kind in KINDS]


def parse(subject_: str) -> tuple[str, str, str] | None:
    """``(territory, gateway, kind)`` of a gateway subject, or None if it is not one."""
    parts = subject_.split(".")
    if len(parts) != 4 or parts[0] != PREFIX or parts[3] not in KINDS:
        return None
    return parts[1], parts[2], parts[3]


def quarantine_subject(territory: str, reason: str) -> str:
    """Subject of a quarantined message (reason is a short code such as ``checksum``)."""
    safe_territory = territory if valid_token(territory) else "unknown"
    return f"{QUARANTINE_PREFIX}.{safe_territory}.{reason}"
