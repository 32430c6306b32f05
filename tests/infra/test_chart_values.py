"""values.yaml and values.schema.json, checked without helm: documented, covered, consistent."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema
import pytest
from infra_helpers import CHART, CI_VALUES, load_yaml

VALUES = CHART / "values.yaml"
SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
KEY = re.compile(r"^(?P<indent>\s*)(?:- )?(?P<key>[A-Za-z0-9_.-]+):(?:\s|$)")


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def test_every_key_of_values_yaml_is_commented() -> None:
    lines = VALUES.read_text(encoding="utf-8").splitlines()
    undocumented = []
    for number, line in enumerate(lines):
        if not KEY.match(line):
            continue
        previous = next((p.strip() for p in reversed(lines[:number]) if p.strip()), "")
        if not (previous.startswith("#") or previous.startswith("- #")):
            undocumented.append(f"{number + 1}: {line.strip()}")
    assert not undocumented, "keys without a comment above them:\n" + "\n".join(undocumented)


def _schema_for(node: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The schema of ``key`` under ``node``; None if ``node`` is a free-form map."""
    if "$ref" in node:
        node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]
    properties = node.get("properties", {})
    if key in properties:
        return dict(properties[key])
    extra = node.get("additionalProperties", True)
    assert extra is not False, f"{key!r} is not in the schema"
    return dict(extra) if isinstance(extra, dict) else None


def _walk(values: Any, node: dict[str, Any] | None, path: str, missing: list[str]) -> None:
    if node is None or not isinstance(values, dict):
        return
    if "$ref" in node:
        node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]
    if node.get("type") == "object" and not node.get("properties") and node.get(
        "additionalProperties", True
    ) is True:
        return  # a free-form map (annotations, nodeSelector, config sections...)
    for key, value in values.items():
        try:
            child = _schema_for(node, key)
        except AssertionError:
            missing.append(f"{path}.{key}".lstrip("."))
            continue
        _walk(value, child, f"{path}.{key}", missing)


def test_schema_covers_every_key_of_values_yaml() -> None:
    missing: list[str] = []
    _walk(load_yaml(VALUES), SCHEMA, "", missing)
    assert not missing, f"values without a schema: {missing}"


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda p: p.name if p else "defaults")
def test_values_satisfy_the_schema(values: Any) -> None:
    merged = load_yaml(VALUES)
    if values is not None:
        merged = _merge(merged, load_yaml(values) or {})
    jsonschema.Draft7Validator(SCHEMA).validate(merged)


def test_schema_is_a_valid_draft7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    assert SCHEMA["additionalProperties"] is False  # a typo at the top level is refused


@pytest.mark.parametrize(
    ("override", "where"),
    [
        ({"ingest": {"replicaCount": -1}}, "replicaCount"),
        ({"api": {"service": {"type": "ExternalName"}}}, "type"),
        ({"nats": {"jetstream": {"maxFileStore": "lots"}}}, "maxFileStore"),
        ({"clickhouse": {"persistence": {"size": "20 gigs"}}}, "size"),
        ({"serviceMonitor": {"interval": "30 seconds"}}, "interval"),
        ({"image": {"digest": "md5:abc"}}, "digest"),
    ],
)
def test_schema_refuses(override: dict[str, Any], where: str) -> None:
    merged = _merge(load_yaml(VALUES), override)
    with pytest.raises(jsonschema.ValidationError) as error:
        jsonschema.Draft7Validator(SCHEMA).validate(merged)
    assert where in "/".join(str(p) for p in error.value.absolute_path)
