"""/metrics of a real gateway (real broker, store, ticket loop), linted like `promtool check metrics`:
prometheus_client's parser must read it, and the Prometheus naming rules must hold (help text,
``_total`` on counters only, base units, snake_case, no reserved suffixes or labels, consistent
histograms, no duplicates). The latency histograms are checked against what really happened: an
SOS sent through the broker, accepted and resolved through the API."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

import paho.mqtt.publish as publish
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway import __version__
from gateway.core import store as st
from gateway.core.histograms import SYNC_BATCH
from gateway.install.mosquitto import Mosquitto
from tests.api_harness import ApiServer, write_api_site
from tests.support import wait_until
from tests.sync_helpers import Feeder, readings
from tests.sync_servers import FakeInfluxV2

pytestmark = pytest.mark.broker

SNAKE = re.compile(r"^[a-z_][a-z0-9_]*$")
# promtool's non-base units (client_golang promlint) and abbreviations it refuses
NON_BASE_UNITS = (
    "milliseconds",
    "microseconds",
    "nanoseconds",
    "minutes",
    "hours",
    "days",
    "weeks",
    "kilobytes",
    "megabytes",
    "gigabytes",
    "percent",
    "celsius",
)
ABBREVIATIONS = ("ms", "us", "ns", "sec", "secs", "min", "mins", "hr", "kb", "mb", "gb", "pct", "perc")
TYPES_IN_NAME = ("counter", "gauge", "histogram", "summary")


def lint(text: str) -> list[str]:
    """Problems in a Prometheus text exposition (empty = clean)."""
    problems: list[str] = []
    declared: dict[str, str] = {}
    helped: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            if name in declared:
                problems.append(f"{name}: declared twice")
            declared[name] = typ
        elif line.startswith("# HELP "):
            parts = line.split(" ", 3)
            if len(parts) < 4 or not parts[3].strip():
                problems.append(f"{parts[2]}: no help text")
            else:
                helped.add(parts[2])
    for name, typ in declared.items():
        if name not in helped:
            problems.append(f"{name}: no help text")
        if not SNAKE.match(name):
            problems.append(f"{name}: not snake_case")
        words = name.split("_")
        for unit in NON_BASE_UNITS:
            if unit in words:
                problems.append(f"{name}: use a base unit (seconds, bytes, a 0..1 ratio), not {unit}")
        if any(w in ABBREVIATIONS for w in words[1:]):
            problems.append(f"{name}: abbreviated unit")
        if any(w in TYPES_IN_NAME for w in words):
            problems.append(f"{name}: the type in the name")
        if typ == "counter" and not name.endswith("_total"):
            problems.append(f"{name}: a counter's name ends with _total")
        if typ != "counter" and name.endswith("_total"):
            problems.append(f"{name}: _total on a {typ}")
        if typ not in ("histogram", "summary") and name.endswith(("_bucket", "_count", "_sum")):
            problems.append(f"{name}: reserved suffix on a {typ}")
        if typ in ("histogram", "summary") and not name.endswith(("_seconds", "_bytes")):
            problems.append(f"{name}: a {typ} of what? (name its base unit)")
    for fam in text_string_to_metric_families(text):  # raises on anything it cannot parse
        by_series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for s in fam.samples:
            for label in s.labels:
                if not SNAKE.match(label) or label.startswith("__"):
                    problems.append(f"{s.name}: label {label!r}")
            if "le" in s.labels and fam.type != "histogram":
                problems.append(f"{s.name}: label le outside a histogram")
            if math.isnan(s.value):
                problems.append(f"{s.name}: NaN")
            if fam.type == "histogram":
                key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                series = by_series.setdefault(key, {"buckets": []})
                if s.name.endswith("_bucket"):
                    series["buckets"].append((float(s.labels["le"]), s.value))
                elif s.name.endswith("_count"):
                    series["count"] = s.value
            if (fam.name.endswith("_info") or fam.type == "info") and s.value != 1:
                problems.append(f"{s.name}: an info metric's value is 1")
        for key, series in by_series.items():
            buckets = sorted(series["buckets"])
            counts = [n for _, n in buckets]
            if not buckets or buckets[-1][0] != math.inf:
                problems.append(f"{fam.name}{key}: no +Inf bucket")
            elif counts != sorted(counts) or counts[-1] != series.get("count"):
                problems.append(f"{fam.name}{key}: buckets not cumulative or +Inf != _count")
    return problems


def value(text: str, name: str, **labels: str) -> float:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise AssertionError(f"no sample {name}{labels}")


def test_the_linter_finds_what_promtool_finds() -> None:
    bad = "\n".join(
        [
            "# HELP x_requests requests",
            "# TYPE x_requests counter",
            "x_requests 1",
            "# HELP x_queue_total queued",
            "# TYPE x_queue_total gauge",
            "x_queue_total 1",
            "# HELP x_delay_milliseconds delay",
            "# TYPE x_delay_milliseconds gauge",
            "x_delay_milliseconds 3",
            "# HELP x_lag",
            "# TYPE x_lag gauge",
            'x_lag{Shard="a"} 1',
            "# HELP x_wait wait",
            "# TYPE x_wait histogram",
            'x_wait_bucket{le="1.0"} 3',
            'x_wait_bucket{le="+Inf"} 2',
            "x_wait_count 2",
            "x_wait_sum 1",
            "",
        ]
    )
    found = "\n".join(lint(bad))
    for expected in (
        "x_requests: a counter's name ends with _total",
        "x_queue_total: _total on a gauge",
        "x_delay_milliseconds: use a base unit",
        "x_lag: no help text",
        "label 'Shard'",
        "x_wait: a histogram of what?",
        "buckets not cumulative",
    ):
        assert expected in found, (expected, found)


def test_real_metrics_pass_the_lint_and_the_histograms_count_what_happened(
    private_broker: Mosquitto, tmp_path: Path
) -> None:
    srv = ApiServer(write_api_site(tmp_path, private_broker.port), tmp_path / "gateway.db").start()
    try:
        installer = srv.token("installer")
        ec1 = srv.token("eldercare_worker", name="ec1")
        with srv.client(installer) as c:
            before = c.get("/metrics").text
        assert lint(before) == []

        publish.single("zigbee2mqtt/b1/u1/sos", json.dumps({"action": "emergency"}), qos=1, port=private_broker.port)
        assert wait_until(lambda: srv.read("SELECT id FROM incidents WHERE type='sos'") != [], 15)
        (iid,) = srv.read("SELECT id FROM incidents WHERE type='sos'")[0]
        assert wait_until(lambda: srv.read("SELECT state FROM incidents WHERE id=?", (iid,)) == [("dispatched",)], 15)
        time.sleep(0.05)  # accept a moment later: the histogram records a time above zero
        with srv.client(ec1) as c:
            for body in ({"action": "accept"}, {"action": "resolve", "data": {"what_done": "已处理"}}):
                r = c.post(f"/api/v1/incidents/{iid}/actions", json=body)
                assert r.status_code == 200, r.text
        with srv.client(installer) as c:
            text = c.get("/metrics").text
    finally:
        srv.stop()

    assert lint(text) == []
    assert value(text, "edge_build_info", version=__version__) == 1
    # the default collectors are there
    assert value(text, "process_cpu_seconds_total") > 0
    assert value(text, "python_info") == 1

    # The histograms live as long as the process (other tests may have added to them): compare
    # with the scrape before the SOS.
    def grew(name: str, **labels: str) -> float:
        return value(text, name, **labels) - value(before, name, **labels)

    # the SOS: one alarm latency, within the bucket bounds; every committed message has a commit latency
    assert grew("edge_alarm_incident_latency_seconds_count", type="sos") == 1
    assert grew("edge_alarm_incident_latency_seconds_bucket", type="sos", le="10.0") == 1
    assert grew("edge_message_commit_latency_seconds_count", session="safety") >= 1
    commits = sum(grew("edge_message_commit_latency_seconds_count", session=s) for s in ("telemetry", "safety"))
    assert commits >= grew("edge_messages_committed_total") >= 1
    # a person accepted and resolved it: one observation each, in its category
    assert grew("edge_incident_time_to_accept_seconds_count", category="eldercare") == 1
    assert grew("edge_incident_time_to_resolve_seconds_count", category="eldercare") == 1
    assert grew("edge_incident_time_to_accept_seconds_sum", category="eldercare") > 0
    assert grew("edge_incident_time_to_accept_seconds_count", category="parking") == 0
    # the folded edge_pipeline_total{name} is gone; its parts are metrics of their own
    assert "edge_pipeline" not in text
    assert value(text, "edge_duplicate_messages_skipped_total") == 0
    assert value(text, "edge_store_used_bytes") > 0 < value(text, "edge_store_quota_bytes")


def test_each_write_to_the_central_store_is_one_sync_batch_observation() -> None:
    """Against a local server answering as the InfluxDB v2 write API: a refused write, then the
    accepted ones, each counted under its outcome."""
    fake = FakeInfluxV2()
    f = Feeder(fake.url)
    replies = iter([(503, {}, {"code": "unavailable", "message": "try later"})])
    fake.script = lambda lines: next(replies, (204, {}, None))
    ok, failed = SYNC_BATCH.count("ok"), SYNC_BATCH.count("failed")
    s = f.sender()
    try:
        f.batch(readings(50, st.now_ms()), incidents=1)
        s.flush = True
        s.start()
        assert wait_until(lambda: f.outbox_rows() == 0, 15)
    finally:
        s.stop()
        f.close()
        fake.close()
    assert SYNC_BATCH.count("failed") - failed == 1
    assert SYNC_BATCH.count("ok") - ok == len(fake.received) - 1 >= 1
