"""Config of the residents' side of the loop (section ``resident_loop``); see docs/tickets.md
"Residents".

Residents have no account: they reach the gateway through signed links (gateway/core/links.py) —
an evaluation link after a handled problem (SMS, or a QR code a staff member prints on a visit),
and a per-building report QR code. Every key has a default; the loop is off until ``enabled``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Phone = Annotated[str, Field(pattern=r"^\+?[0-9][0-9 -]{4,19}$", json_schema_extra={"personal": True})]
ReportCategory = Literal["security", "parking", "eldercare", "device_health"]

# What a resident may report, and the category of the loop it becomes (routing follows it).
DEFAULT_REPORT_TYPES: dict[str, ReportCategory] = {
    "facility_broken": "device_health",  # lift, lights, door closer: maintenance
    "sanitation": "security",  # rubbish, blocked corridor: the property company's duty
    "noise": "security",
    "blocked_fire_lane": "parking",
    "unsafe": "security",  # a stranger, a broken lock
    "water_leak": "security",
    "other": "security",
}


class UnitContact(BaseModel):
    """A unit's contact (楼长/单元长, a volunteer who agreed) asked to evaluate common-area work."""

    model_config = ConfigDict(extra="forbid")

    building: _Id = Field(description="Building id.")
    unit: _Id = Field(description="Unit id within the building.")
    phone: Phone = Field(description="The contact's phone (personal data).")


class CommonArea(BaseModel):
    """Which unit contacts evaluate incidents in a common area (no resident, no reporter)."""

    model_config = ConfigDict(extra="forbid")

    building: _Id | None = Field(default=None, description="Incidents at this building (corridors, doors, lift).")
    compound: _Id | None = Field(default=None, description="Incidents anywhere in this compound (gates, parking).")
    units: list[str] = Field(
        min_length=1,
        description="Units whose contact is asked, as 'building/unit' (e.g. 'b1/u1'); each needs a unit contact.",
    )

    @model_validator(mode="after")
    def _one(self) -> CommonArea:
        if (self.building is None) == (self.compound is None):
            raise ValueError("a common area names exactly one of building or compound")
        for u in self.units:
            if u.count("/") != 1:
                raise ValueError(f"units are 'building/unit', not {u!r}")
        return self


class EvaluationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    link_ttl_days: float = Field(default=7, gt=0, le=90, description="Days an evaluation link stays valid.")
    no_response_days: float = Field(
        default=7,
        gt=0,
        le=90,
        description="Days after the request without an answer: recorded 'no_response' (not a rating) and the "
        "incident closed. Never counted as a rating.",
    )
    sms: bool = Field(default=True, description="Send the link by SMS through channels.sms when there is a phone.")
    sms_max_chars: int = Field(
        default=300,
        ge=120,
        le=1000,
        description="Resident messages are long SMS (the link alone is ~120 characters); cut to this length.",
    )
    retry_min_s: float = Field(default=30, gt=0, le=3600, description="First retry delay of a failed SMS.")
    max_attempts: int = Field(default=5, ge=1, le=50, description="SMS attempts before the message is given up.")
    unit_contacts: list[UnitContact] = Field(default_factory=list, description="Units' evaluation contacts.")
    common_areas: list[CommonArea] = Field(
        default_factory=list, description="Common areas and the unit contacts that evaluate work there (else none)."
    )


class ReportSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Residents may report problems through a building's QR code.")
    qr_ttl_days: int = Field(default=730, ge=1, le=3650, description="Days a printed building QR code stays valid.")
    types: dict[str, ReportCategory] = Field(
        default_factory=lambda: dict(DEFAULT_REPORT_TYPES),
        description="Report types offered on the page and the incident category each becomes.",
    )
    per_qr_per_hour: int = Field(default=20, ge=1, le=1000, description="Reports accepted per QR code per hour.")
    per_phone_per_day: int = Field(default=5, ge=1, le=100, description="Reports accepted per phone number per day.")
    photo_max_bytes: int = Field(
        default=3_000_000, ge=10_000, le=20_000_000, description="Largest photo accepted (bytes, before re-encoding)."
    )
    photo_max_px: int = Field(
        default=1600, ge=320, le=4096, description="Photos are scaled down to this many pixels on the long side."
    )
    phone_days: int = Field(
        default=90,
        ge=7,
        le=3650,
        description="Days a reporter's phone number is kept after the report (personal data); then erased.",
    )

    @field_validator("types")
    @classmethod
    def _types(cls, value: dict[str, ReportCategory]) -> dict[str, ReportCategory]:
        for k in value:
            if not k.replace("_", "").isalnum() or not k.islower() or len(k) > 40:
                raise ValueError(f"report type {k!r}: lower-case letters, digits and '_'")
        if not value:
            raise ValueError("offer at least one report type")
        return value


class WarningSettings(BaseModel):
    """Early warning (提前预警): signs that a compound is drifting, with the figures behind them."""

    model_config = ConfigDict(extra="forbid")

    every_s: int = Field(default=600, ge=10, le=86_400, description="How often the warnings are recomputed.")
    projected_below: float = Field(
        default=60, ge=0, le=100, description="Quarter-to-date score projected below this: warning."
    )
    repeat_count: int = Field(
        default=3, ge=2, le=100, description="This many incidents of one type at one place within repeat_days: warning."
    )
    repeat_days: int = Field(default=14, ge=1, le=365, description="Window of the repeat check.")
    unaccepted_window_days: int = Field(
        default=7, ge=1, le=90, description="Accept-deadline misses in this window are compared with the one before."
    )
    unaccepted_min: int = Field(
        default=3, ge=1, le=1000, description="At least this many misses in the window (and more than before)."
    )
    response_below_pct: float = Field(
        default=30, ge=0, le=100, description="Quarter-to-date resident response rate below this: warning."
    )
    response_min_requests: int = Field(
        default=5, ge=1, le=1000, description="The response-rate warning needs at least this many requests."
    )


class ResidentLoopSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=False, description="Evaluation links, report QR codes and early warnings.")
    base_url: str | None = Field(
        default=None,
        description="Address residents' phones open, e.g. https://gw-hy-01.example:8443 (the API's public URL); "
        "needed for SMS links and QR codes.",
    )
    language: Literal["zh", "en"] = Field(default="zh", description="Language of SMS texts (pages offer both).")
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings, description="Evaluation requests.")
    report: ReportSettings = Field(default_factory=ReportSettings, description="Residents' reports by QR code.")
    warnings: WarningSettings = Field(default_factory=WarningSettings, description="Early warning (提前预警).")
    requests_per_minute: int = Field(
        default=30, ge=1, le=6000, description="Requests to the resident pages' API per client address per minute."
    )

    @field_validator("base_url")
    @classmethod
    def _base(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("base_url starts with http:// or https://")
        return None if value is None else value.rstrip("/")
