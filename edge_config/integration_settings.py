"""Config of the integrations with other systems on the site's broker (section ``integrations``).

Home Assistant MQTT discovery (docs/integrations.md): the open incidents per building and the
gateway's health appear in Home Assistant without any YAML on its side.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Incident types Home Assistant can show, each a binary sensor per building (or per compound for
#: parking and intrusion): gateway/integrations/ha_entities.py holds their names and classes.
HaIncidentType = Literal[
    "sos",
    "fall",
    "smoke",
    "gas",
    "water_leak",
    "door_forced",
    "door_held_open",
    "device_offline",
    "intrusion",
    "parking_fire_lane",
    "parking_no_parking",
]
HA_INCIDENT_TYPES: tuple[str, ...] = get_args(HaIncidentType)

# Home Assistant's rule for node and object ids in discovery topics.
_HA_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_TOPIC_LEVELS = re.compile(r"^[^#+/\x00][^#+\x00]*$")


class HomeAssistantSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=False,
        description="Publish Home Assistant discovery configs and states. false with the section present removes "
        "what an earlier run published (empty retained configs) at the next start or reload.",
    )
    discovery_prefix: str = Field(
        default="homeassistant", description="Home Assistant's MQTT discovery prefix (its discovery_prefix setting)."
    )
    node_id: str | None = Field(
        default=None,
        description="Node id in the discovery topics, unique per gateway on the broker "
        "(letters, digits, '_' or '-'); null = the gateway id.",
    )
    status_topic: str | None = Field(
        default=None,
        description="Home Assistant's birth/last-will topic; 'online' there makes the gateway publish its configs "
        "again. null = <discovery_prefix>/status (Home Assistant's default).",
    )
    state_topic_prefix: str | None = Field(
        default=None, description="Where the entity states are published; null = edge/<gateway id>/ha."
    )
    incident_types: list[HaIncidentType] = Field(
        default_factory=lambda: list(get_args(HaIncidentType)),
        description="Incident types shown as binary sensors (on while such an incident is open): per building, "
        "per compound for intrusion and parking.",
    )
    support_url: str | None = Field(
        default=None,
        max_length=500,
        description="Shown in Home Assistant as where to get help with these entities (origin.support_url), "
        "e.g. the installer's support page; null = left out.",
    )
    health_interval_s: float = Field(
        default=30.0, ge=5, le=3600, description="Seconds between updates of the health sensors."
    )

    @field_validator("node_id")
    @classmethod
    def _node_id(cls, v: str | None) -> str | None:
        if v is not None and not _HA_ID.match(v):
            raise ValueError("node_id is 1-64 letters, digits, '_' or '-' (Home Assistant's rule)")
        return v

    @field_validator("discovery_prefix", "status_topic", "state_topic_prefix")
    @classmethod
    def _topic(cls, v: str | None) -> str | None:
        if v is not None and (not _TOPIC_LEVELS.match(v) or v.endswith("/") or "//" in v):
            raise ValueError("a topic without wildcards, empty levels or a leading/trailing '/'")
        return v


class IntegrationsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    home_assistant: HomeAssistantSettings | None = Field(
        default=None,
        description="Home Assistant MQTT discovery on the site's broker; left out = never published, nothing removed.",
    )
