"""Config of the store-and-forward sync to the central time-series store (section ``sync``).

See docs/sync.md for the line-protocol schema and the failure handling these settings tune.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .secrets import EnvSecret, refuse_url_secrets


class SyncSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=False, description="Send telemetry and incident events to the central store.")
    target: Literal["v2", "v1"] = Field(
        default="v2",
        description="v2: InfluxDB 2 write API (/api/v2/write, also VictoriaMetrics); "
        "v1: InfluxDB 1.x /write (database, retention policy, user/password).",
    )
    url: str = Field(
        default="http://127.0.0.1:8086", description="Base URL of the central store, e.g. https://tsdb.example:8086."
    )
    urls: list[str] = Field(
        default_factory=list,
        description="More write endpoints of the same store (a VictoriaMetrics cluster's vminsert nodes, a "
        "clustered InfluxDB's nodes): tried in order after `url` when one gives no answer or a 5xx/429; "
        "a re-sent point is byte-identical, so the store's deduplication keeps one (docs/central.md).",
    )
    org: str = Field(default="", description="v2: organisation name (VictoriaMetrics ignores it).")
    bucket: str = Field(default="community", description="v2: bucket (VictoriaMetrics ignores it).")
    token: EnvSecret | None = Field(
        default=None, description='v2: API token, ONLY as an environment reference like "${INFLUX_TOKEN}".'
    )
    database: str = Field(default="community", description="v1: database name.")
    retention_policy: str | None = Field(
        default=None, description="v1: retention policy (the database's default if unset)."
    )
    username: str | None = Field(default=None, description="v1: user name (basic auth).")
    password: EnvSecret | None = Field(
        default=None, description='v1: password, ONLY as an environment reference like "${INFLUX_PASSWORD}".'
    )
    batch_size: int = Field(default=5000, ge=1, le=100_000, description="Points per write request (at most).")
    max_batch_age_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="Telemetry, life-safety readings and health points wait at most this long for a full batch "
        "before they are sent (incident events go at once).",
    )
    heartbeat_s: float = Field(
        default=10.0, ge=1, le=3600, description="Seconds between gateway health points (the central heartbeat)."
    )
    snapshot_s: float = Field(
        default=60.0,
        ge=1,
        le=3600,
        description="Seconds between the district snapshots (open incidents, unaccepted life-safety incidents, "
        "parking, device health, gateway_health; docs/central.md).",
    )
    scores_every_s: float = Field(
        default=900.0,
        ge=10,
        le=86_400,
        description="Seconds between the quarter-to-date scorecard and department figures sent centrally.",
    )
    quota_mb: float = Field(
        default=64.0,
        gt=0,
        description="MiB the unsent outbox may use; above it the oldest telemetry is thinned (incident events never). "
        "Keep it well below store.quota_mb.",
    )
    backoff_min_s: float = Field(default=0.5, gt=0, le=600, description="First retry delay after a failed write.")
    backoff_max_s: float = Field(
        default=60.0, gt=0, le=3600, description="Cap of the exponential retry delay (with jitter)."
    )
    timeout_s: float = Field(default=10.0, gt=0, le=300, description="HTTP timeout of one write request.")
    send_personal: bool = Field(
        default=False,
        description="Also send readings of residents' devices (personal health data). Off by default: only "
        "elder-care staff may see those; incident events are sent either way, without resident ids.",
    )
    live_share: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="While a backlog drains, this share of batches takes the newest telemetry, so live data "
        "is not starved behind old data (incident events always go first).",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        return [_check_url(v) for v in value]

    @field_validator("backoff_max_s")
    @classmethod
    def _backoff(cls, value: float, info: object) -> float:
        data = getattr(info, "data", {}) or {}
        lo = data.get("backoff_min_s")
        if isinstance(lo, int | float) and value < lo:
            raise ValueError("backoff_max_s must not be smaller than backoff_min_s")
        return value


def _check_url(value: str) -> str:
    v = value.strip().rstrip("/")
    if not (v.startswith("http://") or v.startswith("https://")):
        raise ValueError("must start with http:// or https://")
    return refuse_url_secrets(v)  # credentials belong in token/username/password, never in a URL
