from __future__ import annotations

from pathlib import Path

import pytest

from assistant.config import load_settings
from assistant.errors import ConfigError


def test_defaults_are_offline_and_local(isolated_environment: Path) -> None:
    settings = load_settings()
    assert settings.backend == "local"
    assert settings.model is None  # the bundled model
    assert settings.home == isolated_environment
    assert settings.temperature == 0.0


def test_environment_overrides_toml_which_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    Path("assistant.toml").write_text('backend = "openai"\nmax_tokens = 99\nopenai_base_url = "http://127.0.0.1:1/v1"\n')
    monkeypatch.setenv("ASSISTANT_MAX_TOKENS", "12")
    settings = load_settings()
    assert settings.backend == "openai"
    assert settings.max_tokens == 12
    assert settings.openai_base_url == "http://127.0.0.1:1/v1"


def test_config_file_can_live_elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "elsewhere.toml"
    config.write_text("temperature = 0.7\n")
    monkeypatch.setenv("ASSISTANT_CONFIG", str(config))
    assert load_settings().temperature == 0.7
    monkeypatch.setenv("ASSISTANT_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="missing.toml"):
        load_settings()


def test_overrides_from_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_MAX_TOKENS", "12")
    assert load_settings(max_tokens=5, model=None).max_tokens == 5


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("ASSISTANT_MAX_TOKENS", "lots", "ASSISTANT_MAX_TOKENS"),
        ("ASSISTANT_TEMPERATURE", "5", "ASSISTANT_TEMPERATURE"),
        ("ASSISTANT_BACKEND", "gpt", "ASSISTANT_BACKEND"),
        ("ASSISTANT_OPENAI_BASE_URL", "localhost:8000", "ASSISTANT_OPENAI_BASE_URL"),
    ],
)
def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert named in str(caught.value)
    assert "\n" not in str(caught.value)


def test_malformed_toml_is_a_clear_error() -> None:
    Path("assistant.toml").write_text("backend = \n")
    with pytest.raises(ConfigError, match="settings"):
        load_settings()


def test_openai_variables_are_honoured_and_the_key_stays_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-openai-var")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    settings = load_settings()
    assert settings.openai_api_key.get_secret_value() == "sk-from-openai-var"
    assert settings.openai_base_url == "http://127.0.0.1:9/v1"
    assert "sk-from-openai-var" not in repr(settings)
    assert "sk-from-openai-var" not in settings.model_dump_json()
    monkeypatch.setenv("ASSISTANT_OPENAI_API_KEY", "sk-assistant-var")
    assert load_settings().openai_api_key.get_secret_value() == "sk-assistant-var"
