"""Settings in one place: environment variables prefixed ``AVLORA_`` (or a ``.env`` file).

The embedded defaults need no service: SQLite and Celery's file broker under ``DATA_DIR``,
the ``toy`` model preset, one worker subprocess. Production sets DATABASE_URL (Postgres) and
BROKER_URL (Redis).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.names import MODEL_PRESETS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AVLORA_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Clips, caches, checkpoints, samples, SQLite, file broker.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite in DATA_DIR.")
    broker_url: str | None = Field(None, description="Celery broker; default: file broker in DATA_DIR.")
    model_preset: str = Field("toy", description=" | ".join(MODEL_PRESETS))
    model_dir: Path | None = Field(None, description="Local weights for the real presets.")
    asr_model_dir: Path | None = Field(
        None, description="A local Whisper checkpoint for speech recognition (else PocketSphinx's bundled en-US model).")
    speaker_model_dir: Path | None = Field(
        None, description="A local SpeechBrain ECAPA model for voice embeddings (else Resemblyzer's bundled GE2E).")
    password: SecretStr | None = Field(None, description="Studio password; unset means loopback only.")
    api_token: SecretStr | None = Field(None, description="Bearer token for scripts; defaults to the password.")
    secret_key: SecretStr | None = Field(None, description="Signs session cookies; generated into DATA_DIR if unset.")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_upload_mb: int = Field(2048, ge=1, description="Largest accepted upload, per file.")
    heartbeat_timeout_s: int = Field(120, ge=5, description="A running job whose heartbeat is older is interrupted.")
    heartbeat_interval_s: float = Field(
        5.0, gt=0, le=600, description="Seconds between two heartbeats of a running job (worker); it also "
        "picks up cancel, checkpoint-now and sample-now requests. Keep it well below HEARTBEAT_TIMEOUT_S.")
    sweep_interval_s: float = Field(
        5.0, ge=0, le=3600, description="Seconds between two passes of the crash sweeper in the web process "
        "(stale jobs become interrupted, lost queued jobs are sent again); 0 turns it off.")
    redispatch_after_s: float = Field(
        60.0, ge=0, le=86400, description="A queued job older than this whose task is not in the broker is "
        "sent again by the sweeper.")
    auto_resume_attempts: int = Field(
        0, ge=0, le=100, description="Automatic retry: how many times in a row the sweeper resumes an "
        "interrupted training or preprocessing job from its last checkpoint; 0 leaves it to a person.")
    sse_poll_s: float = Field(
        0.5, gt=0, le=60, description="Seconds between two database polls of a live event stream.")
    sse_heartbeat_s: float = Field(
        15.0, gt=0, le=3600, description="A live event stream that sent nothing for this long sends a comment "
        "line, so proxies keep the connection open.")

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _heartbeat_fits_timeout(self) -> Settings:
        if self.heartbeat_interval_s * 2 > self.heartbeat_timeout_s:
            raise ValueError(
                f"AVLORA_HEARTBEAT_INTERVAL_S ({self.heartbeat_interval_s:g}) must be at most half of "
                f"AVLORA_HEARTBEAT_TIMEOUT_S ({self.heartbeat_timeout_s}): otherwise live jobs would be "
                "declared interrupted between two heartbeats.")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'studio.sqlite3'}"

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def file_broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def uses_file_broker(self) -> bool:
        return self.celery_broker_url.startswith("filesystem://")

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    def check_bind_address(self, host: str | None = None) -> None:
        """Refuse to listen beyond this machine when no password protects the studio."""
        host = host or self.host
        if self.password is not None:
            return
        if host == "localhost":
            return
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(
                f"Refusing to listen on {host!r} without a password: anyone on the network could "
                "use the studio. Set AVLORA_PASSWORD, or listen on 127.0.0.1."
            )


@lru_cache
def get_settings() -> Settings:
    return Settings()
