"""The contract every stage of the chain shares: what a batch carries and what a stage must do.

A message travels one way (docs/architecture.md)::

    broker ─► ingest.mqtt ─► ingest.pipeline ─► driver.decode ─► ingest.routing (Resolved)
          ─► stages, in the order gateway/app.py declares, inside ONE transaction per batch:
             rules ─► tickets ─► channels ─► retention ─► sync outbox
          ─► COMMIT ─► PUBACK ─► listeners (API stream, senders' wake-ups)

The pipeline thread hands every stage the same :class:`BatchResult`: stages earlier in the chain
append to it (incident events, notices), stages later read what was appended. Nothing here imports
a stage: the contract sits below all of them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

from drivers.base import Reading

if TYPE_CHECKING:
    from edge_config import SiteConfig


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A configured device as the chain sees it (built by routing from the site config)."""

    id: str
    driver: str
    address: str
    type: str
    category: str
    life_safety: bool
    expected_interval_s: float
    resident_id: str | None
    building: str | None
    safety_filters: tuple[str, ...] = ()


@dataclass(slots=True)
class Resolved:
    """A reading tied to its configured device, as the stages see it."""

    device: DeviceInfo
    reading: Reading
    ts_ms: int
    rx_ms: int
    flags: int
    session: int


@dataclass(slots=True)
class StatusChange:
    """A device went online or offline (availability topic, bridge state, or silence)."""

    device_id: str
    online: bool
    reason: str
    ts_ms: int


# Every kind of incident event the gateway writes. A new kind is added here first: mypy then
# checks every writer, and the console/channel catalogs are tested against this list.
EventKind = Literal[
    # the incident log (gateway/core/incidents.py)
    "created",
    "repeated",
    "devices_added",
    "severity_changed",
    "auto_cleared",
    "state_changed",
    # the ticket loop (gateway/tickets)
    "dispatched",
    "dispatch_failed",
    "escalated",
    "escalation_held",
    "whistle",
    "renotified",
    "sla_missed",
    "not_rated",
    "reported",
    "note",  # a person added a note to the timeline (the console's "add a note")
    # the residents' side (gateway/residents): a handled incident's evaluation asked of a resident
    "evaluation_requested",
    # delivery attempts (gateway/tickets/notify.py, gateway/channels)
    "notify_attempt",
    "notify_abandoned",  # a staff message given up for good (gateway/channels/outcomes.py)
]
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    """One appended row of ``incident_events``: the incident's timeline and the central feed.

    ``seq`` is the feed cursor (monotonic, never reused). ``incident`` is a snapshot of the
    incident after the change, handed to later stages and listeners so they need not query; it is
    not stored with the event (``None`` when the writer had none at hand, and on rows read back).
    """

    seq: int
    incident_id: str
    ts_ms: int
    kind: EventKind
    actor: str | None
    role: str | None
    data: Mapping[str, Any]  # free-form JSON per kind, stored as written
    config_rev: int | None = None
    incident: Mapping[str, Any] | None = None

    def as_feed(self) -> dict[str, Any]:
        """The event as the feed and the stream publish it (without the snapshot)."""
        return {
            "seq": self.seq,
            "incident_id": self.incident_id,
            "ts_ms": self.ts_ms,
            "kind": self.kind,
            "actor": self.actor,
            "role": self.role,
            "data": dict(self.data),
            "config_rev": self.config_rev,
        }


@dataclass
class BatchResult:
    """What one committed transaction changed; handed to every stage and then to the listeners."""

    resolved: list[Resolved] = field(default_factory=list)
    status_changes: list[StatusChange] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)  # gateway events, device-status notes
    # Incident changes appended in this transaction (creation, repeats, transitions), in order.
    # Stages later in the chain (channels, the sync outbox) and listeners (API stream) read them.
    incident_events: list[IncidentEvent] = field(default_factory=list)
    committed: int = 0


class Stage(Protocol):
    """A link of the chain; runs on the pipeline thread inside the pipeline's transaction.

    Lifecycle, in the order the pipeline calls it:

    - ``process(conn, result, now_ms)``: every ingest batch; ``result.resolved`` holds its readings.
    - ``tick(conn, result, now_ms)``: about once a second, in its own transaction (timers, SLAs).
    - ``after(conn, result, now_ms)``: last in EVERY transaction the pipeline commits, including
      :meth:`Pipeline.call`'s, so a stage can act on what earlier stages appended (incident
      events for the ticket loop, the channels and the outbox).
    - ``reconfigured(cfg, rev)``: on a config reload, between two batches; returns the stage to
      use from now on (a new one, or itself), carrying across whatever state it owns.

    Raising from ``process``/``tick``/``after`` aborts the whole transaction: nothing is
    acknowledged and the batch is retried, so a stage that must not stall ingest guards itself.
    """

    def process(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None: ...

    def tick(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None: ...

    def after(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None: ...

    def reconfigured(self, cfg: SiteConfig, rev: int) -> Stage: ...


class BaseStage:
    """Do-nothing defaults for :class:`Stage`; a stage overrides what it needs.

    The default ``reconfigured`` keeps the stage as it is: right for stages that read nothing
    from the config, or whose config changes need a restart (the sync target).
    """

    def process(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
        """Called for every ingest batch, inside its transaction."""

    def tick(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
        """Called about once a second, inside a transaction."""

    def after(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
        """Called last in every transaction the pipeline commits."""

    def reconfigured(self, cfg: SiteConfig, rev: int) -> Stage:
        return self
