"""The benchmarks' waits and counts (issue 23).

bench/ingest.py at its default 100,000 messages hung until an outer limit killed it: its publisher
queued every message in paho at once, MQTT packet identifiers are 16 bits, and paho refused each
publish whose identifier was still outstanding; unchecked, those messages were never sent, and
both bench processes waited for them. These tests check behaviour, not speed: the publisher gets
a PUBACK for more messages than there are packet identifiers, and every wait ends with a message
naming what did not arrive instead of waiting on.
"""

from __future__ import annotations

import multiprocessing as mp
import re
import sys
import time
from pathlib import Path

import pytest

from bench._wait import BenchFailed, receive, wait_for
from bench.ingest import bare_subscriber, publisher, queue_backlog
from gateway.install.mosquitto import Mosquitto
from tests.support import service_missing


def start_broker(directory: Path, extra: str = "") -> Mosquitto:
    try:
        return Mosquitto(directory, extra=extra).start()
    except RuntimeError as exc:
        service_missing(f"mosquitto executable ({exc})")
        raise


def test_a_stalled_count_ends_the_wait_naming_what_did_not_arrive() -> None:
    with pytest.raises(BenchFailed) as failed:
        wait_for("stored rows", lambda: 66_012, 100_000, stall_s=0.3, why=lambda: "broker dropped 0")
    message = str(failed.value.code)
    assert "for 100000 stored rows; 66012 arrived" in message
    assert message.endswith("broker dropped 0")
    # A SystemExit with a text: Python prints the text and exits with status 1.
    assert isinstance(failed.value, SystemExit)


def test_a_count_that_keeps_growing_is_waited_for_past_the_stall_time() -> None:
    start = time.monotonic()
    assert wait_for("rows", lambda: int((time.monotonic() - start) * 20), 20, stall_s=0.3) >= 20


def test_a_count_that_grows_too_slowly_ends_at_the_limit() -> None:
    start = time.monotonic()
    with pytest.raises(BenchFailed, match=r"for 1000000 rows; \d+ arrived"):
        wait_for("rows", lambda: int((time.monotonic() - start) * 20), 1_000_000, limit_s=0.5)


def test_a_child_that_ends_without_its_report_is_named() -> None:
    ctx = mp.get_context("spawn")
    out_r, _out_w = ctx.Pipe(duplex=False)
    child = ctx.Process(target=sys.exit, args=(3,))
    child.start()
    with pytest.raises(BenchFailed, match=r"the consumer's report did not arrive: .*\(exit code 3\)"):
        receive(out_r, child, "the consumer's report", limit_s=60)
    child.join()


@pytest.mark.broker
def test_the_ingest_publisher_delivers_more_messages_than_there_are_packet_identifiers(broker_dir: Path) -> None:
    # 100,000 (the bench's default) > 65,535: before the fix about a third were refused by paho and
    # the publisher waited for their PUBACKs until it was killed.
    n = 100_000
    broker = start_broker(broker_dir)
    ctx = mp.get_context("spawn")
    go_r, go_w = ctx.Pipe(duplex=False)
    out_r, out_w = ctx.Pipe(duplex=False)
    pub = ctx.Process(target=publisher, args=(broker.port, [("bench/test", b"x")] * n, 0.0, go_r, out_w))
    try:
        pub.start()
        go_w.send("go")
        sent, acked = receive(out_r, pub, "the publisher's report", limit_s=240)
        assert (len(sent), acked) == (n, n)
    finally:
        pub.join(10)
        if pub.is_alive():
            pub.terminate()
        broker.stop()


@pytest.mark.broker
def test_a_count_the_broker_dropped_ends_the_wait_naming_the_drop(broker_dir: Path) -> None:
    # The stock queue limit, small: the broker keeps 10 messages for the subscriber while it is
    # away and drops the rest, so the 100 it waits for can never all arrive.
    broker = start_broker(broker_dir, "max_queued_messages 10\nsys_interval 1\n")
    _ready_r, ready_w = mp.Pipe(duplex=False)
    _out_r, out_w = mp.Pipe(duplex=False)
    try:
        bare_subscriber(broker.port, ["t/#"], 0, ready_w, out_w, "bench-bare-test")  # register, leave
        queue_backlog(broker.port, [("t/x", b"m")] * 100)
        with pytest.raises(BenchFailed) as failed:
            bare_subscriber(broker.port, ["t/#"], 100, ready_w, out_w, "bench-bare-test", stall_s=2.5)
    finally:
        broker.stop()
    message = str(failed.value.code)
    assert "for 100 messages at the bare subscriber bench-bare-test;" in message, message
    assert re.search(r"dropped \d\d\b", message), message  # ~90 of the 100
