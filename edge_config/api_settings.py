"""Config of the HTTP API and console (section ``api``). See docs/api.md."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ApiTls(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cert_file: Path = Field(description="Server certificate chain (PEM) of the API and console.")
    key_file: Path = Field(description="Private key (PEM) of the certificate; readable by the service user only.")


class ApiRateLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auth_failures: int = Field(
        default=10, ge=1, le=10000, description="Failed sign-ins (bad/expired/revoked token) per client address ..."
    )
    auth_window_s: int = Field(
        default=60, ge=1, le=86400, description="... within this many seconds; beyond that: 429 until the window ends."
    )
    signin_failures: int = Field(
        default=50,
        ge=1,
        le=100000,
        description="Failed sign-in link attempts from all addresses together within auth_window_s; beyond that "
        "every sign-in by link is refused (429) until the window ends (a distributed guess). Tokens are unaffected.",
    )
    per_minute: dict[str, int] = Field(
        default_factory=lambda: {
            "installer": 600,
            "central_platform": 1200,
            "property_staff": 300,
            "eldercare_worker": 300,
            "grid_worker": 300,
            "community_office": 300,
            "street_office": 300,
            "department": 120,
        },
        description="Requests per minute per token, by role (a burst of the same size is allowed); beyond that "
        "429 with Retry-After. The live stream counts once per connection.",
    )


class ApiReadiness(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sync_backlog_max_points: int = Field(
        default=500_000, ge=1, description="/readyz fails when more points than this wait for the central store."
    )
    sync_oldest_max_s: int = Field(
        default=6 * 3600, ge=1, description="/readyz fails when the oldest unsent point is older than this (seconds)."
    )


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="Address the API listens on (0.0.0.0 for the LAN, with TLS).")
    port: int = Field(default=8080, ge=1, le=65535, description="TCP port of the API and console.")
    tls: ApiTls | None = Field(
        default=None,
        description="HTTPS certificate and key; null = plain HTTP (use only on loopback or behind a proxy).",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins allowed to call the API from other pages (CORS); empty = closed (default). "
        "The console is served by the gateway itself and needs none.",
    )
    token_file: Path | None = Field(
        default=None,
        description="Where the first start writes the generated installer token (mode 0600); "
        "null = 'installer.token' next to the store. EDGE_GATEWAY_INSTALLER_TOKEN in the environment "
        "supplies the token instead.",
    )
    rate_limits: ApiRateLimits = Field(
        default_factory=ApiRateLimits, description="Limits on repeated authentication failures."
    )
    readiness: ApiReadiness = Field(default_factory=ApiReadiness, description="Bounds /readyz checks against.")
    console_base_url: str | None = Field(
        default=None,
        max_length=256,
        description="Public URL of the console (e.g. 'https://gw-hy-01.local:8443/console/') used in links "
        "sent to staff; null = the address the API listens on.",
    )
    session_days: float = Field(
        default=30,
        gt=0,
        le=366,
        description="How long a device stays signed in (a phone that opened a sign-in link, or a screen that "
        "entered a token) before it must sign in again. Sessions can be revoked at any time.",
    )
    signin_link_minutes: int = Field(
        default=60,
        ge=1,
        le=7 * 24 * 60,
        description="How long a one-time sign-in link (or its QR code) stays usable after it was issued.",
    )
    sse_heartbeat_s: float = Field(
        default=15.0, gt=0, le=300, description="Seconds between heartbeat comments on the live stream."
    )
    sse_queue_max: int = Field(
        default=1000,
        ge=10,
        le=100_000,
        description="Events buffered per stream client; a client that falls further behind is disconnected "
        "and resumes with Last-Event-ID (ingest never waits for a slow client).",
    )
    max_busy_share: float = Field(
        default=0.03,
        gt=0,
        le=1,
        description="While ingest is behind (its backlog beyond a few commit batches), the largest share of a "
        "CPU the API may spend serving requests (then served one at a time); ingest shares the process. "
        "While ingest keeps up, requests are not limited. 1 = never limit. The live stream is not counted.",
    )
    reader_threads: int = Field(
        default=4, ge=1, le=32, description="Threads reading the store for API requests (bounds the API's CPU share)."
    )

    @model_validator(mode="after")
    def _origins(self) -> ApiSettings:
        for origin in self.cors_origins:
            if origin == "*" or not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
                raise ValueError(
                    "cors_origins are exact origins like 'https://platform.example.gov.cn' (scheme://host[:port], "
                    "no path, no '*')"
                )
        return self
