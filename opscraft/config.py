"""Settings from environment variables and an optional `.env`, with the seed's names.

`load_settings()` is the only entry point: it validates everything once and raises
`ConfigError` with one line naming the variable and what is wrong.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

import platformdirs
from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from opscraft import setting_words
from opscraft.data_dir import create_private, make_private, write_failure


class ConfigError(Exception):
    """An invalid setting; the message is one line meant for the operator."""


class Environment(StrEnum):
    """Deployment kind: in production SECRET_KEY and OPSCRAFT_MASTER_KEY must be set (no key is generated
    into the data directory).
    """

    dev = "dev"
    staging = "staging"
    production = "production"


_SECRET_KEY_FILE = "secret_key"
_MIN_SECRET_KEY = 32
_ORIGIN_RE = re.compile(r"^https?://[^/\s]+$")
DEFAULT_WARM_POOL_SIZE = 2
"""Warm Docker containers per isolation profile used recently, unless an admin or
OPSCRAFT_WARM_POOL_SIZE says otherwise (docs/executions.md, "Warm containers")."""
MAX_WARM_POOL_SIZE = 16
DEFAULT_WARM_POOL_BURST = 4
"""At most this many containers per profile, warm and being created, while its runs take them
faster than they are created (OPSCRAFT_WARM_POOL_BURST; docs/benchmarks.md, "Docker: a pool that
grows with demand")."""


NOTIFY_NETWORKS = ("private", "loopback", "link_local")
"""The networks OPSCRAFT_NOTIFY_NETWORKS may allow notification receivers in (docs/configuration.md)."""


class Settings(BaseSettings):
    """Process settings, read from the environment and `.env` (names ignore case; a field with a
    validation alias is read under that name, e.g. OPSCRAFT_DATA_DIR); docs/configuration.md describes
    them.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    environment: Environment = Environment.dev
    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("opscraft")),
        validation_alias="OPSCRAFT_DATA_DIR",
    )
    database_url: str | None = None
    db_user: str | None = None
    db_pass: str | None = None
    db_host: str | None = None
    db_port: int = 5432
    db_name: str | None = None
    redis_url: str | None = None
    # Prefix of every Redis key of this installation (queue, live output, cancels); two
    # installations sharing one Redis database need different prefixes.
    redis_prefix: str = Field(
        "opscraft",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
        validation_alias="OPSCRAFT_REDIS_PREFIX",
    )

    secret_key: str | None = None
    algorithm: str = "HS256"
    access_token_expire_minutes: int = Field(30, gt=0)
    refresh_token_expire_days: int = Field(7, gt=0)
    # A sign-in (browser session, or the refresh tokens rotated from one API login) ends this many
    # days after the password was typed, however active it is since (services/auth.py).
    # days, fractions allowed (0.5: 12 hours).
    session_max_age_days: float = Field(7, gt=0, validation_alias="OPSCRAFT_SESSION_MAX_AGE_DAYS")
    # Seconds between an open page's re-reads of its lists (another user's change shows within it);
    # the frame's navigation badge, which also re-checks the session, every twice as many.
    live_seconds: float = Field(5.0, gt=0, le=3600, validation_alias="OPSCRAFT_LIVE_SECONDS")
    # Seconds the scheduler sleeps at most between two looks at the schedules (sooner when a fire
    # time comes first): a schedule saved, resumed or brought forward by another process, or
    # written to the database directly, fires at most this late.
    scheduler_idle_seconds: float = Field(
        5.0, gt=0, le=60, validation_alias="OPSCRAFT_SCHEDULER_IDLE_SECONDS"
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: str = "INFO"
    # `text` (one human-readable line) or `json` (one JSON object per line, with `execution_id`
    # and `worker_id` on the execution engine's lines).
    log_format: Literal["text", "json"] = "text"
    # Bearer token that may read /metrics (besides admins); unset: admins only.
    metrics_token: str | None = Field(None, min_length=16, validation_alias="OPSCRAFT_METRICS_TOKEN")

    rate_limit_auth_per_minute: int = Field(5, gt=0, validation_alias="OPSCRAFT_RATE_LIMIT_AUTH")
    rate_limit_api_per_minute: int = Field(60, gt=0, validation_alias="OPSCRAFT_RATE_LIMIT_API")
    max_body_bytes: int = Field(1_048_576, gt=0, validation_alias="OPSCRAFT_MAX_BODY_BYTES")
    # Terraform states POSTed by runs to the state backend: documents, not API requests (a few
    # hundred resources of a real provider are several MiB).
    max_state_bytes: int = Field(64 * 1_048_576, gt=0, validation_alias="OPSCRAFT_MAX_STATE_BYTES")
    max_json_depth: int = Field(20, gt=0, validation_alias="OPSCRAFT_MAX_JSON_DEPTH")
    max_json_keys: int = Field(1000, gt=0, validation_alias="OPSCRAFT_MAX_JSON_KEYS")

    max_script_bytes: int = Field(256 * 1024, gt=0, validation_alias="OPSCRAFT_MAX_SCRIPT_BYTES")

    # Consumer threads (slots) of this process's worker; 0: run no executions here (web only,
    # with `opscraft worker` processes elsewhere).
    workers: int = Field(4, ge=0, le=64, validation_alias="OPSCRAFT_WORKERS")
    local_runner: bool = Field(False, validation_alias="OPSCRAFT_LOCAL_RUNNER")
    # The lowest role that may run scripts on the local runner; unset: the `local_runner_role`
    # setting an admin chooses (default operator). See docs/executions.md, "Local runner".
    local_runner_role: Literal["viewer", "operator", "admin"] | None = Field(
        None, validation_alias="OPSCRAFT_LOCAL_RUNNER_ROLE"
    )
    max_output_bytes: int = Field(50 * 1024 * 1024, gt=0, validation_alias="OPSCRAFT_MAX_OUTPUT_BYTES")
    max_timeout_seconds: int = Field(24 * 3600, gt=0, validation_alias="OPSCRAFT_MAX_TIMEOUT_SECONDS")
    shutdown_grace_seconds: float = Field(10.0, ge=0, validation_alias="OPSCRAFT_SHUTDOWN_GRACE_SECONDS")
    # Warm containers per isolation profile used within the idle time (0: every run starts cold);
    # unset: the `warm_pool_size` setting an admin chooses (default DEFAULT_WARM_POOL_SIZE).
    warm_pool_size: int | None = Field(
        None, ge=0, le=MAX_WARM_POOL_SIZE, validation_alias="OPSCRAFT_WARM_POOL_SIZE"
    )
    warm_pool_idle_seconds: float = Field(3600.0, gt=0, validation_alias="OPSCRAFT_WARM_POOL_IDLE_SECONDS")
    # At most this many containers per profile (warm and being created) while its runs take them
    # faster than they are created (execution/warm_pool.py); at or below the size: no growth.
    warm_pool_burst: int = Field(
        DEFAULT_WARM_POOL_BURST, ge=0, le=MAX_WARM_POOL_SIZE, validation_alias="OPSCRAFT_WARM_POOL_BURST"
    )
    # The OCI runtime of every run container (Docker's `--runtime`, e.g. `crun`): one the engine
    # has registered (`docker info`: Runtimes), checked when the worker starts; unset: the
    # engine's default (runc). docs/deployment.md, "A lighter OCI runtime".
    docker_runtime: str | None = Field(
        None, max_length=64, pattern=r"^[A-Za-z0-9._-]+$", validation_alias="OPSCRAFT_DOCKER_RUNTIME"
    )
    image_bash: str = Field("bash:5.2", validation_alias="OPSCRAFT_IMAGE_BASH")
    image_python: str = Field("python:3.12-slim", validation_alias="OPSCRAFT_IMAGE_PYTHON")
    image_ansible: str = Field("cytopia/ansible:latest", validation_alias="OPSCRAFT_IMAGE_ANSIBLE")
    image_terraform: str = Field("hashicorp/terraform:1.9.8", validation_alias="OPSCRAFT_IMAGE_TERRAFORM")
    # The base URL Terraform runs use to reach this server's state backend (e.g.
    # http://127.0.0.1:8080; for Docker runs an address the container reaches, such as the
    # bridge gateway http://172.17.0.1:8080, with the script's network enabled). Unset: runs
    # keep Terraform's local state, thrown away with the run.
    state_backend_url: str | None = Field(None, validation_alias="OPSCRAFT_STATE_BACKEND_URL")
    # How long a Terraform run waits for a state lock another run holds (`-lock-timeout`).
    terraform_lock_timeout_seconds: int = Field(
        60, ge=0, le=3600, validation_alias="OPSCRAFT_TERRAFORM_LOCK_TIMEOUT_SECONDS"
    )
    # How long a cancelled or timed-out Terraform run has after its SIGINT (Terraform stops its
    # operations, writes its state and releases the lock, as after Ctrl-C) before it is killed;
    # 0 kills at once (resources being created may then be missing from the state).
    terraform_stop_grace_seconds: int = Field(
        60, ge=0, le=3600, validation_alias="OPSCRAFT_TERRAFORM_STOP_GRACE_SECONDS"
    )

    # Ansible over SSH: seconds of silence on a connection before ssh probes the host; after 3
    # unanswered probes (3 x this) the host is UNREACHABLE and the play goes on without it.
    ssh_keepalive_seconds: int = Field(15, ge=1, le=3600, validation_alias="OPSCRAFT_SSH_KEEPALIVE_SECONDS")

    # Worker identity: the id under which this process's worker registers in `workers` (default:
    # one generated once and kept in the data directory), its heartbeat period, and how long
    # without a heartbeat before another process declares it lost and ends its runs.
    worker_id: str | None = Field(
        None, max_length=64, pattern=r"^[A-Za-z0-9._-]+$", validation_alias="OPSCRAFT_WORKER_ID"
    )
    worker_heartbeat_seconds: float = Field(
        5.0, gt=0, le=300, validation_alias="OPSCRAFT_WORKER_HEARTBEAT_SECONDS"
    )
    worker_lost_seconds: float = Field(30.0, gt=0, validation_alias="OPSCRAFT_WORKER_LOST_SECONDS")
    # PostgreSQL only: a statement unanswered this long ends its request with a 503 (db.engine).
    db_command_timeout_seconds: float = Field(
        30.0, gt=0, le=3600, validation_alias="OPSCRAFT_DB_COMMAND_TIMEOUT_SECONDS"
    )

    master_key: str | None = Field(None, validation_alias="OPSCRAFT_MASTER_KEY")

    # The address users reach this server at (links in notifications, webhook URLs).
    public_url: str | None = Field(None, validation_alias="OPSCRAFT_PUBLIC_URL")

    # Which networks notification receivers (webhook and Slack URLs, SMTP hosts) may be in besides
    # public addresses: `private` (RFC 1918, IPv6 ULA, shared 100.64/10), `loopback`, `link_local`
    # (169.254/16, fe80::/10 and the cloud metadata addresses). Checked on the addresses a send
    # connects to (services/notification_senders.py); empty: public addresses only.
    notify_networks: Annotated[frozenset[str], NoDecode] = Field(
        frozenset({"private"}), validation_alias="OPSCRAFT_NOTIFY_NETWORKS"
    )
    # Whether an SMTP login may go over an unencrypted connection (security `none`): the password
    # crosses the network in clear text. Off: such a channel is refused (save and send).
    smtp_plaintext_login: bool = Field(False, validation_alias="OPSCRAFT_SMTP_PLAINTEXT_LOGIN")

    @field_validator(
        "metrics_token", "local_runner_role", "warm_pool_size", "worker_id", "docker_runtime", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """An empty value of an optional setting means unset, as for REDIS_URL: compose files
        pass `VAR: ${VAR:-}`, an empty string when .env leaves it out (docker-compose.yml does
        so for OPSCRAFT_METRICS_TOKEN, which then stopped every process at start-up: "String
        should have at least 16 characters")."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("worker_lost_seconds")
    @classmethod
    def _check_lost_after_heartbeats(cls, value: float, info: ValidationInfo) -> float:
        heartbeat = info.data.get("worker_heartbeat_seconds")
        if heartbeat is not None and value < 2 * heartbeat:
            raise ValueError("must be at least twice OPSCRAFT_WORKER_HEARTBEAT_SECONDS")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        """Accept a JSON list (the seed's form) or a comma-separated string."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @field_validator("notify_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: Any) -> Any:
        """A comma-separated list (`private,loopback`); each one of NOTIFY_NETWORKS."""
        if isinstance(value, str):
            value = [item.strip().lower() for item in value.split(",") if item.strip()]
        if isinstance(value, list | set | frozenset | tuple):
            unknown = sorted(set(value) - set(NOTIFY_NETWORKS))
            if unknown:
                raise ValueError(
                    f"unknown network {unknown[0]!r}: a comma-separated list of {', '.join(NOTIFY_NETWORKS)} "
                    "(or empty: public addresses only)"
                )
            return frozenset(value)
        return value

    @field_validator("state_backend_url")
    @classmethod
    def _check_state_backend_url(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"https?://[^\s/?#]+/?", value):
            raise ValueError("must be the server's base URL, like http://127.0.0.1:8080")
        return value.rstrip("/") if value else None

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not _ORIGIN_RE.fullmatch(origin):
                raise ValueError("each origin must look like https://host[:port] (or be *)")
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        value = value.rstrip("/")
        if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", value):
            raise ValueError("must look like https://host[:port][/path]")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value or None

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value

    @field_validator("algorithm")
    @classmethod
    def _check_algorithm(cls, value: str) -> str:
        if value != "HS256":
            raise ValueError("only HS256 is supported")
        return value

    @cached_property
    def effective_database_url(self) -> str:
        """The async SQLAlchemy URL: explicit DATABASE_URL, else DB_* parts, else SQLite in the data dir."""
        if self.database_url:
            return normalize_database_url(self.database_url)
        if self.db_host and self.db_name:
            auth = quote(self.db_user or "", safe="")
            if self.db_pass:
                auth += ":" + quote(self.db_pass, safe="")
            return f"postgresql+asyncpg://{auth}@{self.db_host}:{self.db_port}/{self.db_name}"
        return f"sqlite+aiosqlite:///{self.data_dir / 'opscraft.db'}"

    @property
    def is_sqlite(self) -> bool:
        """True when the effective database URL is a SQLite one."""
        return self.effective_database_url.startswith("sqlite")

    def image_for(self, script_type: str) -> str:
        """The Docker image setting for a script type (`image_bash`, `image_python`...); AttributeError for
        a type with no image setting.
        """
        return str(getattr(self, f"image_{script_type}"))


def normalize_database_url(url: str) -> str:
    """Map the seed's `postgresql://` and plain `sqlite://` URLs onto their async drivers."""
    for plain, async_prefix in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return async_prefix + url[len(plain) :]
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return url
    raise ConfigError(
        "DATABASE_URL: must start with postgresql://, postgresql+asyncpg:// or sqlite://; "
        + setting_words.given("DATABASE_URL", url)
    )


def _env_name(loc: tuple[Any, ...], model: type[BaseSettings]) -> str:
    field = model.model_fields.get(str(loc[0])) if loc else None
    alias = field.validation_alias if field is not None else None
    return str(alias if isinstance(alias, str) else (loc[0] if loc else "settings")).upper()


def _field_metadata(loc: tuple[Any, ...]) -> list[Any]:
    """The constraints (`Ge(ge=0)`, `Le(le=64)`...) of the setting an error's `loc` names (its
    field name, or its environment variable for a field read under an alias)."""
    key = str(loc[0]).lower() if loc else ""
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else name
        if key in (name, alias.lower()):
            return list(field.metadata)
    return []


def load_settings(*, data_dir_named: str = "OPSCRAFT_DATA_DIR", **overrides: Any) -> Settings:
    """Read and validate settings; resolve the SECRET_KEY (generated and kept in the data dir in dev).
    `data_dir_named`: what a data directory that cannot be made or written is said under (the
    CLI's `--data-dir` when that option gave it, not the environment variable nobody set)."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(
            setting_words.worded(_env_name(err["loc"], Settings), err, _field_metadata(err["loc"]))
        ) from None
    except ValueError as exc:  # e.g. CORS_ORIGINS that is not valid JSON
        raise ConfigError(f"invalid setting: {exc}") from None
    settings.effective_database_url  # noqa: B018  (validates DATABASE_URL early)
    try:
        make_private(settings.data_dir)
    except OSError as exc:
        raise ConfigError(
            f"{data_dir_named}: must be a directory this user can create and write; "
            f"given '{settings.data_dir}', which cannot be created: {write_failure(exc)}"
        ) from None
    settings.secret_key = _resolve_secret_key(settings, data_dir_named)
    return settings


def _resolve_secret_key(settings: Settings, data_dir_named: str) -> str:
    if settings.secret_key:
        if len(settings.secret_key) < _MIN_SECRET_KEY:
            raise ConfigError(
                f"SECRET_KEY: must be at least {_MIN_SECRET_KEY} characters; "
                + setting_words.given("SECRET_KEY", settings.secret_key)
            )
        return settings.secret_key
    if settings.environment is Environment.production:
        raise ConfigError("SECRET_KEY: required when ENVIRONMENT=production (at least 32 characters)")
    path = settings.data_dir / _SECRET_KEY_FILE
    try:
        if not path.exists():
            _write_private(path, secrets.token_urlsafe(48))
        key = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"{data_dir_named}: cannot keep the generated key in {path}: {write_failure(exc)}"
        ) from None
    if len(key) < _MIN_SECRET_KEY:
        raise ConfigError(f"SECRET_KEY: the key in {path} is shorter than {_MIN_SECRET_KEY} characters")
    return key


def _write_private(path: Path, text: str) -> None:
    """Create `path` with mode 0600, whole or not at all (`create_private`); a concurrent first
    start that wrote it already wins."""
    with contextlib.suppress(FileExistsError):
        create_private(path, text)
