"""What a rule family may use of the engine that runs it.

The families (immediate, duration, threshold, correlation, schedule, inactivity, offline) are
functions taking the engine as their first argument. They program against :class:`RuleHost`,
not against :class:`gateway.rules.engine.RuleEngine`, so the engine can import the families
without the families importing it back, and a family cannot quietly start depending on
engine internals: anything new it needs is added here first, where the engine's type check
(``gateway.rules.engine``) proves the engine still provides it.
"""

from __future__ import annotations

from typing import Any, Protocol
from zoneinfo import ZoneInfo

from edge_config.rules_settings import RulesSettings
from gateway.core import incidents as inc
from gateway.core.clock import StepDetector
from gateway.core.contract import Resolved
from gateway.rules.base import Ctx, Dev, RuleStore


class RuleHost(Protocol):
    """The engine as the rule families see it.

    Families read the configuration and the device index, keep their durable state in ``rs``
    (rule state and timers), raise and clear incidents through the methods below, and touch the
    incident store directly only for the few changes that are not a raise or a clear (severity
    changes, adding devices to a group, an immediate auto-clear).
    """

    # --- configuration (read only) ---------------------------------------------------------------
    cfg: Any  # edge_config.SiteConfig: residents and their active hours
    settings: RulesSettings
    tz: ZoneInfo  # the site's time zone, for active hours and armed windows

    # --- device index, built from the config (read only) -------------------------------------------
    devices: dict[str, Dev]
    resident_devices: dict[str, list[str]]  # resident id -> device ids
    building_members: dict[str, list[str]]  # building id -> device ids with a liveness check
    compound_members: dict[str, list[str]]  # compound id -> device ids with a liveness check
    inactivity_hours: dict[str, float]  # resident id -> hours without activity that raise

    # --- durable state and incidents ---------------------------------------------------------------
    rs: RuleStore
    incidents: inc.IncidentStore

    # --- clock (offline rules: start-up grace, distrust after a clock step) -----------------------
    detector: StepDetector
    boot_mono: int
    suspect_until: int

    # --- LoRaWAN gateways heard (offline rules keep these up to date) -----------------------------
    lgw_seen: dict[str, int]  # gateway id -> last uplink seen
    lgw_written: dict[str, int]  # gateway id -> last value written to rule_state
    ldev_written: dict[str, tuple[str, ...]]  # device id -> gateways it was last heard through

    def key(self, subject: str, typ: str) -> str:
        """The open key of incident type ``typ`` for ``subject`` (a device id)."""
        ...

    def trigger(
        self, dev: Dev, typ: str, category: str, severity: str, res: Resolved | None, ts_ms: int, **detail: Any
    ) -> inc.Trigger:
        """A trigger keyed on ``dev`` (its location and resident), carrying ``res`` as the reading."""
        ...

    def raise_(self, ctx: Ctx, trig: inc.Trigger, dev: Dev | None = None) -> inc.Raised | None:
        """Raise or repeat; None when suppressed because ``dev`` is flapping."""
        ...

    def is_open(self, ctx: Ctx, key: str) -> bool: ...

    def clear(self, ctx: Ctx, key: str, ts_ms: int, reason: str, *, hold_s: int | None = None) -> None:
        """The condition behind ``key`` recovered: auto-clear after ``hold_s`` (default: the
        configured clear hold)."""
        ...

    def resident_location(self, resident_id: str) -> inc.Location: ...
