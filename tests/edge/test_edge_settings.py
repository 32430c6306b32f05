"""edge.toml: defaults, validation naming the field, environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from edge_helpers import make_settings

from bocage.core.errors import ConfigError
from bocage.core.register import SENSOR_KINDS
from bocage.core.settings import dumps, load
from bocage.edge.settings import EdgeSettings

MINIMAL = """
[gateway]
id = "gw-1"
territory = "29042"

[[sensors]]
id = "lamp-1"
kind = "lighting_cabinet"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return path


def test_minimal_file_gets_defaults(tmp_path: Path) -> None:
    settings = load(EdgeSettings, write(tmp_path, MINIMAL), environ={})
    assert settings.gateway.id == "gw-1"
    assert settings.nats.url == "nats://127.0.0.1:4222"
    assert settings.sensors[0].adapter == "simulator"
    assert settings.spool.fsync == "interval"
    assert settings.metrics_port == 0


def test_identity_is_required(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(EdgeSettings, write(tmp_path, "[nats]\nurl = 'nats://x:1'\n"), environ={})
    assert "gateway" in str(info.value)


def test_unknown_sensor_kind_names_the_field(tmp_path: Path) -> None:
    text = MINIMAL + '\n[[sensors]]\nid = "t-1"\nkind = "toaster"\n'
    with pytest.raises(ConfigError) as info:
        load(EdgeSettings, write(tmp_path, text), environ={})
    assert info.value.field == "sensors.1.kind"
    assert "toaster" in str(info.value)


def test_every_register_kind_is_accepted(tmp_path: Path) -> None:
    sensors = "".join(f'\n[[sensors]]\nid = "{k}"\nkind = "{k}"\n' for k in SENSOR_KINDS)
    text = '[gateway]\nid = "g"\nterritory = "1"\n' + sensors
    settings = load(EdgeSettings, write(tmp_path, text), environ={})
    assert [s.kind for s in settings.sensors] == list(SENSOR_KINDS)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ('[batch]\nmax_readings = "many"\n', "batch.max_readings"),
        ('[spool]\nfsync = "sometimes"\n', "spool.fsync"),
        ('[link]\nkind = "pigeon"\n', "link.kind"),
        ("[nats]\nurll = 'typo'\n", "nats.urll"),
        ("[spool]\nbudget_bytes = 10\n", "spool"),
        # QoS 2 is acknowledged (PUBREC) before the readings are spooled
        ("[mqtt]\nqos = 2\n", "mqtt"),
        # msgspec does not name dict keys
        ('[filters.power]\ndeadband = "x"\n', "filters[...].deadband"),
    ],
)
def test_malformed_values_name_their_field(tmp_path: Path, extra: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(EdgeSettings, write(tmp_path, MINIMAL + "\n" + extra), environ={})
    assert info.value.field == field, str(info.value)


def test_filter_for_an_unknown_metric_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no sensor kind has a metric"):
        load(EdgeSettings, write(tmp_path, MINIMAL + "[filters.colour]\nmin = 1\n"), environ={})


def test_gateway_id_must_be_a_subject_token(tmp_path: Path) -> None:
    text = MINIMAL.replace('id = "gw-1"', 'id = "gw 1"')
    with pytest.raises(ConfigError) as info:
        load(EdgeSettings, write(tmp_path, text), environ={})
    assert info.value.field == "gateway"


def test_duplicate_sensor_ids_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="appears twice"):
        load(EdgeSettings, write(tmp_path, MINIMAL + MINIMAL.split("\n", 5)[5]), environ={})


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    settings = load(
        EdgeSettings, write(tmp_path, MINIMAL),
        environ={"BOCAGE_NATS__URL": "nats://10.0.0.2:4222", "BOCAGE_BATCH__MAX_AGE_S": "30"},
    )
    assert settings.nats.url == "nats://10.0.0.2:4222"
    assert settings.batch.max_age_s == 30.0


def test_datacenter_sections_in_the_environment_are_ignored(tmp_path: Path) -> None:
    settings = load(EdgeSettings, write(tmp_path, MINIMAL), environ={"BOCAGE_STORE__DSN": "x"})
    assert settings.gateway.territory == "29042"


def test_settings_round_trip_through_toml(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "nats://127.0.0.1:4222", filters={"power": {"deadband": 5}})
    path = write(tmp_path, dumps(settings))
    assert load(EdgeSettings, path, environ={}) == settings


def test_the_shipped_example_configuration_loads() -> None:
    example = Path(__file__).parents[2] / "infra" / "edge" / "edge.toml.example"
    settings = load(EdgeSettings, example, environ={})
    assert settings.gateway.territory == "36001"
    assert {s.adapter for s in settings.sensors} == {"mqtt", "simulator"}
    assert settings.filters["air_quality.pm10"].alarm_above == 50.0
