"""/metrics: Prometheus text built per scrape from cheap store queries (a custom collector).

Counters come from the store's ``counters`` table, so they survive restarts (monotonic across
them, as Prometheus counters should be). Open incidents use the partial ``open_key`` index.
Also in every scrape: the latency histograms of the process (gateway/core/histograms.py), the
build info, and prometheus_client's process, platform and garbage-collector collectors.

Names follow the Prometheus conventions (tests/test_metrics_lint.py checks them on the real
output): one meaning per metric, ``_total`` on counters only, base units (seconds, bytes).
"""

from __future__ import annotations

import platform
import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

from gateway import __version__
from gateway.api.db import columns
from gateway.core import incidents as inc
from gateway.core.histograms import HistogramCollector
from gateway.core.store import used_bytes
from gateway.ingest.broker_drops import drop_status

if TYPE_CHECKING:
    from gateway.app import Gateway

# The store's plain counters (docs/api.md "Counters"), one metric each. They were once folded into
# edge_pipeline_total{name=...}, whose series meant different things and could not be summed.
STORE_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("messages_committed", "edge_messages_committed", "MQTT messages in committed batches, redeliveries included"),
    (
        "duplicates_skipped",
        "edge_duplicate_messages_skipped",
        "Redelivered (DUP) messages already stored, not stored again",
    ),
    (
        "left_to_safety_session",
        "edge_messages_left_to_safety_session",
        "Telemetry-session copies of life-safety topics, left to the safety session that stores them",
    ),
    ("unconfigured_messages", "edge_unconfigured_messages", "Messages from devices the site file does not list"),
    ("foreign_device_messages", "edge_foreign_device_messages", "Messages from devices another gateway owns"),
    ("retained_replays", "edge_retained_replays_skipped", "Retained messages the broker replayed unchanged, skipped"),
    ("readings_pruned", "edge_readings_pruned", "Stored readings deleted by age or by the size limit"),
    (
        "store_full_refusals",
        "edge_store_full_refusals",
        "Telemetry batches refused because the store reached its quota",
    ),
)

# Made once (the platform collector reads its facts at construction), in a registry of their own
# rather than prometheus_client's global one; each scrape's registry lists them again.
_DEFAULTS = CollectorRegistry()
_DEFAULT_COLLECTORS = (
    ProcessCollector(registry=_DEFAULTS),
    PlatformCollector(registry=_DEFAULTS),
    GCCollector(registry=_DEFAULTS),
)


def build_info() -> InfoMetricFamily:
    return InfoMetricFamily(
        "edge_build",
        "The running gateway's version (always 1)",
        value={"version": __version__, "python_version": platform.python_version()},
    )


class StoreCollector:
    def __init__(self, conn: sqlite3.Connection, gw: Gateway, stream_clients: int, throttled: int = 0) -> None:
        self.conn, self.gw, self.stream_clients, self.throttled = conn, gw, stream_clients, throttled

    def collect(self) -> Iterator[Metric]:
        yield build_info()
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

        for key, name, doc in STORE_COUNTERS:
            m = CounterMetricFamily(name, doc)
            m.add_metric([], counters.get(key, 0))
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

        quota = self.gw.cfg.store
        g = GaugeMetricFamily("edge_store_used_bytes", "Bytes the store's pages hold (free pages left out)")
        g.add_metric([], used_bytes(c))
        yield g
        g = GaugeMetricFamily(
            "edge_store_quota_bytes", "Bytes telemetry may fill (store.quota_mb less reserve_mb, kept for alarms)"
        )
        g.add_metric([], max(0, quota.quota_mb - quota.reserve_mb) * 1024 * 1024)
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
    reg.register(HistogramCollector())
    for collector in _DEFAULT_COLLECTORS:
        reg.register(collector)
    return bytes(generate_latest(reg))
