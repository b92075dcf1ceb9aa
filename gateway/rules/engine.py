"""The rule engine: a pipeline BaseStage that turns resolved readings, status changes and timers
into incidents (see docs/rules.md).

It runs inside the pipeline thread's transaction. Rule state is in the store (``timers``,
``rule_state``), so it commits or rolls back with the batch and survives restarts; reads come
from a write-through cache of both tables (``RuleStore``), and unchanged values are not rewritten. A bug in one
rule must not stall ingest: a non-SQLite exception rolls back to a savepoint and the batch is
re-evaluated reading by reading, skipping the one that fails (counted as ``rules_errors``).
SQLite errors propagate: the pipeline rolls the whole batch back and retries it, so an SOS reading
is never stored without its incident.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from drivers.base import EVENT, STATE
from gateway.core import incidents as inc
from gateway.core.clock import StepDetector, mono_ms
from gateway.core.contract import BaseStage, BatchResult, Resolved
from gateway.core.store import FLAG_RETAINED, savepoint
from gateway.rules import correlation, duration, immediate, inactivity, offline, schedule, threshold
from gateway.rules.base import Ctx, Dev, Facts, RuleStore, reading_dict
from gateway.rules.host import RuleHost

if TYPE_CHECKING:
    from edge_config import SiteConfig

log = logging.getLogger("gateway.rules")

# Value keys whose toggling counts for flapping detection.
FLAP_KEYS = ("contact", "water_leak", "tamper", "gate_fault", "vehicle_present", "smoke", "gas")


class RuleEngine(BaseStage):
    def __init__(
        self,
        cfg: SiteConfig,
        gateway_id: str | None = None,
        *,
        config_rev: int | None = None,
        mono: Callable[[], int] = mono_ms,
    ) -> None:
        self.cfg = cfg
        self.settings = cfg.rules
        self.tz = ZoneInfo(cfg.gateway.timezone)
        self.gateway_id = gateway_id or cfg.gateway.id
        self.incidents = inc.IncidentStore(self.gateway_id, config_rev)
        self._config_rev_known = config_rev is not None
        self.detector = StepDetector(self.settings.clock_step_s * 1000, mono=mono)
        self.rs = RuleStore()  # rule_state + timers: write-through cache (the only access path)
        self.devices: dict[str, Dev] = {}
        self.resident_devices: dict[str, list[str]] = {}
        self.building_members: dict[str, list[str]] = {}
        self.compound_members: dict[str, list[str]] = {}
        self._build()
        self.inactivity_hours = inactivity.resident_hours(self)
        for dev in self.devices.values():
            dev.families = self._families(dev)
        self._started = False
        self.boot_wall = 0
        self.boot_mono = 0
        self.suspect_until = 0  # after a clock step: 'silent' offline changes are re-verified
        self._flap: dict[tuple[str, str], deque[int]] = {}
        self._flap_prev: dict[tuple[str, str], Any] = {}
        self.lgw_seen: dict[str, int] = {}  # LoRaWAN gateway id -> last uplink seen (memory mirror)
        self.lgw_written: dict[str, int] = {}
        self.ldev_written: dict[str, tuple[str, ...]] = {}
        self._last_wall_saved = 0
        self._next_lgw_check = 0
        self.errors = 0
        self.suppressed = 0
        self._isolate = False
        # Keys known to hold no open incident, so ``clear``/``is_open`` need no query (most
        # readings report a recovered or normal value). Exact: an incident taking a key removes
        # it (``KeyChanges.open``); a key is only learnt while no key was released since the
        # end of the last committed transaction (``after``), so a rolled-back release cannot
        # leave a key here that is open again.
        self._not_open: set[str] = set()
        self._opened_seen = inc.KeyChanges.opened
        self._released_base = -1  # nothing is learnt before the first transaction ends
        # Keys known to hold an open incident (a flapping door asks on every toggle). Exact: a key
        # is only learnt while no key was opened since the end of the last transaction (so it was
        # open before this one began, and a rollback of this one cannot release it), and the set is
        # forgotten whenever any key is released (``KeyChanges.released``).
        self._open: set[str] = set()
        self._open_released = inc.KeyChanges.released
        self._opened_base = -1

    # --- configuration -------------------------------------------------------------------------
    def _build(self) -> None:
        cfg = self.cfg
        zones_of: dict[str, list[Any]] = {}
        for z in self.settings.intrusion_zones:
            for device_id in z.devices:
                zones_of.setdefault(device_id, []).append(z)
        for d in cfg.owned_devices():
            st = cfg.device_settings(d)
            res = cfg.resident(d.resident) if d.resident else None
            building = d.location.building or (res.building if res else None)
            unit = d.location.unit or (res.unit if res and not d.location.building else None)
            space_kind = None
            compound = None
            if d.location.parking_space:
                found = cfg.parking_space(d.location.parking_space)
                if found is not None:
                    area, space = found
                    space_kind = space.kind
                    compound = area.compound
            if building:
                c = cfg.compound_of_building(building)
                compound = c.id if c is not None else compound
            g = cfg.grid_of_building(building) if building else None
            loc = inc.Location(
                grid=g.id if g else None,
                compound=compound,
                building=building,
                unit=unit,
                space=d.location.parking_space,
            )
            dev = Dev(
                id=d.id,
                type=d.type,
                driver=d.driver,
                category=st.category,
                life_safety=bool(st.life_safety),
                settings=st,
                loc=loc,
                resident_id=d.resident,
                space_kind=space_kind,
                expected_interval_s=float(st.expected_interval_s) if st.expected_interval_s else None,
                zones=zones_of.get(d.id, []),
            )
            self.devices[d.id] = dev
            if d.resident:
                self.resident_devices.setdefault(d.resident, []).append(d.id)
            if dev.expected_interval_s:
                if building:
                    self.building_members.setdefault(building, []).append(d.id)
                if compound:
                    self.compound_members.setdefault(compound, []).append(d.id)

    def _families(self, dev: Dev) -> tuple[Any, ...]:
        """The rule families whose ``on_reading`` can do anything for this device, in the fixed
        evaluation order; each condition mirrors the family's own early returns (docs/rules.md)."""
        s = dev.settings
        out: list[Any] = [immediate]
        if s.door_open_max_s or dev.space_kind in duration.PARKING:
            out.append(duration)
        if s.heart_rate_low or s.heart_rate_high or s.spo2_low is not None or s.battery_low_pct is not None:
            out.append(threshold)
        if dev.resident_id is not None or s.access_denied_max:
            out.append(correlation)
        if dev.zones:
            out.append(schedule)
        if dev.resident_id is not None and dev.resident_id in self.inactivity_hours:
            out.append(inactivity)
        if dev.driver == "chirpstack":
            out.append(offline)
        return tuple(out)

    def resident_location(self, resident_id: str) -> inc.Location:
        r = self.cfg.resident(resident_id)
        if r is None:
            return inc.Location()
        c = self.cfg.compound_of_building(r.building)
        g = self.cfg.grid_of_building(r.building)
        return inc.Location(grid=g.id if g else None, compound=c.id if c else None, building=r.building, unit=r.unit)

    # --- helpers used by the rule families ------------------------------------------------------
    @staticmethod
    def key(subject: str, typ: str) -> str:
        return f"{subject}|{typ}"

    # Any: detail values go into the incident's JSON detail
    def trigger(
        self, dev: Dev, typ: str, category: str, severity: str, res: Resolved | None, ts_ms: int, **detail: Any
    ) -> inc.Trigger:
        reading = reading_dict(dev.id, res.ts_ms, res.reading.kind, res.reading.values) if res is not None else None
        return inc.Trigger(
            key=self.key(dev.id, typ),
            category=category,
            type=typ,
            severity=severity,
            ts_ms=ts_ms,
            devices=[dev.id],
            location=dev.loc,
            resident_id=dev.resident_id,
            reading=reading,
            detail=detail,
        )

    def raise_(self, ctx: Ctx, trig: inc.Trigger, dev: Dev | None = None) -> inc.Raised | None:
        life = trig.type in inc.LIFE_SAFETY_TYPES
        if (
            dev is not None
            and not life
            and self.is_flapping(dev.id, ctx.now)
            and inc.get_open(ctx.conn, trig.key) is None
        ):
            self.suppressed += 1
            return None
        self.rs.timer_cancel("clear|" + trig.key)  # the condition is back: no auto-clear
        return self.incidents.raise_or_repeat(ctx.conn, ctx.result, trig, ctx.now)

    # --- open keys -----------------------------------------------------------------------------
    def _known_not_open(self, key: str) -> bool:
        kc = inc.KeyChanges
        if kc.opened != self._opened_seen:
            seen, recent = self._opened_seen, kc.recent
            self._opened_seen = kc.opened
            if recent and recent[0][0] <= seen + 1:  # forget just the keys taken since
                for n, k in reversed(recent):
                    if n <= seen:
                        break
                    self._not_open.discard(k)
            else:
                self._not_open.clear()
        return key in self._not_open

    def _saw_not_open(self, key: str) -> None:
        """A query just found ``key`` not open: remember it, if that is safe (see __init__)."""
        if inc.KeyChanges.released == self._released_base and inc.KeyChanges.opened == self._opened_seen:
            self._not_open.add(key)

    def is_open(self, ctx: Ctx, key: str) -> bool:
        if self._known_not_open(key):
            return False
        kc = inc.KeyChanges
        if kc.released != self._open_released:
            self._open.clear()
            self._open_released = kc.released
        if key in self._open:
            return True
        if ctx.conn.execute("SELECT 1 FROM incidents WHERE open_key=?", (key,)).fetchone() is not None:
            if kc.opened == self._opened_base:
                self._open.add(key)
            return True
        self._saw_not_open(key)
        return False

    def clear(self, ctx: Ctx, key: str, ts_ms: int, reason: str, *, hold_s: int | None = None) -> None:
        """The condition behind ``key`` recovered: auto-clear after the hold (flapping guard)."""
        if self._known_not_open(key):
            return
        row = ctx.conn.execute("SELECT auto_cleared_ms FROM incidents WHERE open_key=?", (key,)).fetchone()
        if row is None:
            self._saw_not_open(key)
            return
        if row[0] is not None:
            return
        hold = self.settings.clear_hold_s if hold_s is None else hold_s
        if hold <= 0:
            self.incidents.auto_clear(ctx.conn, ctx.result, key, ts_ms, reason, ctx.now)
        else:
            self.rs.timer_arm(
                "clear|" + key, "clear", max(ts_ms, ctx.now) + hold * 1000, ctx.now, {"reason": reason, "ts_ms": ts_ms}
            )

    # --- flapping (memory only: losing it on restart only delays detection) ---------------------
    # Any: a reading value (number, bool or str, as decoded)
    def _note_change(self, ctx: Ctx, dev: Dev, k: str, value: Any, ts: int) -> None:
        pk = (dev.id, k)
        flap_prev = self._flap_prev
        prev = flap_prev.get(pk)
        flap_prev[pk] = value
        if prev is None or prev == value:
            return
        # The type's own threshold (doors: edge_config/device_types.py), else the site's; a reload
        # that changed it resizes the window it carried over.
        limit = dev.settings.flapping_max_changes or self.settings.flapping_max_changes
        q = self._flap.get(pk)
        if q is None or q.maxlen != limit:
            q = self._flap[pk] = deque(q or (), maxlen=limit)
        q.append(ctx.now)
        if len(q) == q.maxlen and ctx.now - q[0] <= self.settings.flapping_window_s * 1000:
            # While it flaps, every toggle lands here (a drained backlog compresses an hour of door
            # use into seconds): the trigger is only built when a notice is raised.
            key = self.key(dev.id, "sensor_flapping")
            if not self.is_open(ctx, key):  # one notice, not an event per toggle
                trig = self.trigger(dev, "sensor_flapping", "device_health", "warning", None, ts, value=k)
                self.incidents.raise_or_repeat(ctx.conn, ctx.result, trig, ctx.now)
            # Settled = no change for a window: clear then.
            self.rs.timer_arm(
                "clear|" + key,
                "clear",
                ctx.now + self.settings.flapping_window_s * 1000,
                ctx.now,
                {"reason": "settled", "ts_ms": ctx.now},
                replace=True,
            )

    def is_flapping(self, dev_id: str, now: int) -> bool:
        win = self.settings.flapping_window_s * 1000
        for k in FLAP_KEYS:
            q = self._flap.get((dev_id, k))
            if q is not None and len(q) == q.maxlen and now - q[0] <= win:
                return True
        return False

    # --- BaseStage -----------------------------------------------------------------------------
    def process(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
        if not self.settings.enabled:
            return
        self.rs.begin(conn, result)
        ctx = Ctx(conn, result, now_ms)
        self._guarded(ctx, self._process_batch, self._process_one)

    def after(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
        # The transaction is about to commit: its releases are settled either way (a failed
        # COMMIT leaves the keys open, and the next query sees that).
        self._released_base = inc.KeyChanges.released
        self._opened_base = inc.KeyChanges.opened

    def tick(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
        if not self.settings.enabled:
            return
        self.rs.begin(conn, result)
        ctx = Ctx(conn, result, now_ms)
        self._guarded(ctx, self._tick, None)

    # State worth keeping across a reload (clock detector, boot time, flapping windows, LoRaWAN
    # gateway mirrors); everything else is rebuilt from the new config.
    CARRIED_ACROSS_RELOAD = (
        "detector",
        "_started",
        "boot_wall",
        "boot_mono",
        "suspect_until",
        "_flap",
        "_flap_prev",
        "lgw_seen",
        "lgw_written",
        "ldev_written",
        "_last_wall_saved",
        "_next_lgw_check",
        "errors",
        "suppressed",
    )

    def reconfigured(self, cfg: SiteConfig, rev: int) -> RuleEngine:
        new = RuleEngine(cfg, config_rev=rev)
        for name in self.CARRIED_ACROSS_RELOAD:
            setattr(new, name, getattr(self, name))
        return new

    def _guarded(self, ctx: Ctx, whole: Callable[[Ctx], None], one: Callable[[Ctx, Any], None] | None) -> None:
        conn = ctx.conn
        n_events = len(ctx.result.incident_events)
        mark = self.rs.mark()
        try:
            with savepoint(conn, "rules"):
                whole(ctx)
            return
        except sqlite3.Error:
            raise  # the pipeline rolls the batch back and retries it
        except Exception:
            log.exception("rule evaluation failed; re-running item by item")
            self.rs.rollback_to(mark)
            del ctx.result.incident_events[n_events:]
            self.errors += 1
        if one is None:
            return
        items: list[Any] = [("r", r) for r in ctx.result.resolved] + [("s", s) for s in ctx.result.status_changes]
        self._isolate = True
        try:
            self._run_items(ctx, one, items)
        finally:
            self._isolate = False

    def _run_items(self, ctx: Ctx, one: Callable[[Ctx, Any], None], items: list[Any]) -> None:
        conn = ctx.conn
        for item in items:
            n_events = len(ctx.result.incident_events)
            mark = self.rs.mark()
            try:
                with savepoint(conn, "rules_one"):
                    one(ctx, item)
            except sqlite3.Error:
                raise
            except Exception:
                log.exception("rule evaluation failed for one item; skipped")
                self.rs.rollback_to(mark)
                del ctx.result.incident_events[n_events:]
                self.errors += 1

    def _process_batch(self, ctx: Ctx) -> None:
        self._begin(ctx)
        for r in ctx.result.resolved:
            self._reading(ctx, r)
        for ch in ctx.result.status_changes:
            offline.on_status(self, ctx, ch)

    def _process_one(self, ctx: Ctx, item: tuple[str, Any]) -> None:
        self._begin(ctx)
        if item[0] == "r":
            self._reading(ctx, item[1])
        else:
            offline.on_status(self, ctx, item[1])

    def _tick(self, ctx: Ctx) -> None:
        self._begin(ctx)
        for ch in ctx.result.status_changes:
            offline.on_status(self, ctx, ch)
        self._fire_timers(ctx)
        if ctx.now >= self._next_lgw_check:
            self._next_lgw_check = ctx.now + 10_000
            offline.check_lorawan(self, ctx)
        if abs(ctx.now - self._last_wall_saved) >= 60_000:
            self._last_wall_saved = ctx.now
            self.rs.set("clock|last_wall", ctx.now, ctx.now)

    # --- start-up and the clock ------------------------------------------------------------------
    def _begin(self, ctx: Ctx) -> None:
        if not self._started:
            self._start(ctx)
        step = self.detector.check(ctx.now)
        if step:
            self._on_step(ctx, step, "running")

    def _start(self, ctx: Ctx) -> None:
        conn = ctx.conn
        if not self._config_rev_known:
            row = conn.execute("SELECT id FROM config_revisions WHERE revision=?", (self.cfg.revision,)).fetchone()
            self.incidents.config_rev = int(row[0]) if row else None
            self._config_rev_known = True
        self.boot_wall = ctx.now
        self.boot_mono = self.detector.mono()
        for key in sorted(self.rs.state):  # key order, as the former range queries
            if key.startswith("lgw|"):
                self.lgw_seen[key[4:]] = int(self.rs.get(key))
                self.lgw_written[key[4:]] = int(self.rs.get(key))
            elif key.startswith("ldev|"):
                self.ldev_written[key[5:]] = tuple(self.rs.get(key))
        self._started = True
        last = self.rs.get("clock|last_wall")
        if isinstance(last, int) and ctx.now < last - self.settings.clock_step_s * 1000:
            # The wall clock is behind what it was before the restart (no RTC, no NTP yet):
            # keep the stored timers' remaining time rather than leave them far in the future.
            self._on_step(ctx, ctx.now - last, "boot")
        inactivity.arm_missing(self, ctx)

    def _on_step(self, ctx: Ctx, step: int, when: str) -> None:
        log.warning("wall clock stepped by %+d ms (%s); shifting rule timers", step, when)
        conn = ctx.conn
        self.rs.timers_shift(step)
        for gw in list(self.lgw_seen):
            self.lgw_seen[gw] += step
            self.rs.set(f"lgw|{gw}", self.lgw_seen[gw], ctx.now)
            self.lgw_written[gw] = self.lgw_seen[gw]
        self.boot_wall += step
        # 'silent' offline marks made by a forward jump are re-verified (offline.on_status).
        self.suspect_until = ctx.now + max(self.settings.offline_hold_s, 60) * 1000
        trig = inc.Trigger(
            key="gateway|clock_step",
            category="device_health",
            type="clock_step",
            severity="warning",
            ts_ms=ctx.now,
            devices=[f"gateway:{self.gateway_id}"],
            detail={"step_ms": step, "when": when},
        )
        self.incidents.raise_or_repeat(conn, ctx.result, trig, ctx.now)

    # --- timers ----------------------------------------------------------------------------------
    def _fire_timers(self, ctx: Ctx) -> None:
        conn = ctx.conn
        in_grace = self.detector.mono() - self.boot_mono < self.settings.startup_grace_s * 1000
        if in_grace:
            # Timers that fell due while we were down wait: queued messages come first.
            sql = "SELECT key, rule, due_ms, data FROM timers WHERE due_ms <= ? AND due_ms >= ? ORDER BY due_ms LIMIT ?"
            args: tuple[int, ...] = (ctx.now, self.boot_wall, self.settings.max_timers_per_tick)
        else:
            sql = "SELECT key, rule, due_ms, data FROM timers WHERE due_ms <= ? ORDER BY due_ms LIMIT ?"
            args = (ctx.now, self.settings.max_timers_per_tick)
        for key, rule, due, data in conn.execute(sql, args).fetchall():
            if not self.rs.timer_cancel(key):  # not cached (cannot happen): delete it anyway
                conn.execute("DELETE FROM timers WHERE key=?", (key,))
            fire = _FIRE.get(rule)
            if fire is None:
                log.warning("timer %s has unknown rule %s; dropped", key, rule)
                continue
            fire(self, ctx, key.split("|", 1)[1], int(due), json.loads(data))

    # --- readings --------------------------------------------------------------------------------
    def _reading(self, ctx: Ctx, res: Resolved) -> None:
        dev = self.devices.get(res.device.id)
        if dev is None:
            return
        r = res.reading
        if r.kind not in (STATE, EVENT) or (r.kind == EVENT and res.flags & FLAG_RETAINED):
            return
        facts = self._facts(ctx, dev, res)
        for family in dev.families:
            if not self._isolate:
                family.on_reading(self, ctx, dev, res, facts)
                continue
            # Re-run after a failure: each family on its own, so one broken rule loses only itself.
            n_events = len(ctx.result.incident_events)
            mark = self.rs.mark()
            try:
                with savepoint(ctx.conn, "rules_family"):
                    family.on_reading(self, ctx, dev, res, facts)
            except sqlite3.Error:
                raise
            except Exception:
                log.exception("rule family %s failed on a reading of %s; skipped", family.__name__, dev.id)
                self.rs.rollback_to(mark)
                del ctx.result.incident_events[n_events:]
                self.errors += 1

    def _facts(self, ctx: Ctx, dev: Dev, res: Resolved) -> Facts:
        f = Facts()
        vals = res.reading.values
        if res.reading.kind == STATE:
            for k in FLAP_KEYS:
                if k in vals:
                    self._note_change(ctx, dev, k, vals[k], res.ts_ms)
            contact = vals.get("contact")
            if isinstance(contact, bool):
                skey = f"contact|{dev.id}"
                prev = self.rs.get(skey)
                if prev is not contact:
                    self.rs.set(skey, contact, ctx.now)
                    f.door_opened = contact is False
                    f.door_closed = contact is True and prev is False
        else:
            f.motion = "action" in vals or vals.get("access_granted") is True
        f.motion = f.motion or vals.get("occupancy") is True or f.door_opened or f.door_closed
        f.activity = f.motion or vals.get("presence") is True
        return f


def _fire_clear(eng: RuleHost, ctx: Ctx, key: str, due: int, data: dict[str, Any]) -> None:
    eng.incidents.auto_clear(ctx.conn, ctx.result, key, int(data.get("ts_ms", due)), data.get("reason", ""), ctx.now)


_FIRE: dict[str, Callable[[RuleHost, Ctx, str, int, dict[str, Any]], None]] = {
    "clear": _fire_clear,
    "door": duration.fire_door,
    "park": duration.fire_park,
    "inact": inactivity.fire,
    "offline": offline.fire,
    "fallchk": correlation.fire_fall,
}

# The rule families are written against RuleHost; this line makes mypy prove the engine is one.
_ENGINE_IS_A_HOST: type[RuleHost] = RuleEngine
