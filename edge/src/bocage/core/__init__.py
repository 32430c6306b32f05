"""The contract every Bocage process shares: subjects, events, the register model, settings.

This package ships with the edge agent (every gateway needs it) and is imported by the
datacenter services, so the wire contract has a single source of truth. Schema evolution rule
(msgspec): new fields get defaults, fields are never renamed or retyped, receivers ignore
fields they do not know — gateways are upgraded last.
"""
