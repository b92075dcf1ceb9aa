"""Storm: 200 devices go offline within 5 s and an SOS arrives in the middle.

Real pipeline thread, ticket loop and channel dispatcher thread on the wall clock; real local WeCom
and DingTalk receivers enforcing 20 messages per rolling minute (DingTalk blocks for 10 minutes).
Expected: the SOS goes out first (at most one storm message already in flight may precede it) and
within 2 s of its commit; the storm arrives as a few grouped messages per channel; no channel
exceeds its limit; every incident's delivery is on its timeline.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edge_config import load_config
from gateway.channels.delivery import ChannelDispatcher
from gateway.core import incidents as inc
from gateway.core.contract import BatchResult
from gateway.ingest.mqtt import LIFE_SAFETY, Inbound
from gateway.install import traffic
from tests.channels_receivers import DingtalkReceiver, WecomReceiver, write_channel_site
from tests.rules_harness import FakeClock, Harness
from tests.tickets_harness import TicketHarness

N = 200
ENV = {"WK": "wk-storm", "DT_OPS": "dt-ops", "DS_OPS": "SECops", "DT_CARE": "dt-care", "DS_CARE": "SECcare"}


class WallClock(FakeClock):
    """The harness clock, following the real wall clock (the pipeline and dispatcher share it)."""

    def wall(self) -> int:
        return time.time_ns() // 1_000_000

    @property  # type: ignore[override]
    def wall_ms(self) -> int:
        return self.wall()

    @wall_ms.setter
    def wall_ms(self, value: int) -> None:
        pass


def test_storm_sos_first_grouped_and_within_rate_limits(tmp_path: Path) -> None:
    wecom = WecomReceiver(ENV["WK"])
    ops = DingtalkReceiver(ENV["DT_OPS"], ENV["DS_OPS"])
    care = DingtalkReceiver(ENV["DT_CARE"], ENV["DS_CARE"])
    channels = f"""\
channels:
  grouping: {{group_wait_s: 1.0, group_interval_s: 2.0}}
  retry_min_s: 0.2
  retry_max_s: 1
  wecom:
    - {{name: duty, base_url: "{wecom.base_url}", key: "${{WK}}", broadcast: true}}
  dingtalk:
    - {{name: ops, base_url: "{ops.base_url}", access_token: "${{DT_OPS}}", secret: "${{DS_OPS}}", broadcast: true}}
    - {{name: care, base_url: "{care.base_url}", access_token: "${{DT_CARE}}", secret: "${{DS_CARE}}",
       elder_care: true, categories: [eldercare]}}
"""
    cfg = load_config(write_channel_site(tmp_path, channels=channels), env=ENV)
    h = TicketHarness.__new__(TicketHarness)
    h.synced = True
    Harness.__init__(h, tmp_path, cfg=cfg, clock=WallClock())
    disp = ChannelDispatcher(h.db, cfg, call=h.pipeline.call, incidents=h.ctx.incidents, clock=h.clock.wall)
    committed: dict[str, float] = {}

    def on_commit(result: BatchResult) -> None:
        for ev in result.incident_events:
            snap = ev.incident or {}
            if ev.kind == "created" and snap.get("type") == "sos":
                committed["sos"] = time.monotonic()
        disp.wake()

    h.pipeline.on_commit = on_commit
    h.pipeline.start()
    disp.start()
    try:
        ids: list[Any] = []

        def raise_offline(i: int) -> Any:
            trig = inc.Trigger(
                key=f"plug-x{i}|device_offline", category="device_health", type="device_offline", severity="minor",
                ts_ms=h.clock.wall(), devices=[f"plug-x{i}"],
                location=inc.Location(grid="g1", compound="cp1", building="b3", unit="u1"),
            )  # fmt: skip
            return h.pipeline.call(lambda c, r, now: h.ctx.incidents.raise_or_repeat(c, r, trig, now).incident_id)

        def sos() -> None:
            d = h.sim["sos-r1"]
            topic, payload = traffic.sos_press(d)
            h.pipeline.submit(Inbound(LIFE_SAFETY, 0, 1, 1, topic, payload, False, False, h.clock.wall(), 0))

        t0 = time.monotonic()
        for i in range(N):
            if i == N // 2:
                sos()
            ids.append(raise_offline(i))
            time.sleep(max(0.0, t0 + (i + 1) * 4.5 / N - time.monotonic()))  # 200 within ~4.5 s
        offline_ids = {f.result(timeout=10) for f in ids}
        assert len(offline_ids) == N and time.monotonic() - t0 < 5.5

        def all_sent() -> bool:
            n = h.store.conn.execute(
                "SELECT count(*) FROM channel_deliveries WHERE status != 'sent'"
                " AND incident_id IN (SELECT id FROM incidents WHERE type IN ('device_offline', 'sos'))"
            ).fetchone()[0]
            return n == 0

        deadline = time.monotonic() + 20
        while not all_sent() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all_sent()
    finally:
        disp.stop()
        h.pipeline.stop()
    try:
        sos_commit = committed["sos"]
        for name, rx in (("wecom", wecom), ("dingtalk ops", ops)):
            hits = rx.hits
            assert all(x.ok for x in hits), (name, [x.reply for x in hits if not x.ok])
            sos_hits = [x for x in hits if "紧急呼叫" in x.text]
            storm_hits = [x for x in hits if "设备离线" in x.text]
            print(name, "messages:", [("SOS" if x in sos_hits else "storm", round(x.t - sos_commit, 3)) for x in hits])
            assert len(sos_hits) == 1, name
            # within 2 s of the SOS's commit, and not behind storm messages (one may already be in flight)
            assert sos_hits[0].t - sos_commit < 2.0, (name, sos_hits[0].t - sos_commit)
            assert len([x for x in storm_hits if sos_commit < x.t < sos_hits[0].t]) <= 1, name
            assert "设备离线" not in sos_hits[0].text  # never grouped with the storm
            assert 1 <= len(storm_hits) <= 5, (name, len(storm_hits))
            assert rx.max_per_rolling_minute() <= 20, name
            counts = [int(x.text.split("设备离线 ")[1].split("条")[0]) if "条" in x.text else 1 for x in storm_hits]
            assert sum(counts) == N, (name, counts)
        care_hits = [x for x in care.hits if "紧急呼叫" in x.text]
        assert len(care_hits) == 1 and care_hits[0].t - sos_commit < 2.0
        # every offline incident has its delivery on its own timeline
        attempted = {
            r[0]
            for r in h.store.conn.execute(
                "SELECT DISTINCT incident_id FROM incident_events WHERE kind='notify_attempt'"
                " AND json_extract(data, '$.channel') = 'wecom'"
            )
        }
        assert offline_ids <= attempted
    finally:
        h.close()
        for rx in (wecom, ops, care):
            rx.close()
