"""Latency histograms of the running process, exported by /metrics (process lifetime, from 0).

Not prometheus_client's ``Histogram``: its ``observe`` takes a lock per bucket and per sum, and
the pipeline thread observes every committed message. Here one lock covers a whole batch of
observations; a scrape copies the counts under the same lock, so a scrape never sees a torn
series (bucket counts always add up to ``_count``).

What is observed where:
- the pipeline, after each commit: every message's wait from receipt to durable commit;
- :func:`observe_committed`, called by the pipeline after each commit (ingest batches and
  ``Pipeline.call``'s): the life-safety alarm that created an incident (receipt to commit), and a
  person's accept / resolve (from the incident's creation);
- the sync sender: one write request to the central store.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from gateway.core.contract import BatchResult
from gateway.core.incidents import CATEGORIES, LIFE_SAFETY_TYPES

if TYPE_CHECKING:  # imported by a scrape: the pipeline imports this module at start-up
    from prometheus_client.core import HistogramMetricFamily

FAST_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# People: from seconds (someone at the console) to days (a repair waiting for a part).
HUMAN_S = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0, 259200.0)
NETWORK_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Histogram:
    """Cumulative histogram per label set; label sets given in ``initial`` are exported at zero."""

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        labelnames: Sequence[str] = (),
        initial: Iterable[tuple[str, ...]] = (),
    ) -> None:
        self.name, self.documentation = name, documentation
        self.buckets = tuple(sorted(buckets))
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()
        # per label set: counts per bucket (the last one is +Inf, not cumulative) and the sum
        self._series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}
        for labels in initial or ([()] if not self.labelnames else []):
            self._get(tuple(labels))

    def _get(self, labels: tuple[str, ...]) -> tuple[list[int], list[float]]:
        s = self._series.get(labels)
        if s is None:
            if len(labels) != len(self.labelnames):
                raise ValueError(f"{self.name}: labels {labels} for {self.labelnames}")
            s = self._series[labels] = ([0] * (len(self.buckets) + 1), [0.0])
        return s

    def observe(self, value: float, *labels: str) -> None:
        self.observe_many((value,), *labels)

    def observe_many(self, values: Iterable[float], *labels: str) -> None:
        buckets = self.buckets
        with self._lock:
            counts, total = self._get(labels)
            for v in values:
                counts[bisect_left(buckets, v)] += 1  # first bucket whose bound is >= v ("le")
                total[0] += v

    def count(self, *labels: str) -> int:
        with self._lock:
            s = self._series.get(labels)
            return sum(s[0]) if s is not None else 0

    def collect(self) -> HistogramMetricFamily:
        from prometheus_client.core import HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        fam = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            series = [(labels, list(counts), total[0]) for labels, (counts, total) in self._series.items()]
        for labels, counts, total in sorted(series):
            cum = 0
            pairs: list[tuple[str, float]] = []
            for bound, n in zip((*self.buckets, float("inf")), counts, strict=True):
                cum += n
                pairs.append((floatToGoString(bound), cum))
            fam.add_metric(list(labels), pairs, sum_value=total)
        return fam


MESSAGE_COMMIT = Histogram(
    "edge_message_commit_latency_seconds",
    "Time from an MQTT message's receipt to the durable commit of its batch (then it is acknowledged)",
    FAST_S,
    ["session"],
    initial=[("telemetry",), ("safety",)],
)
ALARM_INCIDENT = Histogram(
    "edge_alarm_incident_latency_seconds",
    "Time from the receipt of a life-safety alarm (sos, fall, smoke, gas) to the commit of the incident it created",
    FAST_S,
    ["type"],
    initial=[(t,) for t in sorted(LIFE_SAFETY_TYPES)],
)
TIME_TO_ACCEPT = Histogram(
    "edge_incident_time_to_accept_seconds",
    "Time from an incident's creation to a person accepting it",
    HUMAN_S,
    ["category"],
    initial=[(c,) for c in CATEGORIES],
)
TIME_TO_RESOLVE = Histogram(
    "edge_incident_time_to_resolve_seconds",
    "Time from an incident's creation to a person resolving it",
    HUMAN_S,
    ["category"],
    initial=[(c,) for c in CATEGORIES],
)
SYNC_BATCH = Histogram(
    "edge_sync_batch_duration_seconds",
    "Duration of one write request to the central store, by outcome",
    NETWORK_S,
    ["outcome"],
    initial=[("ok",), ("failed",)],
)
ALL: tuple[Histogram, ...] = (MESSAGE_COMMIT, ALARM_INCIDENT, TIME_TO_ACCEPT, TIME_TO_RESOLVE, SYNC_BATCH)


class HistogramCollector:
    """prometheus_client collector over :data:`ALL` (registered in each scrape's registry)."""

    def collect(self) -> Iterator[HistogramMetricFamily]:
        for h in ALL:
            yield h.collect()


_PERSON_STATES = {"accepted": TIME_TO_ACCEPT, "resolved": TIME_TO_RESOLVE}


def observe_committed(conn: sqlite3.Connection, result: BatchResult) -> None:
    """Observe the incident latencies of a transaction that just committed (pipeline thread).

    Alarm latency: an incident of a life-safety type *created* here, from the earliest receipt of
    a reading of one of its devices in the same batch (repeats and merges into an open incident
    are not new alarms). Accept/resolve: state changes made by a person (an event with a role;
    the rules clearing an incident nobody accepted are not a resolution by staff), measured from
    the incident's creation, read back by its primary key (a handful per day).
    """
    if not result.incident_events:
        return
    now_ms = time.time() * 1000
    for ev in result.incident_events:
        if ev.kind == "created" and ev.incident is not None:
            itype = ev.incident.get("type")
            if itype not in LIFE_SAFETY_TYPES:
                continue
            devices = set(ev.incident.get("devices") or ())
            rx = [r.rx_ms for r in result.resolved if r.device.id in devices]
            if rx:
                ALARM_INCIDENT.observe(max(0.0, now_ms - min(rx)) / 1000, str(itype))
        elif ev.kind == "state_changed" and ev.role is not None:
            hist = _PERSON_STATES.get(str(ev.data.get("to")))
            if hist is None:
                continue
            try:
                row = conn.execute(
                    "SELECT category, created_ms FROM incidents WHERE id=?", (ev.incident_id,)
                ).fetchone()
            except sqlite3.Error:  # a metric is never worth an error on the writer thread
                continue
            if row is not None:
                hist.observe(max(0.0, ev.ts_ms - row[1]) / 1000, str(row[0]))
