"""What a failure means for a row: retry, go on to the person's next channel, wait, or give up.

A channel target that fails is **held** as a whole (capped exponential backoff with jitter): its
rows wait in the queue instead of each being retried on its own, so a robot that is down gets
one request per hold, and when it answers again everything that waited goes out merged, in the
queue's order. Per row, a retry rule (``channels.retry``, first match by recipient, channel kind
and severity) says how many failures in a row of the target a *person's* row tolerates before it
goes on to the person's next channel (critical: one — a fast fallback); a group's broadcast, or a
person's last channel, has nowhere to go and waits, up to ``give_up_after_s``, after which it is
abandoned — on the record, never silently.

'Too fast' replies (WeCom 45009, DingTalk 130101) are not failures: they mean slow down. The
target is held for the service's block, rows keep their place; a person's critical row also
starts their next channel at once, so nobody waits ten minutes for a blocked robot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.channels.grouping import Row
from gateway.core.backoff import backoff_s

if TYPE_CHECKING:
    from edge_config.channel_settings import ChannelSettings


@dataclass(frozen=True, slots=True)
class Retry:
    attempts: int | None  # failures in a row before a person's row falls over; None = wait
    min_s: float
    max_s: float


def rule_for(s: ChannelSettings, row: Row) -> Retry:
    recipient = "person" if row.person else "group"
    for rule in s.retry:
        if rule.recipient not in ("any", recipient):
            continue
        if rule.channels and row.channel not in rule.channels:
            continue
        if rule.severities and row.severity not in rule.severities:
            continue
        return Retry(
            rule.attempts,
            rule.retry_min_s if rule.retry_min_s is not None else s.retry_min_s,
            rule.retry_max_s if rule.retry_max_s is not None else s.retry_max_s,
        )
    return Retry(s.max_attempts if row.person else None, s.retry_min_s, s.retry_max_s)


def falls_over(rule: Retry, row: Row, failures: int) -> bool:
    """A person's row with a next channel, once its target has failed ``rule.attempts`` times in a row."""
    return bool(row.chain) and rule.attempts is not None and failures >= rule.attempts


def hold_s(s: ChannelSettings, rows: list[Row], failures: int, rnd: float, *, auth: bool = False) -> float:
    """How long the target is held after its ``failures``-th failure in a row: the most eager rule of
    the rows in the failed message decides (a person's critical alarm is retried within seconds)."""
    rules = [rule_for(s, r) for r in rows] or [Retry(None, s.retry_min_s, s.retry_max_s)]
    lo = min(r.min_s for r in rules)
    hi = min(r.max_s for r in rules)
    if auth:  # wrong credentials are fixed by a person and a reload, not by hammering
        return max(hi, lo)
    return backoff_s(failures, lo, max(hi, lo), rnd)
