"""Config of the store-and-forward sync to the central time-series store (section ``sync``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SyncSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Send telemetry and incident events to the central store.")
