"""What the pipeline needs to know from the site config, precomputed once per config load.

- Which driver decodes a topic (the ``ingest.sources`` table, first match wins).
- Which configured device a reading belongs to: (driver, normalised address), Zigbee2MQTT
  friendly-name aliases, devices owned by sibling gateways (ignored, not "unconfigured").
- Which topics the life-safety session subscribes to, so the telemetry session can leave them.
- How big a payload each topic may carry (``ingest.max_payload_bytes`` and ``payload_limits``).

Every per-driver fact (address form, life-safety topics, configurable base topic) comes from the
driver table, drivers.DRIVERS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from paho.mqtt.client import topic_matches_sub
from paho.mqtt.matcher import MQTTMatcher

from drivers import DRIVERS
from drivers.base import DriverSpec, filter_base
from gateway.core.contract import DeviceInfo

if TYPE_CHECKING:
    from edge_config import SiteConfig


@dataclass
class Source:
    driver: DriverSpec
    filters: tuple[str, ...]


def _safety_filters(driver: str, address: str, friendly: str | None, sources: list[Source]) -> tuple[str, ...]:
    out: list[str] = []
    for src in sources:
        if src.driver.name != driver:
            continue
        for f in src.filters:
            out.extend(src.driver.safety_topics(f, address, friendly))
    return tuple(dict.fromkeys(out))


@dataclass
class Routing:
    gateway_id: str
    sources: list[Source]
    devices: dict[tuple[str, str], DeviceInfo]
    foreign: set[tuple[str, str]]
    aliases: dict[tuple[str, str], str]  # (driver, alias) -> address
    max_payload: int = 65536  # ingest.max_payload_bytes: topics no payload limit names
    payload_limits: tuple[tuple[tuple[str, ...], int], ...] = ()  # (filters, max bytes), first match wins
    by_id: dict[str, DeviceInfo] = field(default_factory=dict)
    _topic_cache: dict[str, DriverSpec | None] = field(default_factory=dict)
    _safety_cache: dict[str, bool] = field(default_factory=dict)
    _limit_cache: dict[str, int] = field(default_factory=dict)
    _safety_filters: list[str] | None = None
    _safety_matcher: MQTTMatcher | None = None

    def __post_init__(self) -> None:
        self.by_id = {d.id: d for d in self.devices.values()}

    @property
    def telemetry_filters(self) -> list[str]:
        return [f for s in self.sources for f in s.filters]

    @property
    def safety_filters(self) -> list[str]:
        if self._safety_filters is None:
            self._safety_filters = list(dict.fromkeys(f for d in self.devices.values() for f in d.safety_filters))
        return self._safety_filters

    def driver_for(self, topic: str) -> DriverSpec | None:
        try:
            return self._topic_cache[topic]
        except KeyError:
            pass
        found = None
        for src in self.sources:
            if any(topic_matches_sub(f, topic) for f in src.filters):
                found = src.driver
                break
        if len(self._topic_cache) > 50_000:  # bound memory against topic spraying
            self._topic_cache.clear()
        self._topic_cache[topic] = found
        return found

    def payload_limit(self, topic: str) -> int:
        """The largest payload accepted on this topic; bigger ones are dead-lettered unread."""
        try:
            return self._limit_cache[topic]
        except KeyError:
            pass
        found = self.max_payload
        for filters, limit in self.payload_limits:
            if any(topic_matches_sub(f, topic) for f in filters):
                found = limit
                break
        if len(self._limit_cache) > 50_000:  # bound memory against topic spraying
            self._limit_cache.clear()
        self._limit_cache[topic] = found
        return found

    def is_safety_topic(self, topic: str) -> bool:
        """True when the life-safety session subscribes to this topic (it stores those messages)."""
        try:
            return self._safety_cache[topic]
        except KeyError:
            pass
        matcher = self._safety_matcher
        if matcher is None:
            # One prefix tree over every life-safety filter (one per safety device, hundreds on a
            # site): a new topic costs one walk down the tree, where topic_matches_sub would build
            # a tree per filter (~5 ms per new topic with 200 SOS buttons, on the writer thread).
            matcher = MQTTMatcher()
            for f in self.safety_filters:
                matcher[f] = True
            self._safety_matcher = matcher
        found = next(matcher.iter_match(topic), False)
        if len(self._safety_cache) > 50_000:
            self._safety_cache.clear()
        self._safety_cache[topic] = found
        return found

    def resolve(self, driver: str, device: str) -> DeviceInfo | None:
        key = (driver, device)
        info = self.devices.get(key)
        if info is None and device.startswith("name:"):
            addr = self.aliases.get((driver, device[5:]))
            if addr is not None:
                info = self.devices.get((driver, addr))
        return info

    def is_foreign(self, driver: str, device: str) -> bool:
        if device.startswith("name:"):
            addr = self.aliases.get((driver, device[5:]))
            return addr is not None and (driver, addr) in self.foreign
        return (driver, device) in self.foreign


def _spec_for(driver: str, topics: tuple[str, ...]) -> DriverSpec:
    """The table entry, or for a driver with a configurable base topic whose filters share one
    base of several levels ('site1/z2m/#') the entry with a decoder bound to that base (the
    table's default decoder takes the first level as the base)."""
    spec = DRIVERS[driver]
    if spec.decoder_for_base is not None:
        bases = {filter_base(t) for t in topics}
        if len(bases) == 1 and "/" in next(iter(bases)):
            return replace(spec, decode=spec.decoder_for_base(next(iter(bases))))
    return spec


def build_routing(cfg: SiteConfig) -> Routing:
    """Build the routing tables from a loaded SiteConfig (edge_config.SiteConfig)."""
    sources = [Source(_spec_for(s.driver, tuple(s.topics)), tuple(s.topics)) for s in cfg.ingest.sources]
    devices: dict[tuple[str, str], DeviceInfo] = {}
    foreign: set[tuple[str, str]] = set()
    aliases: dict[tuple[str, str], str] = {}
    friendly_of: dict[tuple[str, str], str] = {}
    gw = cfg.gateway.id
    residents_building = {r.id: r.building for r in (cfg.residents or [])}
    for dev in cfg.devices:
        spec = DRIVERS[dev.driver]
        addr = spec.normalise_address(dev.address)
        if dev.friendly_name:
            aliases[(dev.driver, dev.friendly_name)] = addr
            friendly_of[(dev.driver, addr)] = dev.friendly_name
        if dev.gateway is not None and dev.gateway != gw:
            foreign.add((dev.driver, addr))
            continue
        st = cfg.device_settings(dev)
        loc = dev.location
        building = getattr(loc, "building", None) if loc is not None else None
        if building is None and dev.resident:
            building = residents_building.get(dev.resident)
        devices[(dev.driver, addr)] = DeviceInfo(
            id=dev.id,
            driver=dev.driver,
            address=addr,
            type=dev.type,
            category=st.category,
            life_safety=bool(st.life_safety),
            # None = no liveness expectation (e.g. a mains gate that only speaks on change)
            expected_interval_s=float(st.expected_interval_s) if st.expected_interval_s else math.inf,
            resident_id=dev.resident,
            building=building,
            safety_filters=(),
        )
    limits = tuple((tuple(lim.topics), lim.max_bytes) for lim in cfg.ingest.payload_limits)
    routing = Routing(gw, sources, devices, foreign, aliases, cfg.ingest.max_payload_bytes, limits)
    for key, info in list(devices.items()):
        if info.life_safety:
            filters = _safety_filters(info.driver, info.address, friendly_of.get(key), sources)
            devices[key] = DeviceInfo(**{**_asdict(info), "safety_filters": filters})
    routing.devices = devices
    routing.by_id = {d.id: d for d in devices.values()}
    return routing


def _asdict(info: DeviceInfo) -> dict[str, Any]:
    return {name: getattr(info, name) for name in DeviceInfo.__slots__}
