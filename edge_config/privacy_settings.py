"""Config of personal-data retention (section ``privacy``). See docs/security.md.

Retention is enforced by :class:`gateway.privacy.RetentionProcessor` inside the pipeline (small
slices, a few minutes apart). ``edge-gateway resident forget`` removes one resident everywhere.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PrivacySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    readings_personal_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="Days readings of residents' devices (personal health/movement data) are kept; "
        "the shorter of this and store.readings_retention_days applies.",
    )
    snapshots_days: int = Field(
        default=30, ge=1, le=3650, description="Days intrusion snapshots (JPEG; may show people) are kept."
    )
    closed_incidents_days: int = Field(
        default=365,
        ge=30,
        le=3650,
        description="Days after closing that an incident keeps its personal details (resident, causing readings, "
        "notes, comments); afterwards they are anonymised. Category, type, times, state and rating stay, so "
        "scorecards still compute.",
    )
    dead_letters_days: int = Field(
        default=30, ge=1, le=3650, description="Days dead letters (refused payload excerpts) are kept."
    )
    access_log_days: int = Field(
        default=365,
        ge=30,
        le=3650,
        description="Days the personal-data access log and the personal-release log are kept.",
    )
    config_permissions: Literal["warn", "strict"] = Field(
        default="warn",
        description="Site file readable by group/others: 'warn' logs a loud warning at start; 'strict' refuses "
        "to start until it is chmod 600/640.",
    )
