"""Request and response models (they are the OpenAPI schema; see docs/api.md for examples)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.config import JsonDict

from edge_config.schema import ID_PATTERN
from gateway.api.ticketing import ACTIONS

Category = Literal["parking", "security", "eldercare", "device_health"]
Severity = Literal["critical", "major", "minor", "warning"]
Action = Literal[ACTIONS]  # type: ignore[valid-type]


class EmergencyContact(BaseModel):
    name: str
    relation: str | None = None
    phone: str


class HomeDevice(BaseModel):
    id: str
    name: str
    type: str
    online: bool | None = None
    last_seen_ms: int | None = None
    values: dict[str, Any] = Field(default_factory=dict)
    last_activity_ms: int | None = Field(default=None, description="The resident's last activity seen (any device).")


class Personal(BaseModel):
    resident_id: str | None = None
    name: str | None = None
    building: str | None = None
    unit: str | None = None
    room: str | None = None
    floor: int | None = None
    phone: str | None = None
    emergency_contacts: list[EmergencyContact] = Field(default_factory=list)
    care_notes: str | None = None
    flags: list[str] = Field(default_factory=list)
    home_devices: list[HomeDevice] | None = Field(
        default=None, description="Incident detail only: the last readings of the resident's devices."
    )


class ReleasedLocation(BaseModel):
    building: str | None = None
    unit: str | None = None
    floor: int | None = None
    room: str | None = None


class Incident(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    category: str
    type: str
    severity: str
    state: str
    life_safety: bool
    grid: str | None = None
    compound: str | None = None
    building: str | None = None
    unit: str | None = None
    space: str | None = None
    first_ms: int
    last_ms: int
    count: int
    previous_id: str | None = None
    auto_cleared_ms: int | None = None
    cleared_reason: str | None = None
    created_ms: int
    updated_ms: int
    escalated: bool = False
    devices: list[str] = Field(default_factory=list)
    readings: list[dict[str, Any]] = Field(default_factory=list)
    detail: dict[str, Any] = Field(default_factory=dict)
    personal: Personal | None = Field(
        default=None, description="Resident data: only for eldercare_worker and installer (each view is logged)."
    )
    redacted: bool = Field(default=False, description="True when personal fields were withheld from this viewer.")
    location_released: ReleasedLocation | None = Field(
        default=None, description="For escalation recipients of an escalated elder-care incident (logged)."
    )


class IncidentPage(BaseModel):
    items: list[Incident]
    next_cursor: int | None = Field(description="Pass as ?cursor= for the next (older) page; null = last page.")


class Event(BaseModel):
    seq: int = Field(description="Feed cursor / SSE event id: monotonic across restarts.")
    incident_id: str
    ts_ms: int
    kind: str
    actor: str | None = None
    role: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class ActionOption(BaseModel):
    value: str
    label: str | None = Field(default=None, description="A person's name (departments are labelled by the client).")


class ActionField(BaseModel):
    name: str = Field(description="'note' goes at the top level of the action request; every other field in data.")
    kind: Literal["text", "rating", "yesno", "person", "department"]
    required: bool
    max_len: int | None = None
    options: list[ActionOption] | None = Field(
        default=None, description="The values to choose from (person, department)."
    )


class ActionOffer(BaseModel):
    action: str
    fields: list[ActionField] = Field(default_factory=list)


class IncidentDetail(Incident):
    timeline: list[Event] = Field(default_factory=list)
    allowed_actions: list[ActionOffer] = Field(
        default_factory=list,
        description="What this caller may do now, with each action's fields: the ticket loop's own table "
        "(gateway/tickets/lifecycle.py ACTIONS, ACTION_FIELDS); the console shows exactly these.",
    )


class ActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action = Field(description="Ticket action (the ticket loop decides which are allowed now).")
    note: str | None = Field(default=None, max_length=2000)
    request_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Client-chosen id: retrying with the same id applies the action once.",
    )
    data: dict[str, Any] | None = Field(
        default=None, description="Action-specific: e.g. {'to': 'team id'} for reassign, {'score': 1-5} for evaluate."
    )


class ActionResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    incident: IncidentDetail
    result: dict[str, Any] = Field(default_factory=dict)


# A manual incident's body states in its schema what the gateway enforces (issue 23): the site
# file's id form, the ticket loop's limits, "at least one place" and "a unit only with its
# building". The site's own ids (which buildings, units, grids ... exist) are added to the served
# document from the running config by gateway/api/site_schema.py, which also says which refusals
# no schema can express.
SiteId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
PLACES = ("building", "space", "grid", "compound")  # a manual incident needs at least one
_ONE_PLACE: JsonDict = {"anyOf": [{"required": [k], "properties": {k: {"type": "string"}}} for k in PLACES]}
_UNIT_NEEDS_BUILDING: JsonDict = {
    "anyOf": [
        {"not": {"required": ["unit"]}},
        {"properties": {"unit": {"type": "null"}}},
        {"required": ["building"], "properties": {"building": {"type": "string"}}},
    ]
}


class ManualLocation(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"allOf": [_ONE_PLACE, _UNIT_NEEDS_BUILDING]})

    grid: SiteId | None = Field(default=None, description="A site.grids[].id.")
    compound: SiteId | None = Field(default=None, description="A site.compounds[].id.")
    building: SiteId | None = Field(default=None, description="A building id; its grid and compound follow from it.")
    unit: SiteId | None = Field(default=None, description="A unit of that building (needs building).")
    floor: int | None = Field(default=None, ge=-10, le=200)
    space: SiteId | None = Field(default=None, description="A parking space id.")
    area: str | None = Field(default=None, max_length=100, description="Free text, e.g. '东门'.")

    @model_validator(mode="after")
    def _placed(self) -> ManualLocation:
        if not any(getattr(self, k) for k in PLACES):
            raise ValueError("location needs at least one of building, space, grid, compound")
        if self.unit is not None and self.building is None:
            raise ValueError("a unit needs its building")
        return self


def _not_blank(value: str) -> str:
    if not value.strip():  # the ticket loop's own test (str.strip), whatever the regex engine's \S says
        raise ValueError("description must not be blank")
    return value


class ManualIncident(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: Category
    type: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$", description="e.g. 'blocked_fire_lane', 'resident_report'")
    severity: Severity
    location: ManualLocation
    description: Annotated[str, AfterValidator(_not_blank)] = Field(
        min_length=1,
        max_length=1000,
        # "a character that is not blank" as str.strip sees it: ECMA's \s (the schema's dialect)
        # lacks U+0085 and U+001C-U+001F, which Python strips; a generated "\x85" was refused.
        pattern=r"[^\s\x1c-\x1f\x85]",
        description="What happened (1-1000 characters, not blank).",
    )
    request_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Client-chosen id: retrying with the same id creates the incident once.",
    )


class FeedItem(Event):
    incident: dict[str, Any] = Field(
        default_factory=dict, description="Summary of the incident now: category, type, severity, state, grid ..."
    )


class FeedPage(BaseModel):
    items: list[FeedItem]
    next_cursor: int = Field(description="Store it; ask again with ?after=<next_cursor>.")
    has_more: bool


class Device(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    name: str
    type: str
    driver: str
    category: str
    building: str | None = None
    unit: str | None = None
    floor: int | None = None
    area: str | None = None
    parking_space: str | None = None
    resident_id: str | None = None
    online: bool | None = None
    online_reason: str | None = None
    online_changed_ms: int | None = None
    last_seen_ms: int | None = None
    battery: float | None = None
    values: dict[str, Any] | None = None


class DeadLetter(BaseModel):
    id: int
    rx_ms: int
    topic: str
    driver: str | None = None
    reason: str
    detail: str
    payload_len: int
    payload_excerpt: str


class Unconfigured(BaseModel):
    driver: str
    address: str
    first_seen_ms: int
    last_seen_ms: int
    count: int
    last_topic: str
    sample: dict[str, Any]


class Me(BaseModel):
    token_id: str
    name: str
    role: str
    grids: list[str]
    compounds: list[str]
    personal_data: bool
    gateway: str
    gateway_name: str
    language: str
