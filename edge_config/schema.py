"""Pydantic models for the site file (one YAML file per community).

Every model forbids unknown keys and documents every field (the descriptions end up in
``config.schema.json`` for editors and in ``docs/config.md``). Checks that need only one section
live in field validators here; checks that relate sections to each other (references, duplicate
ids) live in :func:`cross_check`, which works on plain data so the loader can report them together
with structural errors.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import hashlib
import ipaddress
import re
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .api_settings import ApiSettings
from .camera_settings import CamerasSettings
from .channel_settings import ChannelSettings
from .device_types import DEVICE_TYPES, Category, DeviceTypeFacts
from .integration_settings import IntegrationsSettings
from .parking_layout import check_layout
from .privacy_settings import PrivacySettings
from .resident_settings import ResidentLoopSettings
from .rules_settings import RulesSettings
from .secrets import EnvSecret, refuse_url_secrets
from .sync_settings import SyncSettings
from .ticket_settings import TicketSettings

# --------------------------------------------------------------------------------------------
# Basic types

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
GATEWAY_ID_PATTERN = r"^[a-z0-9-]{2,32}$"
TYPE_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,47}$"

#: Human explanations for the patterns above, used by the loader's error messages.
PATTERN_HELP: dict[str, str] = {
    ID_PATTERN: "ids are 1-64 lower-case letters, digits, '-' or '_' starting with a letter or digit (e.g. 'b03-u1')",
    GATEWAY_ID_PATTERN: "gateway ids are 2-32 lower-case letters, digits or '-' (e.g. 'gw-hy-01')",
    TYPE_KEY_PATTERN: "device type names are lower-case letters, digits and '_' (e.g. 'sos_button')",
}

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
GatewayId = Annotated[str, StringConstraints(pattern=GATEWAY_ID_PATTERN)]
TypeKey = Annotated[str, StringConstraints(pattern=TYPE_KEY_PATTERN)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]

#: Drivers assumed when the ``drivers`` package cannot be imported (or has no ``DRIVERS``).
FALLBACK_DRIVERS: tuple[str, ...] = ("zigbee2mqtt", "chirpstack", "native", "frigate")


@functools.cache
def _driver_table() -> Mapping[str, Any]:
    """``drivers.DRIVERS`` (name -> DriverSpec), or empty when it cannot be imported. Every
    per-driver fact the config checks (names, address forms) comes from there."""
    try:
        from drivers import DRIVERS  # type: ignore[attr-defined,unused-ignore]

        return dict(DRIVERS)
    except Exception:
        return {}


@functools.cache
def known_drivers() -> tuple[str, ...]:
    """Names of the ingest drivers: keys of ``drivers.DRIVERS`` if importable, else the fallback."""
    names = tuple(sorted(str(k) for k in _driver_table()))
    return names or FALLBACK_DRIVERS


def _drivers_in_table_order() -> tuple[str, ...]:
    """For the schema's examples and descriptions: the table's own order, main ecosystems first."""
    return tuple(str(k) for k in _driver_table()) or FALLBACK_DRIVERS


def _address_description() -> str:
    helps = [str(spec.address_help) for spec in _driver_table().values() if getattr(spec, "address_help", "")]
    if not helps:
        return "Stable device address as the driver reports it, stored lower-case."
    return "Stable device address as the driver reports it, stored lower-case: " + "; ".join(helps) + "."


def _check_address(driver: object, value: str) -> None:
    """The driver's address rule (``DriverSpec.address_pattern``) on a stripped lower-case address."""
    spec = _driver_table().get(driver) if isinstance(driver, str) else None
    pattern = getattr(spec, "address_pattern", None)
    if pattern is not None and not re.fullmatch(pattern, value):
        raise ValueError(getattr(spec, "address_help", "") or f"address does not match {pattern}")


def _check_driver(value: str) -> str:
    drivers = known_drivers()
    if value not in drivers:
        raise ValueError(f"unknown driver; use one of: {', '.join(drivers)}")
    return value


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1)."""
    h = host.strip().lower().strip("[]")
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def check_topic_filter(value: str) -> str:
    """Validate an MQTT topic filter ('+' a whole level, '#' only as the last level)."""
    if not value or len(value) > 1024:
        raise ValueError("topic filters must be 1-1024 characters")
    levels = value.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError("'#' must be a whole level and the last one (e.g. 'zigbee2mqtt/#')")
        if "+" in level and level != "+":
            raise ValueError("'+' must be a whole level (e.g. 'application/+/device/+/event/up')")
    return value


def _check_topic_name(value: str | None) -> str | None:
    if value is not None and (not value or "+" in value or "#" in value):
        raise ValueError("a topic to publish to must be non-empty and contain no '+' or '#' wildcards")
    return value


class StrictModel(BaseModel):
    """Base: unknown keys are errors (typos must not be silently ignored). A ValidationError's text
    leaves the input out (pydantic prints ``input_value=...`` by default): a model built in code
    from a bad mapping must not print a secret either; ``errors()`` still holds it for the loader."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


# --------------------------------------------------------------------------------------------
# gateway / mqtt / ingest / store


class GatewaySettings(StrictModel):
    model_config = ConfigDict(extra="forbid")

    id: GatewayId = Field(
        description="This gateway's id, 2-32 of [a-z0-9-]. Ids the gateway mints (incidents, "
        "messages) are prefixed with it, so it must be unique across the district."
    )
    name: str = Field(default="", description="Human-readable name shown in the console, e.g. '和苑社区 1号网关'.")
    timezone: str = Field(
        default="Asia/Shanghai", description="IANA time zone used for active hours, night rules and reports."
    )
    language: Literal["zh", "en"] = Field(default="zh", description="Language of user-facing texts: zh or en.")

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError("not a known IANA time zone; use a name like 'Asia/Shanghai'") from None
        return value


class MqttTls(StrictModel):
    model_config = ConfigDict(extra="forbid")

    ca_file: str | None = Field(default=None, description="CA certificate file (PEM); null = system CA store.")
    cert_file: str | None = Field(default=None, description="Client certificate (PEM) for mutual TLS.")
    key_file: str | None = Field(default=None, description="Client private key (PEM) for mutual TLS.")
    insecure_skip_verify: bool = Field(
        default=False, description="Do not verify the broker certificate. Only for bench tests; never on site."
    )

    @model_validator(mode="after")
    def _pair(self) -> MqttTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together; set both (mutual TLS) or neither")
        return self


