from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from bocage.core.errors import ConfigError
from bocage.core.settings import load


class Section(msgspec.Struct, frozen=True, kw_only=True):
    url: str = "nats://127.0.0.1:4222"
    port: int = 8080
    ratio: float = 0.5


class Root(msgspec.Struct, frozen=True, kw_only=True):
    nats: Section = Section()
    names: list[str] = msgspec.field(default_factory=list)


def test_defaults_without_file_or_env() -> None:
    assert load(Root, environ={}) == Root()


def test_file_then_environment_override(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text('[nats]\nurl = "nats://a:1"\nport = 9000\n')
    settings = load(Root, path, environ={"BOCAGE_NATS__PORT": "9100", "OTHER": "x"})
    assert settings.nats.url == "nats://a:1"
    assert settings.nats.port == 9100  # env wins, string coerced to int


def test_wrong_type_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text('[nats]\nport = "eighty"\n')
    with pytest.raises(ConfigError) as info:
        load(Root, path, environ={})
    assert info.value.field == "nats.port"
    assert "nats.port" in str(info.value)
    assert str(path) in str(info.value)


def test_wrong_env_value_names_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        load(Root, environ={"BOCAGE_NATS__RATIO": "half"})
    assert info.value.field == "nats.ratio"


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text("[nats\nurl=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(Root, path, environ={})


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(Root, tmp_path / "absent.toml", environ={})


class Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    port: int = 1


class StrictRoot(msgspec.Struct, frozen=True, kw_only=True):
    api: Strict = Strict()


def test_unknown_key_is_named_with_its_section(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text("[api]\nprot = 80\n")
    with pytest.raises(ConfigError) as info:
        load(StrictRoot, path, environ={})
    assert info.value.field == "api.prot"


def test_dumps_round_trips_and_leaves_out_none(tmp_path: Path) -> None:
    from bocage.core.settings import dumps

    class WithOptional(msgspec.Struct, frozen=True, kw_only=True):
        nats: Section = Section()
        credentials: str | None = None
        names: list[str] = msgspec.field(default_factory=list)

    settings = WithOptional(nats=Section(port=9999), names=["a", "b"])
    path = tmp_path / "b.toml"
    path.write_text(dumps(settings))
    assert "credentials" not in path.read_text()
    assert load(WithOptional, path, environ={}) == settings
