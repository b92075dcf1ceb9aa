"""The queue's rules: which rows become one message, which message goes next (docs/channels.md "Queueing").

Every pending row falls into one of three classes, per channel target:

* **alarm** — the first message to this target about a critical or life-safety incident (for
  this event). Key: target + incident type + event, so many alarms of one kind become one message
  naming each place. The first of a kind goes at once; more of that kind wait at most
  ``critical_interval_s`` after the kind's last message (a fire spreading through three flats is
  one or two messages, not thirty). Alarms go before everything else, life-safety first.
* **reminder** — a later message about a critical incident this target was already told about
  (``renotified``, or an event already delivered). Key: the target alone: every pending reminder
  for a target is one message, at most every ``reminder_interval_s``, after the alarms, and only in
  the slots the limiter's ladder leaves follow-ups. A reminder for an alarm not yet delivered
  rides along with that alarm instead.
* **normal** — everything else, grouped Alertmanager-style: ``group_by`` fields + target,
  ``group_wait_s`` for a new group, ``group_interval_s`` between messages of one group.

The dispatcher re-plans after every send, so a new alarm waits at most for the one message in
flight (and for a free slot, which the ladder keeps for it: :mod:`gateway.channels.limiter`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.channels.limiter import FOLLOW_UP, NEW, NORMAL

PRIORITY_IMMEDIATE = 0
ALARM, REMINDER, ORDINARY = 0, 1, 2
CLASS_NAMES = ("alarm", "reminder", "normal")


def priority(incident: Mapping[str, Any], immediate_severities: Sequence[str]) -> int:
    """0 = immediate (critical / life-safety), 1 = major, 2 = the rest."""
    if incident.get("life_safety") or incident.get("severity") in immediate_severities:
        return PRIORITY_IMMEDIATE
    return 1 if incident.get("severity") == "major" else 2


def group_key(
    channel: str,
    target: str,
    incident: Mapping[str, Any],
    event: str,
    group_by: Sequence[str],
    *,
    immediate: bool,
    site: Mapping[str, str | None] | None = None,
) -> str:
    """The row's key as queued: alarms by kind (type + event), the rest by ``group_by``.

    ``site`` supplies compound/building/grid when the incident row lacks them (derived).
    """
    if immediate:
        return f"{channel}:{target}|alarm|type={incident.get('type')}|event={event}"
    parts = [f"{channel}:{target}"]
    for f in group_by:
        value = event if f == "event" else (incident.get(f) or (site or {}).get(f))
        parts.append(f"{f}={value or '-'}")
    return "|".join(parts)


def reminder_key(channel: str, target: str) -> str:
    return f"{channel}:{target}|reminders"


@dataclass
class Row:
    id: int
    incident_id: str
    event: str
    channel: str
    target: str
    person: str | None
    key: str
    priority: int
    created_ms: int
    next_ms: int
    attempts: int
    mentions: list[str] = field(default_factory=list)
    chain: list[list[str]] = field(default_factory=list)
    severity: str = ""
    life_safety: bool = False

    @property
    def where(self) -> tuple[str, str]:
        return (self.channel, self.target)


@dataclass
class Group:
    key: str
    channel: str
    target: str
    cls: int  # ALARM | REMINDER | ORDINARY
    priority: int
    rows: list[Row]
    ready_ms: int
    slot: str = NORMAL  # the limiter's ladder class: NEW | FOLLOW_UP | NORMAL
    life_safety: bool = False

    @property
    def oldest_ms(self) -> int:
        return min(r.created_ms for r in self.rows)

    @property
    def order(self) -> tuple[int, int, int, int]:
        return (self.cls, 0 if self.life_safety else 1, self.priority, self.oldest_ms)


def row_class(r: Row, delivered: Collection[tuple[str, str, str, str]]) -> int:
    """ALARM, REMINDER or ORDINARY; ``delivered`` holds (incident, channel, target, event) already sent."""
    if r.priority != PRIORITY_IMMEDIATE:
        return ORDINARY
    if r.channel == "voice":
        return ALARM  # a call per incident, never merged or held back
    if r.event == "renotified" or (r.incident_id, r.channel, r.target, r.event) in delivered:
        return REMINDER
    return ALARM


@dataclass(frozen=True, slots=True)
class Timing:
    group_wait_ms: int
    group_interval_ms: int
    critical_interval_ms: int = 0
    reminder_interval_ms: int = 60_000
    window_ms: int = 63_000


def plan(
    rows: Iterable[Row],
    now: int,
    last_sent: Mapping[str, int],
    timing: Timing,
    *,
    delivered: Collection[tuple[str, str, str, str]] = (),
    max_rows: int = 500,
) -> tuple[list[Group], int | None, set[tuple[str, str]]]:
    """Groups ready now (in sending order), the earliest time another becomes ready, and the
    targets with ordinary messages waiting (the limiter keeps their share for them)."""
    waiting = [r for r in rows if r.next_ms <= now]
    wake: int | None = None
    for r in rows:
        if r.next_ms > now:
            wake = r.next_ms if wake is None else min(wake, r.next_ms)
    by_key: dict[str, tuple[int, list[Row]]] = {}
    alarm_of: dict[tuple[str, str, str], str] = {}  # (incident, channel, target) -> alarm key
    classes = [(r, row_class(r, delivered)) for r in waiting]
    for r, cls in classes:
        if cls == ALARM:
            by_key.setdefault(r.key, (ALARM, []))[1].append(r)
            alarm_of.setdefault((r.incident_id, r.channel, r.target), r.key)
    normal_waiting: set[tuple[str, str]] = set()
    for r, cls in classes:
        if cls == ALARM:
            continue
        if cls == REMINDER:
            key = alarm_of.get((r.incident_id, r.channel, r.target))
            if key is not None:  # the alarm itself has not gone out yet: the reminder rides along
                by_key[key][1].append(r)
                continue
            by_key.setdefault(reminder_key(r.channel, r.target), (REMINDER, []))[1].append(r)
        else:
            normal_waiting.add(r.where)
            by_key.setdefault(r.key, (ORDINARY, []))[1].append(r)
    ready: list[Group] = []
    for key, (cls, members) in by_key.items():
        members.sort(key=lambda r: (r.created_ms, r.id))
        first = members[0]
        last = last_sent.get(key)
        slot = NORMAL
        if cls == ALARM:
            at = now if last is None else max(now, last + timing.critical_interval_ms)
            slot = NEW if last is None or last <= now - timing.window_ms else FOLLOW_UP
            if first.channel == "voice":
                at = now
        elif cls == REMINDER:
            at = first.created_ms + timing.group_wait_ms
            if last is not None:
                at = max(at, last + timing.reminder_interval_ms)
            slot = FOLLOW_UP
        else:
            at = first.created_ms + timing.group_wait_ms
            if last is not None:
                at = max(at, last + timing.group_interval_ms)
        g = Group(
            key, first.channel, first.target, cls, min(m.priority for m in members), members[:max_rows], at, slot,
            any(m.life_safety for m in members),
        )  # fmt: skip
        if at <= now:
            ready.append(g)
        else:
            wake = at if wake is None else min(wake, at)
    ready.sort(key=lambda g: g.order)
    return ready, wake, normal_waiting
