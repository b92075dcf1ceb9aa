"""Config of the community ticket loop (section ``tickets``); see docs/tickets.md.

Dispatch (who gets what), SLAs per category and severity, the escalation ladder (吹哨报到), duty
rosters, re-notification, the rating timeout, MQTT/webhook notification and the scorecard
thresholds. Every key has a default, so a site file without a ``tickets`` section stays valid.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .secrets import EnvSecret, refuse_url_secrets

_Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
CategoryOrAny = Literal["parking", "security", "eldercare", "device_health", "*"]
SeverityOrAny = Literal["critical", "major", "minor", "warning", "*"]
Category = Literal["parking", "security", "eldercare", "device_health"]
DepartmentName = Literal["fire", "police", "health", "urban_management", "market_supervision", "housing"]
ScoreItem = Literal["contract_fulfilment", "complaint_handling", "on_site_inspection", "owner_evaluation"]
# Where a rating came from (docs/tickets.md "Residents"): never no_response, which is not a rating.
RatingSource = Literal["resident_link", "proxy_call"]
Rung = Literal["assignee", "grid_worker", "community_office", "street_office", "department"]
Role = Literal[
    "grid_worker",
    "property_staff",
    "eldercare_worker",
    "maintenance",
    "community_office",
    "street_office",
    "department",
    "installer",
    "central_platform",
]


class SlaRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: CategoryOrAny = Field(default="*", description="Incident category, or * for any.")
    severity: SeverityOrAny = Field(default="*", description="Incident severity, or * for any.")
    accept_s: int = Field(ge=10, description="Seconds from dispatch until the assignee must accept.")
    on_site_s: int | None = Field(
        default=None, ge=10, description="Seconds from dispatch until someone must be on site (action start)."
    )
    resolve_s: int | None = Field(default=None, ge=10, description="Seconds from dispatch until it must be resolved.")
    escalate_every_s: int = Field(
        default=600, ge=10, description="After a missed deadline, the next ladder rung follows after this long."
    )
    renotify_s: int | None = Field(
        default=None, ge=10, description="Re-notify an assignee who has not accepted this often (default: renotify_s)."
    )


def _default_sla() -> list[SlaRule]:
    return [
        SlaRule(
            category="eldercare",
            severity="critical",
            accept_s=120,
            on_site_s=900,
            resolve_s=3600,
            escalate_every_s=120,
            renotify_s=60,
        ),
        SlaRule(
            category="eldercare",
            severity="*",
            accept_s=300,
            on_site_s=1800,
            resolve_s=7200,
            escalate_every_s=300,
            renotify_s=120,
        ),
        SlaRule(
            category="security",
            severity="critical",
            accept_s=120,
            on_site_s=600,
            resolve_s=3600,
            escalate_every_s=120,
            renotify_s=60,
        ),
        SlaRule(category="security", severity="*", accept_s=600, on_site_s=1800, resolve_s=14400, escalate_every_s=600),
        SlaRule(
            category="parking", severity="*", accept_s=1800, on_site_s=3600, resolve_s=14400, escalate_every_s=1800
        ),
        SlaRule(
            category="device_health",
            severity="*",
            accept_s=14400,
            on_site_s=86400,
            resolve_s=259200,
            escalate_every_s=14400,
            renotify_s=3600,
        ),
        SlaRule(category="*", severity="*", accept_s=1800, on_site_s=7200, resolve_s=86400, escalate_every_s=1800),
    ]


class Shift(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: list[Annotated[int, Field(ge=1, le=7)]] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5, 6, 7],
        description="ISO weekdays (1 = Monday) on which the shift starts.",
    )
    start: dt.time = Field(description='Shift start, quoted "HH:MM" (site time zone).')
    end: dt.time = Field(description='Shift end, quoted "HH:MM"; before start = past midnight; equal = 24 h.')
    members: list[_Id] = Field(min_length=1, description="Staff ids on duty in this shift, first = first called.")


class Roster(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team: _Id = Field(description="Team id (teams[].id) this roster is for.")
    shifts: list[Shift] = Field(min_length=1, description="Weekly shifts. Nobody on shift = the team's members.")


def _default_departments_by_type() -> dict[str, DepartmentName]:
    return {
        "smoke": "fire",
        "gas": "fire",
        "parking_fire_lane": "fire",
        "sos": "health",
        "fall": "health",
        "heart_rate_abnormal": "health",
        "spo2_low": "health",
        "door_forced": "police",
        "intrusion": "police",
    }


def _default_departments_by_category() -> dict[Category, DepartmentName]:
    return {"eldercare": "health", "security": "police", "parking": "urban_management"}


def _default_ladder() -> list[Rung]:
    return ["assignee", "grid_worker", "community_office", "street_office", "department"]


def _default_weights() -> dict[ScoreItem, float]:
    return {
        "contract_fulfilment": 25.0,
        "complaint_handling": 25.0,
        "on_site_inspection": 25.0,
        "owner_evaluation": 25.0,
    }


def _default_rating_weights() -> dict[RatingSource, float]:
    return {"resident_link": 1.0, "proxy_call": 0.5}


def _default_rated() -> list[Category]:
    return ["eldercare", "security"]


class EscalationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ladder: list[Rung] = Field(
        default_factory=_default_ladder,
        min_length=1,
        description="Rungs climbed one by one after a missed SLA deadline: assignee (notified again), "
        "grid_worker, community_office, street_office, department (吹哨报到: the department is summoned).",
    )
    departments_by_type: dict[str, DepartmentName] = Field(
        default_factory=_default_departments_by_type,
        description="Incident type -> department summoned at the department rung.",
    )
    departments_by_category: dict[Category, DepartmentName] = Field(
        default_factory=_default_departments_by_category,
        description="Category -> department when the type has none; a category without one skips that rung.",
    )
    hold_when_unsynced: bool = Field(
        default=True,
        description="Hold rungs outside the community (street_office, department) while the system clock is "
        "not NTP-synchronised or shortly after a clock step.",
    )
    assume_clock_synced: bool = Field(
        default=False,
        description="Treat the clock as synchronised even when the OS says it is not (sites without NTP).",
    )
    hold_after_step_s: int = Field(
        default=300, ge=0, description="After a wall-clock step, rungs outside the community wait this long."
    )
    hold_recheck_s: int = Field(default=30, ge=1, description="A held rung is re-checked this often.")


class Webhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: _Id = Field(description="Webhook id (recorded with every delivery attempt).")
    url: str = Field(description="http(s) URL receiving POSTed JSON notifications (no tokens in it).")
    secret: EnvSecret = Field(description='HMAC-SHA256 signing secret, ONLY as "${ENV_NAME}".')
    categories: list[Category] = Field(default_factory=list, description="Only these categories; empty = all.")
    roles: list[Role] = Field(
        default_factory=list, description="Only notifications addressed to one of these roles; empty = all."
    )
    events: list[str] = Field(default_factory=list, description="Only these event names; empty = all.")
    elder_care: bool = Field(
        default=False,
        description="An elder-care channel: receives residents' personal details (each release logged). "
        "Only set for channels read by elder-care roles.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("webhook urls start with http:// or https://")
        return refuse_url_secrets(value)


class ScorecardSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    summon_below: float = Field(default=60, ge=0, le=100, description="A score below this: summoned (约谈).")
    yellow_below: float = Field(default=60, ge=0, le=100, description="A period scored below this: yellow card.")
    weights: dict[ScoreItem, float] = Field(
        default_factory=_default_weights,
        description="Weights of the district's four items; the score uses the items present, re-weighted.",
    )
    rating_weights: dict[RatingSource, float] = Field(
        default_factory=_default_rating_weights,
        description="Weight of a rating in owner evaluation by its source: the resident's own link, or staff "
        "entering what the resident said on the phone. no_response is never a rating.",
    )
    min_response_pct: float = Field(
        default=30,
        ge=0,
        le=100,
        description="Below this resident response rate (ratings / evaluations due) owner evaluation is left out "
        "of the score and the row is flagged low_response.",
    )


class TicketSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Run the ticket loop (dispatch, SLAs, escalation, notification).")
    sla: list[SlaRule] = Field(
        default_factory=_default_sla,
        description="SLAs; the most specific match wins (category+severity > category > severity > *).",
    )
    escalation: EscalationSettings = Field(default_factory=EscalationSettings, description="The escalation ladder.")
    rosters: list[Roster] = Field(default_factory=list, description="Duty rosters per team (who is on duty when).")
    maintenance_contact: _Id | None = Field(
        default=None, description="Staff or team id for device health; default: the first team of kind maintenance."
    )
    fallback_team: _Id | None = Field(
        default=None,
        description="Team for incidents with no building/grid/owner; default: the first community_office team.",
    )
    rated_categories: list[Category] = Field(
        default_factory=_default_rated,
        description="Categories a resident rates; others are recorded 'not rated' and closed on resolution.",
    )
    rating_timeout_h: float = Field(
        default=72, gt=0, description="A resolved incident not rated within this many hours is closed 'not rated'."
    )
    renotify_s: int = Field(default=300, ge=10, description="Default re-notify interval until the assignee accepts.")
    renotify_max: int = Field(default=12, ge=0, description="At most this many re-notifications per dispatch.")
    mqtt: bool = Field(default=True, description="Publish notifications on MQTT (QoS 1).")
    mqtt_prefix: str | None = Field(
        default=None,
        description="Topic prefix; notifications go to <prefix>/incidents/<category>/<event>. "
        "Default edge/<gateway.id>.",
    )
    webhooks: list[Webhook] = Field(default_factory=list, description="HMAC-signed webhooks receiving notifications.")
    webhook_timeout_s: float = Field(default=5, gt=0, le=60, description="HTTP timeout of one webhook attempt.")
    retry_min_s: float = Field(default=1, gt=0, le=600, description="First retry delay of a failed delivery.")
    retry_max_s: float = Field(default=300, gt=0, le=86400, description="Cap of the exponential retry delay (jitter).")
    max_attempts: int = Field(default=12, ge=1, le=1000, description="Attempts before a delivery is given up.")
    scorecard: ScorecardSettings = Field(default_factory=ScorecardSettings, description="Scorecard thresholds.")

    @field_validator("mqtt_prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is not None and (not value or "+" in value or "#" in value or value.endswith("/")):
            raise ValueError("a topic prefix like 'edge/gw-hy-01': no wildcards, no trailing '/'")
        return value
