"""Config of the HTTP API and console (section ``api``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="Address the API listens on (0.0.0.0 for the LAN, with TLS).")
    port: int = Field(default=8080, ge=1, le=65535, description="TCP port of the API and console.")