class MqttSettings(StrictModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", min_length=1, description="MQTT broker host name or IP.")
    port: int = Field(default=1883, ge=1, le=65535, description="MQTT broker port (1883 plain, 8883 TLS).")
    username: str | None = Field(default=None, description="MQTT user name; null = anonymous.")
    password: EnvSecret | None = Field(
        default=None, description='MQTT password, ONLY as an environment reference like "${MQTT_PASSWORD}".'
    )
    allow_plaintext_remote: bool = Field(
        default=False,
        description="Allow an unencrypted connection to a non-loopback broker. Refused unless true.",
    )
    tls: MqttTls | None = Field(
        default=None,
        validate_default=True,
        description="TLS settings; null = plain TCP (only allowed to a loopback broker unless "
        "allow_plaintext_remote is true).",
    )
    client_id: str | None = Field(
        default=None, min_length=1, max_length=128, description="MQTT client id; default 'edge-<gateway.id>'."
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive in seconds.")
    status_topic: str | None = Field(
        default=None,
        description="Retained online/offline status topic (also the last will); default 'edge/<gateway.id>/status'.",
    )

    @field_validator("password")
    @classmethod
    def _password_needs_user(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and "username" in info.data and info.data["username"] is None:
            raise ValueError("a password without a username is ignored by the broker; set mqtt.username")
        return value

    @field_validator("tls")
    @classmethod
    def _no_remote_plaintext(cls, value: MqttTls | None, info: ValidationInfo) -> MqttTls | None:
        host = info.data.get("host")
        if (
            value is None
            and isinstance(host, str)
            and not is_loopback_host(host)
            and not info.data.get("allow_plaintext_remote", False)
        ):
            raise ValueError(
                "the broker is not on this box and the connection would be plain text; configure "
                "mqtt.tls (e.g. tls: {ca_file: /etc/edge/ca.pem}) or, on a trusted network only, "
                "set allow_plaintext_remote: true"
            )
        return value

    @field_validator("status_topic")
    @classmethod
    def _status_topic(cls, value: str | None) -> str | None:
        return _check_topic_name(value)


class IngestSource(StrictModel):
    model_config = ConfigDict(extra="forbid")

    driver: str = Field(
        description="Driver that decodes messages on these topics.",
        json_schema_extra={"examples": list(_drivers_in_table_order())},
    )
    topics: list[str] = Field(min_length=1, description="MQTT topic filters to subscribe to.")

    @field_validator("driver")
    @classmethod
    def _driver(cls, value: str) -> str:
        return _check_driver(value)

    @field_validator("topics")
    @classmethod
    def _topics(cls, value: list[str]) -> list[str]:
        for t in value:
            check_topic_filter(t)
        return value


def _default_sources() -> list[IngestSource]:
    return [
        IngestSource(driver="zigbee2mqtt", topics=["zigbee2mqtt/#"]),
        IngestSource(driver="chirpstack", topics=["application/+/device/+/event/up"]),
        IngestSource(driver="native", topics=["edge/v1/devices/+/+"]),
    ]


MAX_PAYLOAD_CAP = 16 * 1024 * 1024
#: Default limit of the topics a driver marks as large by nature (``DriverSpec.bulk_topics``, e.g.
#: Zigbee2MQTT's bridge/devices, hundreds of KB for a hundred or two devices).
BULK_PAYLOAD_BYTES = 4 * 1024 * 1024


class PayloadLimit(StrictModel):
    model_config = ConfigDict(extra="forbid")

    topics: list[str] = Field(min_length=1, description="MQTT topic filters this limit applies to.")
    max_bytes: int = Field(ge=64, le=MAX_PAYLOAD_CAP, description="Bigger payloads on these topics are dead-lettered.")

    @field_validator("topics")
    @classmethod
    def _topics(cls, value: list[str]) -> list[str]:
        for t in value:
            check_topic_filter(t)
        return value


def _bulk_limits(sources: list[IngestSource]) -> list[PayloadLimit]:
    """The default per-topic limits: each driver's bulk topics under each filter's base."""
    table = _driver_table()
    filters: list[str] = []
    for src in sources:
        bulk = getattr(table.get(src.driver), "bulk_topics", ())
        if not bulk:
            continue
        from drivers.base import filter_base  # importable: the table above came from there

        for f in src.topics:
            base = filter_base(f) or "+"  # '#' alone: the first level is the base
            filters.extend(f"{base}/{b}" for b in bulk)
    return [PayloadLimit(topics=list(dict.fromkeys(filters)), max_bytes=BULK_PAYLOAD_BYTES)] if filters else []


class IngestSettings(StrictModel):
    model_config = ConfigDict(extra="forbid")

    max_payload_bytes: int = Field(
        default=65536,
        ge=64,
        le=MAX_PAYLOAD_CAP,
        description="Bigger MQTT payloads are dead-lettered unread, on every topic payload_limits does not name.",
    )
    payload_limits: list[PayloadLimit] = Field(
        default_factory=list,
        description="Per-topic limits, first match wins. Left out: 4 MiB for the topics drivers mark as large "
        "(Zigbee2MQTT's <base>/bridge/#, whose device list is hundreds of KB); given: exactly these.",
    )
    sources: list[IngestSource] = Field(
        default_factory=_default_sources, description="Which driver handles which topic filters."
    )
    dead_letter_limit: int = Field(
        default=10000, ge=0, description="Dead letters kept for inspection; the oldest are dropped beyond this."
    )

    @model_validator(mode="after")
    def _default_payload_limits(self) -> IngestSettings:
        # Filled in after loading (like mqtt.client_id), from the sources actually configured, so
        # a Zigbee2MQTT base of 'site1/z2m' gets 'site1/z2m/bridge/#'.
        if "payload_limits" not in self.model_fields_set:
            self.payload_limits = _bulk_limits(self.sources)
        return self


class StoreSettings(StrictModel):
    model_config = ConfigDict(extra="forbid")

    path: Path = Field(
        default=Path("./data/gateway.db"),
        description="SQLite database file; relative paths are relative to the gateway's working directory.",
    )
    quota_mb: int = Field(default=512, ge=16, description="Size cap for the whole store in MiB.")
    reserve_mb: int = Field(
        default=16, ge=0, description="MiB of the quota kept free for life-safety messages only; < quota_mb."
    )
    readings_retention_days: int = Field(default=30, ge=1, le=3650, description="Days raw readings are kept.")
    prune_at_pct: int = Field(
        default=80,
        ge=10,
        le=95,
        description="When the store fills past this percent of (quota - reserve), the oldest readings are "
        "deleted (telemetry waiting for sync lives in the outbox, which has its own quota).",
    )
    group_commit_ms: int = Field(
        default=200,
        ge=0,
        le=2000,
        description="Telemetry waits up to this long to share one fsync'd commit with other messages "
        "(fewer SD-card writes). Life-safety messages never wait.",
    )

    @field_validator("reserve_mb")
    @classmethod
    def _reserve_below_quota(cls, value: int, info: ValidationInfo) -> int:
        quota = info.data.get("quota_mb")
        if isinstance(quota, int) and value >= quota:
            raise ValueError(
                "reserve_mb must be smaller than quota_mb (the reserve is carved out of the quota); "
                "lower reserve_mb or raise quota_mb"
            )
        return value


# --------------------------------------------------------------------------------------------
# site topology


class Street(StrictModel):
    model_config = ConfigDict(extra="forbid")

    id: Id = Field(description="Street office (街道) id.")
    name: Name = Field(description="Street office name, e.g. 和平街道.")


class Community(StrictModel):
    model_config = ConfigDict(extra="forbid")

    id: Id = Field(description="Community (社区) id.")
    name: Name = Field(description="Community name, e.g. 和苑社区.")
    households: int = Field(ge=0, description="Number of households in the community (~3,000 recommended).")


class Grid(StrictModel):
    model_config = ConfigDict(extra="forbid")

    id: Id = Field(description="Grid (网格) id, unique in the file.")
    name: Name = Field(description="Grid name, e.g. 第一网格.")
    households: int = Field(default=0, ge=0, description="Households in the grid (~200).")
    grid_worker: Id | None = Field(
        default=None,
        description="Required: staff id of the grid worker (网格员), a staff member with role grid_worker.",
    )


class PropertyCompany(StrictModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="Property-management company (物业) name.")
    duty_team: Id = Field(description="Id of the team (kind property_duty) that receives this compound's alarms.")
    phone: str | None = Field(default=None, description="Duty phone of the company (office line).")


class Unit(StrictModel):
    model_config = ConfigDict(extra="forbid")

    id: Id = Field(description="Unit (单元) id, unique within its building (e.g. 'u1').")
    name: Name = Field(description="Unit name, e.g. 1单元.")
    households: int = Field(default=0, ge=0, description="Households in this unit.")


class Building(StrictModel):
    model_config = ConfigDict(extra="forbid")

    id: Id = Field(description="Building (楼栋) id, unique across the whole file (e.g. 'b03').")
    name: Name = Field(description="Building name, e.g. 和苑一区3号楼.")
    grid: Id = Field(description="Id of the grid this building belongs to.")
    floors: int = Field(ge=1, le=200, description="Number of floors above ground.")
    units: list[Unit] = Field(default_factory=list, description="Units (单元) of the building.")

    def unit(self, unit_id: str) -> Unit | None:
        return next((u for u in self.units if u.id == unit_id), None)


class Compound(StrictModel):
    model_config = ConfigDict(extra="forbid")

    id: Id = Field(description="Residential compound (小区) id.")
    name: Name = Field(description="Compound name, e.g. 和苑一区.")
    property_company: PropertyCompany = Field(description="The compound's property company (物业).")
    buildings: list[Building] = Field(default_factory=list, description="Buildings in the compound.")


PlanPoint = Annotated[
    tuple[Annotated[float, Field(ge=0, le=100_000)], Annotated[float, Field(ge=0, le=100_000)]],
    Field(description="A point [x, y] of a lot plan (x to the right, y down)."),
]


class ParkingSpace(StrictModel):
    model_config = ConfigDict(extra="forbid")

    id: Id = Field(description="Parking space id, unique across the file (e.g. 'p1-001').")
    kind: Literal["normal", "fire_lane", "no_parking", "reserved"] = Field(
        default="normal",
        description="normal; fire_lane and no_parking: any occupancy is an incident; reserved: "
        "for a holder (accessible, visitor...).",
    )
    max_stay_min: int | None = Field(
        default=None, ge=1, description="Overstay limit for this space in minutes; null = no limit."
    )
    # Where the space is on the lot plan the console draws (optional; edge_config/parking_layout.py
    # checks them): a row and a position in it, or a polygon on a plan of the area's own units.
    row: int | None = Field(default=None, ge=1, le=100, description="Lot plan: row of the space (1 = top).")
    position: int | None = Field(
        default=None, ge=1, le=500, description="Lot plan: place in its row, from the left (1 = first)."
    )
    polygon: list[PlanPoint] | None = Field(
        default=None,
        min_length=3,
        max_length=16,
        description="Lot plan: the space's outline as [x, y] points in plan units (e.g. decimetres), "
        "instead of row/position.",
    )


class ParkingArea(StrictModel):
    model_config = ConfigDict(extra="forbid")

    id: Id = Field(description="Parking area id.")
    name: Name = Field(description="Parking area name, e.g. 地面停车场.")
    compound: Id = Field(description="Id of the compound whose property company runs the area.")
    spaces: list[ParkingSpace] = Field(default_factory=list, description="Spaces in the area.")


class Site(StrictModel):
    model_config = ConfigDict(extra="forbid")

    street: Street = Field(description="The street office (街道) above the community.")
    community: Community = Field(description="The community (社区) this file describes.")
    grids: list[Grid] = Field(default_factory=list, description="Grids (网格), ~200 households each.")
    compounds: list[Compound] = Field(default_factory=list, description="Residential compounds (小区).")
    parking_areas: list[ParkingArea] = Field(default_factory=list, description="Managed parking areas.")


# --------------------------------------------------------------------------------------------
# people

PERSONAL: dict[str, Any] = {"personal": True}

ResidentFlag = Literal[
    "dementia",
    "lives_alone",
    "mobility_impaired",
    "heart_condition",
    "hearing_impaired",
    "visually_impaired",
    "diabetes",
    "bedridden",
]


class Consent(StrictModel):
    model_config = ConfigDict(extra="forbid")

    given: bool = Field(default=False, description="The resident (or guardian) consented to monitoring.")
    date: dt.date | None = Field(default=None, description="Date consent was given (YYYY-MM-DD).")
    recorded_by: Id | None = Field(default=None, description="Staff id of whoever recorded the consent.")

    @model_validator(mode="after")
    def _recorded(self) -> Consent:
        if self.given and (self.date is None or self.recorded_by is None):
            raise ValueError("consent given must be recorded: set consent.date and consent.recorded_by")
        return self

    @property
    def recorded(self) -> bool:
        return self.given and self.date is not None and self.recorded_by is not None


class ActiveHours(StrictModel):
    model_config = ConfigDict(extra="forbid")

    start: dt.time = Field(default=dt.time(7, 0), description='Usual getting-up time, quoted "HH:MM".')
    end: dt.time = Field(default=dt.time(22, 0), description='Usual bed time, quoted "HH:MM" (may be past midnight).')


class EmergencyContact(StrictModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="Contact's name.", json_schema_extra=PERSONAL)
    relation: str | None = Field(
        default=None, max_length=32, description="Relation to the resident, e.g. 女儿 (daughter), 邻居."
    )
    phone: str = Field(min_length=3, max_length=32, description="Contact's phone.", json_schema_extra=PERSONAL)


class Resident(StrictModel):
    model_config = ConfigDict(extra="forbid")

    id: Id = Field(description="Resident id (e.g. 'r001'); devices refer to it.")
    name: Name = Field(description="Resident's name.", json_schema_extra=PERSONAL)
    building: Id = Field(description="Building id of the home.")
    unit: Id = Field(description="Unit id (within the building) of the home.")
    room: str | None = Field(
        default=None, max_length=32, description="Flat number, e.g. '1201'.", json_schema_extra=PERSONAL
    )
    phone: str | None = Field(default=None, max_length=32, description="Resident's phone.", json_schema_extra=PERSONAL)
    emergency_contacts: list[EmergencyContact] = Field(
        default_factory=list,
        max_length=5,
        description="Family or neighbours to call in an emergency, in order; shown with a call button to the roles "
        "allowed personal data (each view logged).",
        json_schema_extra=PERSONAL,
    )
    care_notes: str | None = Field(
        default=None,
        max_length=500,
        description="What a responder must know (e.g. 'key with neighbour 302; hard of hearing, knock loudly').",
        json_schema_extra=PERSONAL,
    )
    family_phone: str | None = Field(
        default=None,
        max_length=32,
        description="Registered family contact's phone (asked to evaluate when the resident has no phone, or "
        "with evaluation_by: family).",
        json_schema_extra=PERSONAL,
    )
    evaluation_by: Literal["resident", "family"] = Field(
        default="resident", description="Who is asked to evaluate the resident's handled incidents."
    )
    eldercare_worker: Id = Field(description="Staff id of the assigned elder-care worker (role eldercare_worker).")
    consent: Consent = Field(
        default_factory=Consent,
        description="Consent to monitoring; devices may only be linked to residents with recorded consent.",
    )
    flags: list[ResidentFlag] = Field(
        default_factory=list, description="Care flags (dementia → wandering rules, ...).", json_schema_extra=PERSONAL
    )
    active_hours: ActiveHours = Field(
        default_factory=ActiveHours, description="Usual active hours; inactivity and night rules use them."
    )
    inactivity_hours: float | None = Field(
        default=None,
        gt=0,
        le=72,
        description="Hours without activity that raise an alarm for this resident; null = device type default.",
    )


StaffRole = Literal[
    "grid_worker",
    "property_staff",
    "eldercare_worker",
    "maintenance",
    "community_office",
    "street_office",
    "department",
    "installer",
]
STAFF_ROLES: tuple[str, ...] = typing.get_args(StaffRole)
TeamKind = Literal["property_duty", "eldercare", "maintenance", "community_office", "street_office", "department"]
TEAM_KINDS: tuple[str, ...] = typing.get_args(TeamKind)


class Channel(StrictModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["sms", "voice", "wecom", "dingtalk", "email", "webhook", "console"] = Field(
        description="How to reach the person: sms, voice call, WeCom, DingTalk, email, webhook or console."
    )
    target: str = Field(
        min_length=1,
        max_length=512,
        description="Phone number, WeCom/DingTalk user id, email address, webhook URL (no tokens in it) "
        "or console user.",
    )
    token: EnvSecret | None = Field(
        default=None, description='Access token / signing secret for the channel, ONLY as "${ENV_NAME}".'
    )

    @field_validator("target")
    @classmethod
    def _target(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("type")
        if kind in ("sms", "voice") and not re.fullmatch(r"\+?[0-9][0-9 -]{4,19}", value):
            raise ValueError("sms/voice targets are phone numbers like '13800000000' or '+86 10 12345678'")
        if kind == "email" and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError("email targets are addresses like 'duty@example.com'")
        if kind in ("webhook", "wecom", "dingtalk") and value.startswith(("http://", "https://")):
            refuse_url_secrets(value)  # token: "${ENV_NAME}" is the place for it
        if kind == "webhook" and not value.startswith(("http://", "https://")):
            raise ValueError("webhook targets are http(s) URLs")
        return value


class StaffMember(StrictModel):
    model_config = ConfigDict(extra="forbid")

    id: Id = Field(description="Staff id (e.g. 'gw-wang'); grids, teams and residents refer to it.")
    name: Name = Field(description="Name.", json_schema_extra=PERSONAL)
    role: StaffRole = Field(description="Role; decides which alarms the person may see and receive.")
    phone: str | None = Field(default=None, max_length=32, description="Work phone.", json_schema_extra=PERSONAL)
    channels: list[Channel] = Field(default_factory=list, description="Notification channels, in order of preference.")
    wecom_userid: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$",
        description="The person's WeCom UserID (通讯录 → the member's 账号): with channels.wecom_app configured, "
        "messages to this person go first to the WeCom application, directly to them.",
        json_schema_extra=PERSONAL,
    )
    grids: list[Id] = Field(default_factory=list, description="Grid ids the person covers.")
    compounds: list[Id] = Field(default_factory=list, description="Compound ids the person covers.")


Department = Literal["fire", "police", "health", "urban_management", "market_supervision", "housing"]


class Team(StrictModel):
    model_config = ConfigDict(extra="forbid")

    id: Id = Field(description="Team id; property companies and rules dispatch to teams.")
    name: Name = Field(description="Team name, e.g. 和苑一区物业值班组.")
    kind: TeamKind = Field(description="What the team does.")
    department: Department | None = Field(
        default=None, description="For kind department: which district department (吹哨报到 target)."
    )
    members: list[Id] = Field(default_factory=list, description="Staff ids of the members.")
    compound: Id | None = Field(default=None, description="Compound id the team is responsible for, if any.")

    @model_validator(mode="after")
    def _department(self) -> Team:
        if self.kind == "department" and self.department is None:
            raise ValueError("a team of kind department needs department: fire|police|health|...")
        if self.kind != "department" and self.department is not None:
            raise ValueError("department is only for teams of kind department; remove it or change kind")
        return self


# --------------------------------------------------------------------------------------------
# devices


class DeviceTypeSettings(StrictModel):
    """Per-type defaults used by the rules. Every field is optional; built-in types set some, the
    YAML ``device_types`` entries override fields, and ``devices[].overrides`` override again."""

    model_config = ConfigDict(extra="forbid")

    category: Category = Field(
        default="device_health", description="Alarm domain: parking, security, eldercare or device_health."
    )
    life_safety: bool = Field(
        default=False, description="Alarms are life-safety: highest priority, may use the store's reserve."
    )
    expected_interval_s: int | None = Field(
        default=90000,
        ge=10,
        description="Longest normal silence in seconds before the device counts as offline "
        "(Zigbee2MQTT: 600 mains, 90000 battery); null = no liveness check.",
    )
    battery_low_pct: int | None = Field(
        default=20, ge=0, le=100, description="Battery percentage that raises a low-battery notice; null = mains."
    )
    door_open_max_s: int | None = Field(
        default=300, ge=1, description="Door held open longer than this (seconds) is an incident."
    )
    max_stay_min: int | None = Field(
        default=None, ge=1, description="Parking overstay limit in minutes; null = none (spaces may set their own)."
    )
    heart_rate_low: int | None = Field(default=40, ge=0, le=300, description="Heart rate below this (bpm) is abnormal.")
    heart_rate_high: int | None = Field(
        default=130, ge=0, le=300, description="Heart rate above this (bpm) is abnormal."
    )
    spo2_low: int | None = Field(default=90, ge=0, le=100, description="Blood oxygen below this (%) is abnormal.")
    consecutive_readings: int = Field(
        default=3, ge=1, le=100, description="Abnormal vitals must repeat this many times in a row to alarm."
    )
    inactivity_hours: float | None = Field(
        default=6.0, gt=0, le=72, description="No activity for this many hours in active hours raises an alarm."
    )
    access_denied_max: int | None = Field(
        default=5, ge=1, description="This many denied credentials within access_denied_window_s is an incident."
    )
    access_denied_window_s: int = Field(default=300, ge=1, description="Window for access_denied_max, seconds.")
    fire_lane_max_min: int | None = Field(
        default=3, ge=1, description="A vehicle in a fire-lane space longer than this (minutes) is an incident."
    )
    no_parking_max_min: int | None = Field(
        default=10, ge=1, description="A vehicle in a no-parking space longer than this (minutes) is an incident."
    )
    battery_clear_margin_pct: int = Field(
        default=5, ge=0, le=50, description="Low battery clears only at battery_low_pct + this (hysteresis)."
    )
    flapping_max_changes: int | None = Field(
        default=None,
        ge=2,
        description="Value changes within rules.flapping_window_s that make a sensor of this type flapping; "
        "null = rules.flapping_max_changes. A door people use changes twice at every passage, so the built-in "
        "door types set 20 (a door opened and shut every 6 s for a whole minute); a failing contact bounces faster.",
    )


def _builtin(facts: DeviceTypeFacts) -> DeviceTypeSettings:
    return DeviceTypeSettings.model_validate(
        {
            "category": facts.category,
            "life_safety": facts.life_safety,
            "expected_interval_s": facts.expected_interval_s,
            "battery_low_pct": facts.battery_low_pct,
            **facts.settings,
        }
    )


#: Built-in device types (defaults from edge_config.device_types). YAML ``device_types`` entries
#: override individual fields.
BUILTIN_DEVICE_TYPES: dict[str, DeviceTypeSettings] = {name: _builtin(f) for name, f in DEVICE_TYPES.items()}


class Location(StrictModel):
    model_config = ConfigDict(extra="forbid")

    building: Id | None = Field(default=None, description="Building id.")
    unit: Id | None = Field(default=None, description="Unit id within the building (needs building).")
    floor: int | None = Field(default=None, ge=-10, le=200, description="Floor (negative = basement).")
    room: str | None = Field(
        default=None,
        max_length=32,
        description="Flat number, e.g. '1201'. Set = the device is in a home (elder-care devices then "
        "need a resident).",
    )
    parking_space: Id | None = Field(default=None, description="Parking space id (parking sensors).")
    area: str | None = Field(default=None, max_length=100, description="Free text for common areas, e.g. '东门'.")

    @model_validator(mode="after")
    def _unit_needs_building(self) -> Location:
        if self.unit is not None and self.building is None:
            raise ValueError("location.unit needs location.building (unit ids are per building)")
        return self


class Device(StrictModel):
    model_config = ConfigDict(extra="forbid")

    id: Id = Field(description="Device id, unique in the file (e.g. 'b03-u1-sos-1201').")
    name: str = Field(default="", max_length=100, description="Friendly display name, e.g. '3号楼1单元1201 SOS按钮'.")
    driver: str = Field(
        description=f"Ingest driver: one of {', '.join(_drivers_in_table_order())}.",
        json_schema_extra={"examples": list(_drivers_in_table_order())},
    )
    address: str = Field(min_length=1, description=_address_description())
    friendly_name: str | None = Field(
        default=None, description="Zigbee2MQTT friendly name (installers rename devices; the address is the key)."
    )
    type: TypeKey = Field(description="Device type: a built-in type or a key of device_types.")
    location: Location = Field(default_factory=Location, description="Where the device is installed.")
    resident: Id | None = Field(
        default=None, description="Resident id; required for elder-care devices installed in a home (location.room)."
    )
    gateway: GatewayId | None = Field(
        default=None, description="Gateway that owns the device; null = this gateway. Others' devices are ignored."
    )
    overrides: DeviceTypeSettings = Field(
        default_factory=DeviceTypeSettings,
        description="Per-device overrides of the device type's settings (same keys as device_types).",
    )

    @field_validator("driver")
    @classmethod
    def _driver(cls, value: str) -> str:
        return _check_driver(value)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip().lower()
        _check_address(info.data.get("driver"), value)
        return value


# --------------------------------------------------------------------------------------------
# the whole file


class SiteConfig(StrictModel):
    """One community's site file. Load it with :func:`edge_config.load_config`."""

    model_config = ConfigDict(extra="forbid", title="Community Edge Gateway site config", hide_input_in_errors=True)

    version: Literal[1] = Field(description="Config schema version; only 1 is supported.")
    gateway: GatewaySettings = Field(description="This gateway.")
    mqtt: MqttSettings = Field(default_factory=MqttSettings, description="MQTT broker connection.")
    ingest: IngestSettings = Field(default_factory=IngestSettings, description="MQTT ingest and drivers.")
    store: StoreSettings = Field(default_factory=StoreSettings, description="Local store on the SD card/SSD.")
    sync: SyncSettings = Field(default_factory=SyncSettings, description="Sync to the central time-series store.")
    api: ApiSettings = Field(default_factory=ApiSettings, description="HTTP API and console.")
    site: Site = Field(description="Community topology: street, community, grids, compounds, parking.")
    residents: list[Resident] = Field(
        default_factory=list, description="Elder-care residents (personal data: visible to elder-care staff only)."
    )
    staff: list[StaffMember] = Field(default_factory=list, description="People who receive and handle alarms.")
    teams: list[Team] = Field(default_factory=list, description="Teams alarms are dispatched to.")
    device_types: dict[TypeKey, DeviceTypeSettings] = Field(
        default_factory=dict,
        description="Overrides of built-in device type settings, or new types (fields default as documented).",
    )
    devices: list[Device] = Field(default_factory=list, description="Every device of the community.")
    rules: RulesSettings = Field(
        default_factory=RulesSettings, description="Incident rules: site-wide settings, intrusion zones."
    )
    tickets: TicketSettings = Field(default_factory=TicketSettings, description="Ticket loop, SLAs, escalation.")
    cameras: CamerasSettings = Field(
        default_factory=CamerasSettings, description="Camera analytics: parking occupancy and zone intrusion."
    )
    channels: ChannelSettings = Field(
        default_factory=ChannelSettings,
        description="Staff alarm channels: WeCom/DingTalk robots, SMS/voice, e-mail; grouping.",
    )
    privacy: PrivacySettings = Field(
        default_factory=PrivacySettings, description="Personal-data retention and at-rest checks."
    )
    resident_loop: ResidentLoopSettings = Field(
        default_factory=ResidentLoopSettings,
        description="Residents' side of the loop: evaluation links, report QR codes, early warning.",
    )
    integrations: IntegrationsSettings = Field(
        default_factory=IntegrationsSettings,
        description="Integrations with other systems on the site's broker (Home Assistant discovery).",
    )

    _revision: str = PrivateAttr("")
    _source_path: Path | None = PrivateAttr(None)
    _types: dict[str, DeviceTypeSettings] = PrivateAttr(default_factory=dict)
    _buildings: dict[str, Building] = PrivateAttr(default_factory=dict)
    _building_compound: dict[str, Compound] = PrivateAttr(default_factory=dict)
    _compounds: dict[str, Compound] = PrivateAttr(default_factory=dict)
    _grids: dict[str, Grid] = PrivateAttr(default_factory=dict)
    _spaces: dict[str, tuple[ParkingArea, ParkingSpace]] = PrivateAttr(default_factory=dict)
    _residents: dict[str, Resident] = PrivateAttr(default_factory=dict)
    _staff: dict[str, StaffMember] = PrivateAttr(default_factory=dict)
    _teams: dict[str, Team] = PrivateAttr(default_factory=dict)
    _devices: dict[str, Device] = PrivateAttr(default_factory=dict)
    _by_address: dict[tuple[str, str], Device] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _finish(self, info: ValidationInfo) -> SiteConfig:
        ctx = info.context if isinstance(info.context, Mapping) else {}
        if not ctx.get("skip_cross_check"):
            problems = cross_check(self.model_dump(exclude_unset=True))
            if problems:
                raise ValueError("; ".join(f"{format_loc(loc)}: {msg}" for loc, msg in problems))
        gid = self.gateway.id
        if self.mqtt.client_id is None:
            self.mqtt.client_id = f"edge-{gid}"
        if self.mqtt.status_topic is None:
            self.mqtt.status_topic = f"edge/{gid}/status"
        self._build_indexes()
        self._revision = hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]
        return self

    def _build_indexes(self) -> None:
        types = dict(BUILTIN_DEVICE_TYPES)
        for key, entry in self.device_types.items():
            base = BUILTIN_DEVICE_TYPES.get(key, DeviceTypeSettings())
            types[key] = base.model_copy(update=entry.model_dump(exclude_unset=True))
        self._types = types
        for g in self.site.grids:
            self._grids.setdefault(g.id, g)
        for c in self.site.compounds:
            self._compounds.setdefault(c.id, c)
            for b in c.buildings:
                self._buildings.setdefault(b.id, b)
                self._building_compound.setdefault(b.id, c)
        for a in self.site.parking_areas:
            for s in a.spaces:
                self._spaces.setdefault(s.id, (a, s))
        for r in self.residents:
            self._residents.setdefault(r.id, r)
        for m in self.staff:
            self._staff.setdefault(m.id, m)
        for t in self.teams:
            self._teams.setdefault(t.id, t)
        for d in self.devices:
            self._devices.setdefault(d.id, d)
            self._by_address.setdefault((d.driver, d.address), d)

    # -- provenance ---------------------------------------------------------------------------

    @property
    def revision(self) -> str:
        """First 12 hex digits of the SHA-256 of the file bytes (of the JSON dump if built in code)."""
        return self._revision

    @property
    def source_path(self) -> Path | None:
        """The file this config was loaded from (None if built in code)."""
        return self._source_path

    def _set_source(self, path: Path, revision: str) -> None:
        self._source_path = path
        self._revision = revision

    # -- helpers --------------------------------------------------------------------------------

    def owned_devices(self) -> list[Device]:
        """Devices this gateway handles: ``gateway`` unset or equal to ``gateway.id``."""
        return [d for d in self.devices if d.gateway is None or d.gateway == self.gateway.id]

    def device_types_effective(self) -> dict[str, DeviceTypeSettings]:
        """Built-in types merged with the file's ``device_types`` (copy)."""
        return dict(self._types)

    def type_settings(self, type_name: str) -> DeviceTypeSettings:
        """Settings of a device type (built-in merged with YAML); KeyError if unknown."""
        return self._types[type_name]

    def device_settings(self, device: Device) -> DeviceTypeSettings:
        """Effective settings for one device. Precedence (low → high): type defaults, the parking
        space's ``max_stay_min``, the resident's ``inactivity_hours``, the device's ``overrides``."""
        settings = self._types[device.type]
        update: dict[str, Any] = {}
        if device.location.parking_space is not None:
            found = self._spaces.get(device.location.parking_space)
            if found is not None and found[1].max_stay_min is not None:
                update["max_stay_min"] = found[1].max_stay_min
        if device.resident is not None:
            resident = self._residents.get(device.resident)
            if resident is not None and resident.inactivity_hours is not None:
                update["inactivity_hours"] = resident.inactivity_hours
        update.update(device.overrides.model_dump(exclude_unset=True))
        return settings.model_copy(update=update) if update else settings

    def building(self, building_id: str) -> Building | None:
        return self._buildings.get(building_id)

    def compound(self, compound_id: str) -> Compound | None:
        return self._compounds.get(compound_id)

    def compound_of_building(self, building_id: str) -> Compound | None:
        return self._building_compound.get(building_id)

    def grid(self, grid_id: str) -> Grid | None:
        return self._grids.get(grid_id)

    def grid_of_building(self, building_id: str) -> Grid | None:
        b = self._buildings.get(building_id)
        return self._grids.get(b.grid) if b is not None else None

    def parking_space(self, space_id: str) -> tuple[ParkingArea, ParkingSpace] | None:
        return self._spaces.get(space_id)

    def resident(self, resident_id: str) -> Resident | None:
        return self._residents.get(resident_id)

    def staff_member(self, staff_id: str) -> StaffMember | None:
        return self._staff.get(staff_id)

    def team(self, team_id: str) -> Team | None:
        return self._teams.get(team_id)

    def device(self, device_id: str) -> Device | None:
        return self._devices.get(device_id)

    def device_by_address(self, driver: str, address: str) -> Device | None:
        """Look a device up by driver and address (case-insensitive), e.g. from a Reading."""
        return self._by_address.get((driver, address.strip().lower()))


# --------------------------------------------------------------------------------------------
# cross-section checks (on plain data, so they also run when parts of the file are invalid)

Loc = tuple[str | int, ...]
_SAFE_VALUE = re.compile(ID_PATTERN)  # only well-formed ids are looked up (others: pydantic reports them)


def format_loc(loc: Sequence[str | int]) -> str:
    """('devices', 3, 'location', 'building') -> 'devices[3].location.building'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


# Messages never quote a value of the file, ids included: a password pasted into an id field is
# still a password. They point at places instead (the line is the loader's; "closest" names where
# the likely intended entry is defined) and quote only the schema's own words (roles, kinds, types).


def _vocab(noun: str, value: object, words: Sequence[str]) -> str:
    """E.g. ``role 'x'`` when ``value`` is one of the schema's fixed ``words``, else ``an unknown role``."""
    return f"{noun} '{value}'" if isinstance(value, str) and value in words else f"an unknown {noun}"


def _closest(value: object, idx: Mapping[str, tuple[Loc, Any]]) -> str:
    """Where the id most like ``value`` is defined (difflib), as a hint; the id itself is not shown."""
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(idx), n=1, cutoff=0.6)
    return f" (did you mean the one defined at {format_loc(idx[close[0]][0])}?)" if close else ""


def _suggest_type(value: object, known: Sequence[str]) -> str:
    """Device type names are the schema's and the file's type keys: safe to name."""
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# Any: raw YAML data, checked before validation
def _m(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _l(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def cross_check(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Checks between sections: unknown references, duplicate ids, roles, consent, homes.

    ``data`` is the plain (already env-free) mapping from the YAML file. Malformed parts are skipped
    silently (pydantic reports them); every problem found is returned as ``(loc, message)``.
    """
    problems: list[tuple[Loc, str]] = []

    def err(loc: Loc, msg: str) -> None:
        problems.append((loc, msg))

    def index(items: Sequence[tuple[Loc, Any]], what: str) -> dict[str, tuple[Loc, Mapping[str, Any]]]:
        idx: dict[str, tuple[Loc, Mapping[str, Any]]] = {}
        for loc, item in items:
            if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
                continue
            iid = item["id"]
            if iid in idx:
                err(
                    (*loc, "id"),
                    f"duplicate {what} id: {format_loc(idx[iid][0])} already has this id; "
                    "ids must be unique: rename one of them",
                )
            else:
                idx[iid] = (loc, item)
        return idx

    def ref(loc: Loc, value: Any, idx: Mapping[str, Any], what: str, fix: str) -> bool:
        """True if value is a known id (or not a string: pydantic reports that)."""
        if not isinstance(value, str) or value in idx or not _SAFE_VALUE.match(value):
            return True  # not a string / malformed: pydantic reports it
        err(loc, f"unknown {what}: no {what} has this id{_closest(value, idx)}; {fix}")
        return False

    site = _m(data.get("site"))
    grids = index([(("site", "grids", i), g) for i, g in enumerate(_l(site.get("grids")))], "grid")
    compound_items: list[tuple[Loc, Any]] = [
        (("site", "compounds", i), c) for i, c in enumerate(_l(site.get("compounds")))
    ]
    compounds = index(compound_items, "compound")
    building_items: list[tuple[Loc, Any]] = []
    for cloc, c in compound_items:
        building_items += [((*cloc, "buildings", j), b) for j, b in enumerate(_l(_m(c).get("buildings")))]
    buildings = index(building_items, "building")
    units: dict[str, dict[str, tuple[Loc, Mapping[str, Any]]]] = {}
    for bloc, b in building_items:
        bu = index([((*bloc, "units", k), u) for k, u in enumerate(_l(_m(b).get("units")))], "unit")
        if isinstance(_m(b).get("id"), str):
            units.setdefault(b["id"], bu)
    area_items: list[tuple[Loc, Any]] = [
        (("site", "parking_areas", i), a) for i, a in enumerate(_l(site.get("parking_areas")))
    ]
    index(area_items, "parking area")
    space_items: list[tuple[Loc, Any]] = []
    for aloc, a in area_items:
        space_items += [((*aloc, "spaces", j), s) for j, s in enumerate(_l(_m(a).get("spaces")))]
    spaces = index(space_items, "parking space")
    residents = index([(("residents", i), r) for i, r in enumerate(_l(data.get("residents")))], "resident")
    staff = index([(("staff", i), s) for i, s in enumerate(_l(data.get("staff")))], "staff")
    teams = index([(("teams", i), t) for i, t in enumerate(_l(data.get("teams")))], "team")
    device_items = [(("devices", i), d) for i, d in enumerate(_l(data.get("devices")))]
    device_ids = index(device_items, "device")

    add_staff = "use the id of a staff member (staff[].id) or add that person to staff"

    def role_of(staff_id: Any) -> Any:
        return _m(staff[staff_id][1]).get("role") if isinstance(staff_id, str) and staff_id in staff else None

    # grids: each needs a grid worker with role grid_worker
    for _gid, (gloc, g) in grids.items():
        worker = g.get("grid_worker")
        if worker is None:
            err(
                (*gloc, "grid_worker"),
                "this grid has no grid worker (网格员); every grid needs one: set grid_worker to the "
                "id of a staff member with role grid_worker",
            )
        elif ref((*gloc, "grid_worker"), worker, staff, "staff member", add_staff):
            role = role_of(worker)
            if isinstance(role, str) and role != "grid_worker":
                err(
                    (*gloc, "grid_worker"),
                    f"the staff member named here ({format_loc(staff[str(worker)][0])}) has "
                    f"{_vocab('role', role, STAFF_ROLES)}, not grid_worker; assign a grid worker or change that "
                    "person's role to grid_worker",
                )

    # compounds and buildings
    for _cid, (cloc, c) in compounds.items():
        pc = _m(c.get("property_company"))
        duty = pc.get("duty_team")
        if ref((*cloc, "property_company", "duty_team"), duty, teams, "team", "use a teams[].id of kind property_duty"):
            kind = _m(teams[duty][1]).get("kind") if isinstance(duty, str) else None
            if isinstance(kind, str) and kind != "property_duty":
                err(
                    (*cloc, "property_company", "duty_team"),
                    f"the team named here ({format_loc(teams[str(duty)][0])}) is of "
                    f"{_vocab('kind', kind, TEAM_KINDS)}; a property company's duty_team must be a team of kind "
                    "property_duty",
                )
    for bloc, b in building_items:
        ref((*bloc, "grid"), _m(b).get("grid"), grids, "grid", "use a site.grids[].id or add the grid")

    for aloc, a in area_items:
        ref((*aloc, "compound"), _m(a).get("compound"), compounds, "compound", "use a site.compounds[].id")
        problems += check_layout(aloc, _m(a))

    def check_home(loc: Loc, building: Any, unit: Any) -> None:
        known = ref(
            (*loc, "building"), building, buildings, "building", "use a building id from site.compounds[].buildings"
        )
        if known and isinstance(building, str) and isinstance(unit, str) and unit not in units.get(building, {}):
            err(
                (*loc, "unit"),
                f"the building named here ({format_loc(buildings[building][0])}) has no unit with this id"
                f"{_closest(unit, units.get(building, {}))}; use one of its units[].id",
            )

    # residents
    for _rid, (rloc, r) in residents.items():
        check_home(rloc, r.get("building"), r.get("unit"))
        worker = r.get("eldercare_worker")
        if ref((*rloc, "eldercare_worker"), worker, staff, "staff member", add_staff):
            role = role_of(worker)
            if isinstance(role, str) and role != "eldercare_worker":
                err(
                    (*rloc, "eldercare_worker"),
                    f"the staff member named here ({format_loc(staff[str(worker)][0])}) has "
                    f"{_vocab('role', role, STAFF_ROLES)}; assign a staff member with role eldercare_worker",
                )
        consent = _m(r.get("consent"))
        ref((*rloc, "consent", "recorded_by"), consent.get("recorded_by"), staff, "staff member", add_staff)

    # staff and teams
    for _sid, (sloc, s) in staff.items():
        for j, g in enumerate(_l(s.get("grids"))):
            ref((*sloc, "grids", j), g, grids, "grid", "use a site.grids[].id")
        for j, c in enumerate(_l(s.get("compounds"))):
            ref((*sloc, "compounds", j), c, compounds, "compound", "use a site.compounds[].id")
    for _tid, (tloc, t) in teams.items():
        for j, member in enumerate(_l(t.get("members"))):
            ref((*tloc, "members", j), member, staff, "staff member", add_staff)
        if t.get("compound") is not None:
            ref((*tloc, "compound"), t.get("compound"), compounds, "compound", "use a site.compounds[].id")

    # devices
    configured_types = _m(data.get("device_types"))
    type_names = sorted(set(BUILTIN_DEVICE_TYPES) | {k for k in configured_types if isinstance(k, str)})
    seen_addresses: dict[tuple[str, str], Loc] = {}
    for dloc, d in device_items:
        if not isinstance(d, Mapping):
            continue
        dtype = d.get("type")
        category: Any = None
        if isinstance(dtype, str) and re.match(TYPE_KEY_PATTERN, dtype):
            if dtype not in type_names:
                err(
                    (*dloc, "type"),
                    f"unknown device type{_suggest_type(dtype, type_names)}; use a built-in type "
                    "or define it under device_types",
                )
            else:
                category = _m(configured_types.get(dtype)).get("category")
                if category is None:
                    builtin = BUILTIN_DEVICE_TYPES.get(dtype)
                    category = builtin.category if builtin is not None else "device_health"
        category = _m(d.get("overrides")).get("category", category)

        location = _m(d.get("location"))
        building = location.get("building")
        if building is not None:
            check_home((*dloc, "location"), building, location.get("unit"))
        space = location.get("parking_space")
        if space is not None:
            ref(
                (*dloc, "location", "parking_space"),
                space,
                spaces,
                "parking space",
                "use a parking_areas[].spaces[].id",
            )
        elif dtype == "parking_sensor":
            err((*dloc, "location"), "a parking_sensor needs location.parking_space: the id of the space it watches")

        resident = d.get("resident")
        if resident is None:
            if category == "eldercare" and location.get("room") is not None:
                err(
                    (*dloc, "resident"),
                    "this elder-care device is installed in a home (location.room is set) but names no "
                    "resident; set resident: <residents[].id>, or for a common area remove room and set area",
                )
        elif (
            isinstance(resident, str)
            and ref((*dloc, "resident"), resident, residents, "resident", "use a residents[].id or add the resident")
            and resident in residents
        ):
            r = residents[resident][1]
            consent = _m(r.get("consent"))
            if not (consent.get("given") is True and consent.get("date") and consent.get("recorded_by")):
                err(
                    (*dloc, "resident"),
                    f"the resident named here ({format_loc(residents[resident][0])}) has no recorded consent; "
                    "record it first (consent.given: "
                    "true with date and recorded_by) or do not link the device to the resident",
                )
            if isinstance(building, str) and isinstance(r.get("building"), str) and r["building"] != building:
                err(
                    (*dloc, "location", "building"),
                    "the device is in another building than its resident "
                    f"({format_loc(residents[resident][0])}.building); fix the location or the resident",
                )

        driver, address = d.get("driver"), d.get("address")
        if isinstance(driver, str) and isinstance(address, str):
            key = (driver, address.strip().lower())
            if key in seen_addresses:
                err(
                    (*dloc, "address"),
                    f"another device ({format_loc(seen_addresses[key])}) already has this "
                    f"{driver + ' ' if driver in known_drivers() else ''}address; "
                    "each physical device is listed once: remove the duplicate or fix the address",
                )
            else:
                seen_addresses[key] = dloc

    # rules: intrusion zones name configured devices
    for i, zone in enumerate(_l(_m(data.get("rules")).get("intrusion_zones"))):
        for j, dev_id in enumerate(_l(_m(zone).get("devices"))):
            ref(("rules", "intrusion_zones", i, "devices", j), dev_id, device_ids, "device", "use a devices[].id")

    # resident loop: unit contacts live in configured units; common areas name places and contacts
    ev = _m(_m(data.get("resident_loop")).get("evaluation"))
    contacts: set[str] = set()
    for i, uc in enumerate(_l(ev.get("unit_contacts"))):
        check_home(("resident_loop", "evaluation", "unit_contacts", i), _m(uc).get("building"), _m(uc).get("unit"))
        contacts.add(f"{_m(uc).get('building')}/{_m(uc).get('unit')}")
    for i, area in enumerate(_l(ev.get("common_areas"))):
        aloc2: Loc = ("resident_loop", "evaluation", "common_areas", i)
        a2 = _m(area)
        if a2.get("building") is not None:
            ref((*aloc2, "building"), a2.get("building"), buildings, "building", "use a building id")
        if a2.get("compound") is not None:
            ref((*aloc2, "compound"), a2.get("compound"), compounds, "compound", "use a site.compounds[].id")
        for j, u in enumerate(_l(a2.get("units"))):
            if isinstance(u, str) and u not in contacts:
                err((*aloc2, "units", j), "this unit has no resident_loop.evaluation.unit_contacts entry")
    return problems
