"""The queue's rules in isolation: the default budget's margin, the slot ladder, classes and grouping.

The end-to-end tests (test_channels_storm.py, test_channels_outage.py) show the same rules against
receivers that enforce the services' limits; these pin the arithmetic with the default config.
"""

from __future__ import annotations

import random

from edge_config.channel_settings import ChannelSettings
from gateway.channels import grouping, limiter
from gateway.channels.grouping import ALARM, ORDINARY, REMINDER, Row, Timing
from gateway.channels.limiter import FOLLOW_UP, NEW, NORMAL


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)


def test_default_budget_keeps_a_margin_on_count_and_time() -> None:
    s = ChannelSettings()
    lim = limiter.for_target(s, 20)  # a robot: the services allow 20 per minute
    assert (lim.limit, lim.window_ms) == (19, 63_000)
    rnd = random.Random(7)
    arrivals: list[float] = []  # when the service counts each request
    starts: list[int] = []
    replies: list[int] = []
    t = 0
    while t < 300_000:  # five minutes of sending as fast as the budget allows
        if lim.free_at(t, NEW) <= t:
            arrive = t + rnd.uniform(0, 300)  # network latency and jitter, up to 300 ms each way
            reply = int(arrive + rnd.uniform(0, 300))
            lim.record(reply, NEW)
            starts.append(t)
            arrivals.append(arrive)
            replies.append(reply)
            t = reply
        else:
            t += 1
    assert max_in_window(arrivals, 60_000) == 19  # one below the limit at the service, whatever the jitter
    # the 20th request starts a full counting window after the 1st one's reply: 3 s of slack at the service
    gaps = [starts[i + 19] - replies[i] for i in range(len(starts) - 19)]
    assert min(gaps) >= 63_000
    assert min(arrivals[i + 19] - arrivals[i] for i in range(len(arrivals) - 19)) > 63_000


def test_ladder_keeps_slots_for_a_new_alarm_and_a_share_for_ordinary_ones() -> None:
    s = ChannelSettings()
    lim = limiter.for_target(s, 20)  # 19 slots: new 2 reserved, normal share 4, critical reserve 2
    now = 1_000
    n = 0
    while lim.free_at(now, FOLLOW_UP, normal_waiting=True) <= now:
        lim.record(now, FOLLOW_UP)
        n += 1
    assert n == 19 - 2 - 4  # follow-ups leave the new-alarm reserve and the ordinary share
    while lim.free_at(now, NORMAL) <= now:
        lim.record(now, NORMAL)
        n += 1
    assert n == 19 - 2  # ordinary messages used their share, the new-alarm reserve is still free
    assert lim.free_at(now, FOLLOW_UP, normal_waiting=True) > now
    assert lim.free_at(now, NEW) == now  # a new alarm still goes at once
    lim.record(now, NEW)
    lim.record(now, NEW)
    assert lim.free_at(now, NEW) == now + 63_000  # 19 in the window: nothing more until the first leaves


def test_ordinary_messages_past_their_share_leave_room_for_critical_follow_ups() -> None:
    lim = limiter.for_target(ChannelSettings(), 20)
    n = 0
    while lim.free_at(0, NORMAL) <= 0:
        lim.record(0, NORMAL)
        n += 1
    assert n == 19 - 2 - 2  # past their share of 4, ordinary ones leave reserve_for_new + reserve_for_critical
    assert lim.free_at(0, FOLLOW_UP) == 0 and lim.free_at(0, NEW) == 0


def row(i: int, inc: str, event: str, prio: int, created: int, *, typ: str = "smoke", target: str = "duty") -> Row:
    key = grouping.group_key("wecom", target, {"type": typ, "compound": "cp1", "category": "security"}, event,
                             ["compound", "category", "type", "event"], immediate=prio == 0)  # fmt: skip
    return Row(i, inc, event, "wecom", target, None, key, prio, created, 0, 0, life_safety=prio == 0)


T = Timing(group_wait_ms=10_000, group_interval_ms=60_000, critical_interval_ms=5_000, reminder_interval_ms=60_000)


def test_alarms_of_a_kind_are_one_message_and_go_before_everything() -> None:
    rows = [row(i, f"s{i}", "dispatched", 0, 1000 + i) for i in range(30)]  # 30 smoke alarms
    rows += [row(100 + i, f"d{i}", "dispatched", 2, 0, typ="device_offline") for i in range(200)]  # a storm
    rows.append(row(99, "sos1", "dispatched", 0, 1015, typ="sos"))
    ready, _, normal_waiting = grouping.plan(rows, 20_000, {}, T)
    assert [(g.cls, len(g.rows)) for g in ready] == [(ALARM, 30), (ALARM, 1), (ORDINARY, 200)]
    assert {g.slot for g in ready[:2]} == {NEW} and normal_waiting == {("wecom", "duty")}
    # once smoke has been posted, more smoke waits critical_interval_s to be collected, a new kind does not
    more = [row(200 + i, f"t{i}", "dispatched", 0, 21_000 + i) for i in range(3)]
    ready, wake, _ = grouping.plan([*more, rows[-1]], 21_100, {ready[0].key: 20_000}, T)
    assert [(g.key, len(g.rows)) for g in ready] == [(rows[-1].key, 1)] and wake == 25_000
    ready, _, _ = grouping.plan(more, 25_000, {ready[0].key: 20_000, rows[0].key: 20_000}, T)
    assert len(ready) == 1 and len(ready[0].rows) == 3 and ready[0].slot == FOLLOW_UP  # posted in this window


def test_reminders_yield_are_merged_and_ride_along_with_an_undelivered_alarm() -> None:
    delivered = {(f"s{i}", "wecom", "duty", "dispatched") for i in range(30)}
    reminders = [row(i, f"s{i}", "renotified", 0, 1000 + i * 10) for i in range(30)]
    first_sos = row(99, "sos1", "dispatched", 0, 1200, typ="sos")
    sos_reminder = row(98, "sos1", "renotified", 0, 1300, typ="sos")
    ready, _, _ = grouping.plan([*reminders, first_sos, sos_reminder], 20_000, {}, T, delivered=delivered)
    assert [(g.cls, len(g.rows)) for g in ready] == [(ALARM, 2), (REMINDER, 30)]  # the SOS first; one reminder
    assert ready[1].slot == FOLLOW_UP and ready[1].key == grouping.reminder_key("wecom", "duty")
    # a reminder group that has sent waits reminder_interval_s
    ready, wake, _ = grouping.plan(reminders, 30_000, {grouping.reminder_key("wecom", "duty"): 25_000}, T,
                                   delivered=delivered)  # fmt: skip
    assert ready == [] and wake == 85_000
    # an already delivered event of a critical incident is a reminder too
    again = row(7, "s1", "dispatched", 0, 2000)
    assert grouping.row_class(again, delivered) == REMINDER and grouping.row_class(again, set()) == ALARM
