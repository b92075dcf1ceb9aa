"""30 smoke alarms and an SOS through the real broker, against receivers enforcing the robots' limits.

A whole gateway (gateway.app.Gateway) on a private Mosquitto, the default channel configuration
except the rate window: the services' minute is scaled down to W seconds at the receivers
(20 per W; DingTalk blocks for 10 W) and in the gateway (``channels.rate.window_s: W``); the
reminders recur every W as they would every minute (``tickets.renotify_s``).

30 smoke detectors in 30 flats of two buildings go off over ~8 s; the SOS (a pull cord in the
lobby) comes after the 22nd, when one message per alarm would already have used the window;
three ordinary incidents wait meanwhile. Expected: the SOS at every robot within 2 s; no robot
ever sees more than 19 requests (the gateway's budget) in a rolling W; the smoke alarms arrive
as a few messages that name every flat; the reminders as one merged message; the ordinary
incidents within their group wait plus a few seconds.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from edge_config import load_config
from gateway.app import Gateway
from gateway.install import traffic
from gateway.install.mosquitto import Mosquitto
from tests.channels_receivers import SOS_IN_LOBBY, DingtalkReceiver, Hit, SmsReceiver, WecomReceiver, write_e2e_site
from tests.support import TrackedPublisher, wait_until

pytestmark = pytest.mark.broker

W = 10.0  # the services' minute, scaled down
ENV = {"WK": "wk-crit", "DT_OPS": "dt-ops", "DS_OPS": "SECops", "DT_CARE": "dt-care", "DS_CARE": "SECcare",
       "SMS_AUTH": "Bearer sms"}  # fmt: skip
FLATS = [(b, floor, f"{floor}0{k}") for b in ("b1", "b2") for floor in range(2, 7) for k in (1, 2, 3)]
SOS_AFTER = 22


def smoke_devices() -> str:
    out = []
    for n, (b, floor, room) in enumerate(FLATS):
        out.append(
            f"  - {{id: smoke-{b}-{room}, driver: zigbee2mqtt, address: '0x00158d00001{n:05x}', type: smoke_detector,"
            f" friendly_name: {b}/u1/smoke{room},"
            f" location: {{building: {b}, unit: u1, floor: {floor}, room: '{room}'}}}}\n"
        )
    return "".join(out)


def sent_to(db: Path, typ: str, channel: str, target: str) -> set[str]:
    """Incidents of ``typ`` with a row sent to the target (a grouped message lists only the first ten)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return {
            str(r[0])
            for r in conn.execute(
                "SELECT d.incident_id FROM channel_deliveries d JOIN incidents i ON i.id = d.incident_id"
                " WHERE i.type=? AND d.channel=? AND d.target=? AND d.status='sent'",
                (typ, channel, target),
            )
        }
    finally:
        conn.close()


