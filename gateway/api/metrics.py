"""/metrics: Prometheus text built per scrape from cheap store queries (a custom collector).

Counters come from the store's ``counters`` table, so they survive restarts (monotonic across
them, as Prometheus counters should be). Open incidents use the partial ``open_key`` index.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from gateway.api.db import columns
from gateway.core import incidents as inc
from gateway.ingest.broker_drops import drop_status

if TYPE_CHECKING:
    from gateway.app import Gateway

OTHER_COUNTERS = (
    "messages_committed",
    "duplicates_skipped",
    "unconfigured_messages",
    "foreign_device_messages",
    "retained_replays",
    "readings_pruned",
    "store_full_refusals",
)


class StoreCollector:
    def __init__(self, conn: sqlite3.Connection, gw: Gateway, stream_clients: int, throttled: int = 0) -> None:
        self.conn, self.gw, self.stream_clients, self.throttled = conn, gw, stream_clients, throttled

    def collect(self) -> Iterator[Metric]:
        c = self.conn
        counters = {str(k): int(v) for k, v in c.execute("SELECT name, value FROM counters")}

        m = CounterMetricFamily("edge_messages_in", "MQTT messages received, per driver", labels=["driver"])
        for name, v in sorted(counters.items()):
            if name.startswith("messages.") and name != "messages_committed":
                m.add_metric([name.split(".", 1)[1]], v)
        yield m

        m = CounterMetricFamily("edge_dead_letters", "Messages dead-lettered, per reason", labels=["reason"])
        for name, v in sorted(counters.items()):
            if name.startswith("dead_letters."):
                m.add_metric([name.split(".", 1)[1]], v)
        yield m

        m = CounterMetricFamily("edge_pipeline", "Other pipeline counters", labels=["name"])
        for name in OTHER_COUNTERS:
            m.add_metric([name], counters.get(name, 0))
        yield m

        drops = drop_status(c)
        m = CounterMetricFamily(
            "edge_broker_dropped_messages",
            "Messages the MQTT broker reported dropped ($SYS), as the gateway counted them",
        )
        m.add_metric([], drops["dropped_total"])
        yield m
        g = GaugeMetricFamily(
            "edge_broker_drops_open", "1 while the broker_dropped_messages incident is open (/readyz degraded)"
        )
        g.add_metric([], 0 if drops["open_incident"] is None else 1)
        yield g

        g = GaugeMetricFamily(
            "edge_incidents_open", "Open incidents per category and severity", labels=["category", "severity"]
        )
        found = {
            (cat, sev): n
            for cat, sev, n in c.execute(
                "SELECT category, severity, count(*) FROM incidents WHERE open_key IS NOT NULL GROUP BY 1, 2"
            )
        }
        for cat in inc.CATEGORIES:
            for sev in inc.SEVERITIES:
                g.add_metric([cat, sev], found.pop((cat, sev), 0))
        for (cat, sev), n in found.items():
            g.add_metric([cat, sev], n)
        yield g

        failed = pending = 0
        if columns(c, "deliveries"):
            for status, n in c.execute("SELECT status, count(*) FROM deliveries GROUP BY status"):
                if status == "dead":
                    failed = int(n)
                elif status == "pending":
                    pending = int(n)
        m = CounterMetricFamily("edge_notifications_failed", "Notifications given up after retries")
        m.add_metric([], failed)
        yield m
        g = GaugeMetricFamily("edge_notifications_pending", "Notifications waiting to be delivered")
        g.add_metric([], pending)
        yield g

        try:
            from cloud_sync.status import sync_status
        except ImportError:
            sync_status = None  # type: ignore[assignment]
        backlog = 0
        oldest = 0.0
        if sync_status is not None:
            s = sync_status(c)
            backlog = int(s.get("backlog_points") or 0)
            oldest = float(s.get("oldest_unsent_age_s") or 0.0)
        g = GaugeMetricFamily("edge_outbox_backlog_points", "Points waiting for the central store")
        g.add_metric([], backlog)
        yield g
        g = GaugeMetricFamily("edge_outbox_oldest_age_seconds", "Age of the oldest unsent point")
        g.add_metric([], oldest)
        yield g

        g = GaugeMetricFamily("edge_devices", "Configured devices by online state", labels=["state"])
        states = {"online": 0, "offline": 0, "unknown": 0}
        for online, n in c.execute("SELECT online, count(*) FROM devices GROUP BY online"):
            states["unknown" if online is None else "online" if online else "offline"] += int(n)
        for k, v in states.items():
            g.add_metric([k], v)
        yield g

        h = self.gw.health()
        g = GaugeMetricFamily("edge_broker_connected", "1 when every MQTT session is connected")
        g.add_metric([], 1 if h["broker_connected"] else 0)
        yield g
        g = GaugeMetricFamily("edge_store_writable", "1 when the store accepts writes")
        g.add_metric([], 1 if h["store_writable"] else 0)
        yield g
        g = GaugeMetricFamily("edge_stream_clients", "Connected live-stream (SSE) clients")
        g.add_metric([], self.stream_clients)
        yield g
        g = GaugeMetricFamily("edge_ingest_backlog_messages", "Messages received and not yet committed")
        g.add_metric([], int(getattr(self.gw.pipeline, "backlog", 0)))
        yield g
        m = CounterMetricFamily(
            "edge_api_requests_throttled",
            "API requests served under the CPU cap because ingest was behind (since start)",
        )
        m.add_metric([], self.throttled)
        yield m


def render_metrics(conn: sqlite3.Connection, gw: Gateway, stream_clients: int = 0, throttled: int = 0) -> bytes:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StoreCollector(conn, gw, stream_clients, throttled))
    return bytes(generate_latest(reg))
