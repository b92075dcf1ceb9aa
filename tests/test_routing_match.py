"""The life-safety topic check (one prefix tree over all safety filters) agrees with MQTT's own
matching rules (paho's topic_matches_sub) for wildcards, '$' topics and the parent of '#'."""

from __future__ import annotations

import itertools

from paho.mqtt.client import topic_matches_sub

from gateway.ingest.routing import Routing

FILTERS = [
    "application/+/device/0000000000000005/event/up",
    "zigbee2mqtt/sos-+",
    "zigbee2mqtt/sos-b1",
    "edge/native/+/+",
    "alarms/#",
    "+/fall",
    "$SYS/broker/x",
]
TOPICS = [
    "application/1/device/0000000000000005/event/up",
    "application/1/device/0000000000000006/event/up",
    "zigbee2mqtt/sos-b1",
    "zigbee2mqtt/sos-+",
    "edge/native/dev1/state",
    "edge/native/dev1",
    "alarms",
    "alarms/a/b",
    "x/fall",
    "$SYS/fall",
    "$SYS/broker/x",
    "a/b/fall",
    "",
]


def test_safety_matcher_agrees_with_paho() -> None:
    for k in range(len(FILTERS) + 1):
        for subset in itertools.combinations(FILTERS, k):
            r = Routing("gw", [], {}, set(), {})
            r._safety_filters = list(subset)
            for topic in TOPICS:
                want = any(topic_matches_sub(f, topic) for f in subset)
                assert r.is_safety_topic(topic) is want, (subset, topic)
                assert r.is_safety_topic(topic) is want  # cached answer