def incidents_of(db: Path) -> list[tuple[str, str, int]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return [(str(i), str(t), int(c)) for i, t, c in conn.execute("SELECT id, type, first_ms FROM incidents")]
    finally:
        conn.close()


def test_thirty_smoke_alarms_and_an_sos_within_the_robots_limits(tmp_path: Path, private_broker: Mosquitto) -> None:
    wecom = WecomReceiver(ENV["WK"], window_s=W)
    ops = DingtalkReceiver(ENV["DT_OPS"], ENV["DS_OPS"], window_s=W)
    care = DingtalkReceiver(ENV["DT_CARE"], ENV["DS_CARE"], window_s=W)
    sms = SmsReceiver(ENV["SMS_AUTH"])
    channels = f"""\
channels:
  console_base_url: "https://gw.example.cn:8443"
  rate: {{window_s: {W}}}
  wecom:
    - {{name: duty, base_url: "{wecom.base_url}", key: "${{WK}}", broadcast: true}}
  dingtalk:
    - {{name: ops, base_url: "{ops.base_url}", access_token: "${{DT_OPS}}", secret: "${{DS_OPS}}", broadcast: true}}
    - {{name: care, base_url: "{care.base_url}", access_token: "${{DT_CARE}}", secret: "${{DS_CARE}}",
       elder_care: true, categories: [eldercare]}}
  sms: {{url: "{sms.base_url}/sms", voice_url: "{sms.base_url}/voice", auth_header: "${{SMS_AUTH}}",
        ok_field: code, ok_value: 0}}
"""
    path = write_e2e_site(tmp_path, private_broker.port, channels=channels, devices=smoke_devices(),
                          tickets_extra=f"  mqtt: false\n  renotify_s: {int(W)}\n", replace=SOS_IN_LOBBY)  # fmt: skip
    cfg = load_config(path, env=ENV)
    sim = {d.id: d for d in traffic.sim_devices(cfg)}
    db = tmp_path / "gateway.db"
    gw = Gateway(cfg, store_path=db)
    gw.start()
    pub = TrackedPublisher("127.0.0.1", private_broker.port, "e2e-critical")
    receivers: list[tuple[str, Any]] = [("duty", wecom), ("ops", ops), ("care", care)]
    published: dict[str, float] = {}
    try:
        assert wait_until(lambda: gw.broker_connected, 15)
        ordinary = [
            traffic.state(sim["leak-b1"], {"water_leak": True}),  # major
            traffic.event(sim["acc-b2"], "door_forced"),  # major
            traffic.event(sim["gate-1"], "gate_fault"),  # minor
        ]
        smoke = [traffic.state(sim[f"smoke-{b}-{room}"], {"smoke": True, "battery": 90}) for b, _f, room in FLATS]
        msgs = [*ordinary, *smoke[:SOS_AFTER], traffic.sos_press(sim["sos-r1"]), *smoke[SOS_AFTER:]]
        sos_index = len(ordinary) + SOS_AFTER

        def progress(n: int) -> None:
            if n == 0:
                published["start"] = time.monotonic()
            if n == sos_index:
                published["sos"] = time.monotonic()

        pub.publish_all(msgs, pace=8.0 / len(smoke), on_progress=progress)
        start = published["start"]

        def ids(typ: str) -> set[str]:
            return {i for i, t, _ in incidents_of(db) if t == typ}

        def done() -> bool:
            smokes = ids("smoke")
            if len(smokes) < len(FLATS):
                return False
            for (kind, name), rx in zip((("wecom", "duty"), ("dingtalk", "ops")), (wecom, ops), strict=True):
                got = " ".join(h.text for h in rx.delivered())
                if sent_to(db, "smoke", kind, name) != smokes or "漏水" not in got or "请尽快接单" not in got:
                    return False
            return any("紧急呼叫" in h.text for h in care.delivered())

        wait_until(done, 28 - (time.monotonic() - start), 0.2)
        elapsed = time.monotonic() - start
    finally:
        pub.close()
        gw.stop()
    try:
        smokes = {i for i, t, _ in incidents_of(db) if t == "smoke"}
        assert len(smokes) == len(FLATS)
        sos_at = published["sos"]
        print(f"ran {elapsed:.1f} s")
        for name, rx in receivers:
            hits: list[Hit] = rx.hits
            assert all(h.ok for h in hits), (name, [h.reply for h in hits if not h.ok])  # never 45009/130101
            sos_hit = next(h for h in hits if "紧急呼叫" in h.text)
            latency = sos_hit.t - sos_at
            peak = rx.max_per_rolling_minute()
            print(f"{name}: {len(hits)} requests, peak {peak} in a rolling {W:g} s, SOS after {latency * 1000:.0f} ms")
            assert latency < 2.0, (name, latency)
            assert peak <= 19, (name, peak)  # the gateway's budget: one below the limit
            assert "大堂" in sos_hit.text and "1层" in sos_hit.text  # the pull cord's floor and area
        for (kind, name), rx in zip((("wecom", "duty"), ("dingtalk", "ops")), (wecom, ops), strict=True):
            hits = rx.delivered()
            alarms = [h for h in hits if "烟雾" in h.text and "请尽快接单" not in h.text]
            text = " ".join(h.text for h in alarms)
            print(f"{name}: smoke alarms in {len(alarms)} messages: {[h.title for h in alarms]}")
            assert 1 <= len(alarms) <= 5, (name, len(alarms))
            assert sent_to(db, "smoke", kind, name) == smokes  # every alarm delivered ...
            assert all(f"{room}室" in text for _b, _f, room in FLATS)  # ... naming its flat
            print(name, "titles:", [h.title for h in hits])
            reminders = [h for h in hits if "请尽快接单" in h.text and "【紧急】" in h.text]
            print(f"{name}: critical reminder messages: {[h.title for h in reminders]}")
            assert len(reminders) == 1 and "烟雾" in reminders[0].text  # merged, and yielding (one per interval)
            for word in ("漏水", "强行开门"):  # ordinary ones got their share
                hit = next(h for h in hits if word in h.text)
                waited = hit.t - start
                print(f"{name}: {word} after {waited:.1f} s")
                assert waited < cfg.channels.grouping.group_wait_s + 5, (name, word, waited)
    finally:
        for _name, rx in receivers:
            rx.close()
        sms.close()
