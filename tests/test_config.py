"""Settings: the seed's variable names, one clear line per invalid setting, the SECRET_KEY rules."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from opscraft.config import ConfigError, load_settings
from opscraft.services.input_words import STOCK_PHRASES
from tests.conftest import ROOT

KEY = "k" * 40


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No OpsCraft variable from the outer environment, and no `.env` in the working directory."""
    for name in (
        "ENVIRONMENT",
        "DATABASE_URL",
        "DB_USER",
        "DB_PASS",
        "DB_HOST",
        "DB_PORT",
        "DB_NAME",
        "REDIS_URL",
        "SECRET_KEY",
        "CORS_ORIGINS",
        "LOG_LEVEL",
        "ALGORITHM",
        *(name for name in os.environ if name.startswith("OPSCRAFT_")),
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPSCRAFT_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("ENVIRONMENT", "prod", "'dev', 'staging' or 'production'"),
        ("SECRET_KEY", "too-short", "at least 32 characters"),
        ("ALGORITHM", "RS256", "only HS256"),
        ("ACCESS_TOKEN_EXPIRE_MINUTES", "0", "must be more than 0; given '0'"),
        ("REFRESH_TOKEN_EXPIRE_DAYS", "seven", "must be a whole number more than 0; given 'seven'"),
        ("DATABASE_URL", "mysql://db/x", "must start with postgresql://"),
        ("DB_PORT", "fivefourthreetwo", "must be a whole number; given 'fivefourthreetwo'"),
        ("REDIS_URL", "localhost:6379", "must start with redis://"),
        ("CORS_ORIGINS", '["http://ok.example", 3]', "must be text; given 3"),
        ("CORS_ORIGINS", "[not json", "Expecting value"),
        ("CORS_ORIGINS", "ok.example", "https://host"),
        ("LOG_LEVEL", "LOUD", "DEBUG, INFO"),
        ("OPSCRAFT_RATE_LIMIT_AUTH", "-5", "must be more than 0; given '-5'"),
        ("OPSCRAFT_RATE_LIMIT_API", "many", "must be a whole number more than 0; given 'many'"),
        ("OPSCRAFT_MAX_BODY_BYTES", "0", "must be more than 0"),
        ("OPSCRAFT_WORKERS", "1000", "must be from 0 to 64; given '1000'"),
        ("OPSCRAFT_WORKER_ID", "a b", "must match the pattern"),
        ("OPSCRAFT_DOCKER_RUNTIME", "crun --privileged", "must match the pattern"),
        ("OPSCRAFT_WORKER_HEARTBEAT_SECONDS", "0", "more than 0"),
        ("OPSCRAFT_WORKER_LOST_SECONDS", "9", "at least twice OPSCRAFT_WORKER_HEARTBEAT_SECONDS"),
        ("OPSCRAFT_LIVE_SECONDS", "0", "must be more than 0 and at most 3600; given '0'"),
        ("OPSCRAFT_LIVE_SECONDS", "3601", "must be more than 0 and at most 3600"),
        ("OPSCRAFT_SCHEDULER_IDLE_SECONDS", "0", "more than 0"),
        ("OPSCRAFT_SCHEDULER_IDLE_SECONDS", "61", "at most 60"),
    ],
)
def test_each_invalid_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv("SECRET_KEY", KEY)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(f"{variable}: "), message
    assert expected in message
    assert "\n" not in message
    assert "given" in message and not message.split(": ", 1)[1].startswith(STOCK_PHRASES), message
    if variable in {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"}:
        assert value not in message and f"given {len(value)} characters" in message, message


@pytest.mark.parametrize(
    ("variable", "attribute"),
    [
        ("OPSCRAFT_METRICS_TOKEN", "metrics_token"),
        ("OPSCRAFT_LOCAL_RUNNER_ROLE", "local_runner_role"),
        ("OPSCRAFT_WARM_POOL_SIZE", "warm_pool_size"),
        ("OPSCRAFT_WORKER_ID", "worker_id"),
        ("OPSCRAFT_DOCKER_RUNTIME", "docker_runtime"),
    ],
)
def test_an_empty_optional_setting_is_unset(
    monkeypatch: pytest.MonkeyPatch, variable: str, attribute: str
) -> None:
    """docker-compose.yml passes `OPSCRAFT_METRICS_TOKEN: ${OPSCRAFT_METRICS_TOKEN:-}`, an empty
    string when .env leaves it out (as .env.example does): every process refused to start."""
    monkeypatch.setenv("SECRET_KEY", KEY)
    monkeypatch.setenv(variable, "")
    assert getattr(load_settings(), attribute) is None


def test_the_compose_files_empty_defaults_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every `VAR: ${VAR:-}` of docker-compose.yml is an empty string when .env leaves it out."""
    empty = re.findall(r"(\w+): \$\{\1:-\}", (ROOT / "docker-compose.yml").read_text())
    assert "OPSCRAFT_METRICS_TOKEN" in empty
    monkeypatch.setenv("SECRET_KEY", KEY)
    for variable in empty:
        monkeypatch.setenv(variable, "")
    assert load_settings().metrics_token is None


def test_production_refuses_to_start_without_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(ConfigError, match=r"^SECRET_KEY: required when ENVIRONMENT=production"):
        load_settings()
    monkeypatch.setenv("SECRET_KEY", KEY)
    assert load_settings().secret_key == KEY


def test_dev_generates_a_private_key_file_and_keeps_it(tmp_path: Path) -> None:
    first = load_settings()
    path = tmp_path / "data" / "secret_key"
    assert first.secret_key and len(first.secret_key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == first.secret_key
    assert load_settings().secret_key == first.secret_key, "the same key on the next start"


def test_unusable_data_dir_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("OPSCRAFT_DATA_DIR", str(blocker / "data"))
    with pytest.raises(
        ConfigError,
        match=r"^OPSCRAFT_DATA_DIR: must be a directory this user can create and write; given .*, which",
    ):
        load_settings()


def test_short_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secret_key").write_text("tiny")
    with pytest.raises(ConfigError, match=r"^SECRET_KEY: the key in .* is shorter than 32"):
        load_settings()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@db:5432/ops", "postgresql+asyncpg://u:p@db:5432/ops"),
        ("postgres://u:p@db/ops", "postgresql+asyncpg://u:p@db/ops"),
        ("postgresql+asyncpg://u:p@db/ops", "postgresql+asyncpg://u:p@db/ops"),
        ("sqlite:////var/lib/ops.db", "sqlite+aiosqlite:////var/lib/ops.db"),
    ],
)
def test_database_url_forms(monkeypatch: pytest.MonkeyPatch, url: str, expected: str) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    settings = load_settings()
    assert settings.effective_database_url == expected
    assert settings.is_sqlite == expected.startswith("sqlite")


def test_db_parts_build_a_postgresql_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "DB_USER": "devops",
        "DB_PASS": "p@ss:w/rd",
        "DB_HOST": "db",
        "DB_PORT": "6543",
        "DB_NAME": "ops_craft",
    }.items():
        monkeypatch.setenv(name, value)
    url = load_settings().effective_database_url
    assert url == "postgresql+asyncpg://devops:p%40ss%3Aw%2Frd@db:6543/ops_craft"
    monkeypatch.setenv("DATABASE_URL", "postgresql://other@elsewhere/x")
    assert load_settings().effective_database_url == "postgresql+asyncpg://other@elsewhere/x", "URL wins"


def test_default_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'opscraft.db'}"
    assert settings.redis_url is None and settings.cors_origins == []
    assert (settings.access_token_expire_minutes, settings.refresh_token_expire_days) == (30, 7)
    assert (settings.rate_limit_auth_per_minute, settings.rate_limit_api_per_minute) == (5, 60)


def test_cors_origins_as_json_or_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", '["http://localhost:3000", "http://localhost"]')
    assert load_settings().cors_origins == ["http://localhost:3000", "http://localhost"]
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example:8443")
    assert load_settings().cors_origins == ["https://a.example", "https://b.example:8443"]


@pytest.mark.parametrize(
    "variable, value",
    [
        # `$` of Python's `re.match` also matches before a final newline: each was accepted.
        ("OPSCRAFT_STATE_BACKEND_URL", "http://127.0.0.1:8080\n"),
        ("OPSCRAFT_STATE_BACKEND_URL", "http://127.0.0.1:8080/\n"),
        ("OPSCRAFT_PUBLIC_URL", "https://ops.example/\n"),
        ("CORS_ORIGINS", '["https://a.example\\n"]'),
    ],
)
def test_urls_ending_in_a_newline_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_dotenv_file_is_read(clean_env: Path) -> None:
    (clean_env / ".env").write_text(f"SECRET_KEY={KEY}\nLOG_LEVEL=debug\nREDIS_URL=redis://cache:6379/0\n")
    settings = load_settings()
    assert settings.secret_key == KEY and settings.log_level == "DEBUG"
    assert settings.redis_url == "redis://cache:6379/0"


def test_every_setting_is_documented() -> None:
    from opscraft.config import Settings

    documented = (ROOT / "docs" / "configuration.md").read_text()
    for name, field in Settings.model_fields.items():
        variable = field.validation_alias if isinstance(field.validation_alias, str) else name.upper()
        assert f"`{variable}`" in documented, f"{variable} is missing from docs/configuration.md"
