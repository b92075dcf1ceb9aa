"""What the gateway shows in Home Assistant, as MQTT discovery configs and their states (pure).

Home Assistant's MQTT discovery: a retained JSON config on
``<discovery_prefix>/<component>/<node_id>/<object_id>/config`` creates an entity; an empty retained
payload there removes it. Entities here:

- per building (per compound for intrusion and parking), one ``binary_sensor`` per configured
  incident type, on while an incident of that type is open there, on a Home Assistant device per
  building/compound (``via_device`` the gateway);
- on the gateway's own device, diagnostic entities: broker connected (``binary_sensor``), sync
  backlog and store fill (``sensor``), all read from one JSON health state.

Availability (``availability_mode: all``): the gateway's own status topic, whose last will says
``offline`` when the gateway dies, and the publisher's, whose last will says the same when only its
connection is gone (the states would be stale). No personal data: buildings, compounds, incident
types and counts only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway import __version__

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from edge_config.integration_settings import HomeAssistantSettings

ORIGIN_NAME = "Community Edge Gateway"
ON, OFF = "ON", "OFF"

# incident type -> (scope, device class, English name, Chinese name)
CATALOG: dict[str, tuple[str, str, str, str]] = {
    "sos": ("building", "safety", "SOS active", "SOS求助"),
    "fall": ("building", "safety", "Fall detected", "跌倒报警"),
    "smoke": ("building", "smoke", "Smoke", "烟雾报警"),
    "gas": ("building", "gas", "Gas", "燃气报警"),
    "water_leak": ("building", "moisture", "Water leak", "漏水"),
    "door_forced": ("building", "tamper", "Door forced", "门被强行打开"),
    "door_held_open": ("building", "door", "Door held open", "门长时间未关"),
    "device_offline": ("building", "problem", "Devices offline", "设备离线"),
    "intrusion": ("compound", "safety", "Intrusion", "入侵报警"),
    "parking_fire_lane": ("compound", "problem", "Fire lane blocked", "消防通道被占"),
    "parking_no_parking": ("compound", "problem", "No-parking space occupied", "禁停区有车"),
}
_MEASURED = {"state_class": "measurement"}
HEALTH = (
    # object id, component, English name, Chinese name, extra config keys
    ("broker", "binary_sensor", "Broker connected", "MQTT连接", {"device_class": "connectivity"}),
    (
        "sync_backlog",
        "sensor",
        "Sync backlog",
        "待同步数据",
        {"unit_of_measurement": "points", "state_class": "measurement"},
    ),
    ("store_fill", "sensor", "Store fill", "存储占用", {"unit_of_measurement": "%", "state_class": "measurement"}),
)


@dataclass(frozen=True)
class Entity:
    config_topic: str
    config: dict[str, Any]

    def payload(self) -> bytes:
        return json.dumps(self.config, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Plan:
    """Everything published for one config: topics are derived once, states are looked up by key."""

    node_id: str
    discovery_prefix: str
    status_topic: str  # Home Assistant's birth topic
    state_prefix: str
    availability_topic: str  # the publisher's own: online while connected, its will says offline
    health_topic: str
    entities: tuple[Entity, ...]
    incident_topics: dict[tuple[str, str, str], str]  # (scope, scope id, type) -> state topic

    @property
    def config_filter(self) -> str:
        """Every config of this node, whatever the component (retained ones tell what to remove)."""
        return f"{self.discovery_prefix}/+/{self.node_id}/+/config"


def make_plan(cfg: SiteConfig, ha: HomeAssistantSettings, gateway_status_topic: str) -> Plan:
    gw = cfg.gateway.id
    node = ha.node_id or gw
    prefix = ha.discovery_prefix
    sp = ha.state_topic_prefix or f"edge/{gw}/ha"
    zh = cfg.gateway.language == "zh"
    availability_topic = f"{sp}/availability"
    health_topic = f"{sp}/health"
    gw_ident = f"edge_{gw}"
    availability = {
        "availability_mode": "all",
        "availability": [
            {
                "topic": gateway_status_topic,
                "value_template": "{{ value_json.state }}",
                "payload_available": "online",
                "payload_not_available": "offline",
            },
            {"topic": availability_topic, "payload_available": "online", "payload_not_available": "offline"},
        ],
    }
    origin = {"name": ORIGIN_NAME, "sw_version": __version__}
    if ha.support_url:
        origin["support_url"] = ha.support_url

    def device(ident: str, name: str, model: str, via: bool) -> dict[str, Any]:
        d = {
            "identifiers": [ident],
            "name": name,
            "model": model,
            "manufacturer": ORIGIN_NAME,
            "sw_version": __version__,
        }
        return {**d, "via_device": gw_ident} if via else d

    entities: list[Entity] = []
    gw_device = device(gw_ident, cfg.gateway.name or gw, "Community Edge Gateway", via=False)
    for obj, component, en, cn, extra in HEALTH:
        entities.append(
            Entity(
                f"{prefix}/{component}/{node}/{obj}/config",
                {
                    "name": cn if zh else en,
                    "unique_id": f"{gw_ident}_{obj}",
                    "state_topic": health_topic,
                    "value_template": "{{ value_json." + obj + " }}",
                    **({"payload_on": ON, "payload_off": OFF} if component == "binary_sensor" else {}),
                    "entity_category": "diagnostic",
                    **extra,
                    "device": gw_device,
                    "origin": origin,
                    **availability,
                },
            )
        )
    incident_topics: dict[tuple[str, str, str], str] = {}
    for scope, scope_id, scope_name in _scopes(cfg):
        dev = device(
            f"{gw_ident}_{scope}_{scope_id}", scope_name, "Building" if scope == "building" else "Compound", via=True
        )
        for itype in ha.incident_types:
            iscope, device_class, en, cn = CATALOG[itype]
            if iscope != scope:
                continue
            obj = f"{scope_id}_{itype}"
            state_topic = f"{sp}/{scope}/{scope_id}/{itype}"
            incident_topics[(scope, scope_id, itype)] = state_topic
            entities.append(
                Entity(
                    f"{prefix}/binary_sensor/{node}/{obj}/config",
                    {
                        "name": cn if zh else en,
                        "unique_id": f"{gw_ident}_{obj}",
                        "state_topic": state_topic,
                        "payload_on": ON,
                        "payload_off": OFF,
                        "device_class": device_class,
                        "device": dev,
                        "origin": origin,
                        **availability,
                    },
                )
            )
    return Plan(
        node_id=node,
        discovery_prefix=prefix,
        status_topic=ha.status_topic or f"{prefix}/status",
        state_prefix=sp,
        availability_topic=availability_topic,
        health_topic=health_topic,
        entities=tuple(entities),
        incident_topics=incident_topics,
    )


def _scopes(cfg: SiteConfig) -> Iterable[tuple[str, str, str]]:
    for compound in cfg.site.compounds:
        yield "compound", compound.id, compound.name
        for b in compound.buildings:
            yield "building", b.id, b.name


def incident_states(
    plan: Plan, cfg: SiteConfig, open_incidents: Iterable[tuple[str, str | None, str | None]]
) -> dict[str, str]:
    """State topic -> ON/OFF from the open incidents' (type, building, compound)."""
    states = dict.fromkeys(plan.incident_topics.values(), OFF)
    for itype, building, compound in open_incidents:
        if compound is None and building is not None:
            c = cfg.compound_of_building(building)
            compound = c.id if c is not None else None
        for scope, scope_id in (("building", building), ("compound", compound)):
            topic = plan.incident_topics.get((scope, scope_id or "", itype))
            if topic is not None:
                states[topic] = ON
    return states


def health_state(broker_connected: bool, sync_backlog: int, used_bytes: int, quota_bytes: int) -> bytes:
    fill = round(100.0 * used_bytes / quota_bytes, 2) if quota_bytes > 0 else 0.0
    return json.dumps(
        {"broker": ON if broker_connected else OFF, "sync_backlog": sync_backlog, "store_fill": fill},
        separators=(",", ":"),
    ).encode()
