"""Bounded waits for the benchmarks.

A benchmark that waits for messages, rows or a child process's report must not sit until an
outer time limit kills it without a word (issue 23: bench/ingest.py waited 600 s for messages
that had never been sent). Every wait here ends, once what it waits for stops arriving, with a
message that names what did not arrive and how much did, and exits non-zero: ``BenchFailed`` is
a ``SystemExit`` with a text, so Python prints it and exits with status 1, in a multiprocessing
child too (whose parent then reports that the child ended without its report).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

# Nothing new for this long means it is not coming. The slowest wait of a default run (the
# gateway's first group commit after start-up, a 200 ms batch) makes progress well within it.
STALL_S = 30.0


class BenchFailed(SystemExit):
    """A wait ended without what it waited for; the bench (or its child process) exits with status 1."""

    def __init__(self, message: str) -> None:
        super().__init__(f"BENCH FAILED: {message}")


def wait_for(
    what: str,
    count: Callable[[], int],
    expect: int,
    *,
    stall_s: float = STALL_S,
    limit_s: float | None = None,
    poll_s: float = 0.05,
    why: Callable[[], str] | None = None,
) -> int:
    """Wait until ``count()`` reaches ``expect``; returns the count.

    Fails when the count has not changed for ``stall_s`` seconds, or after ``limit_s`` in all,
    naming ``what`` did not arrive, how many did, and ``why()`` (e.g. the broker's counters)."""
    start = changed = time.monotonic()
    seen = count()
    while seen < expect:
        now = time.monotonic()
        if now - changed > stall_s or (limit_s is not None and now - start > limit_s):
            extra = why() if why is not None else ""
            raise BenchFailed(
                f"waited {now - start:.0f} s for {expect} {what}; {seen} arrived, none in the last "
                f"{now - changed:.0f} s" + (f"; {extra}" if extra else "")
            )
        time.sleep(poll_s)
        n = count()
        if n != seen:
            seen, changed = n, time.monotonic()
    return seen


def receive(conn: Any, proc: Any, what: str, *, limit_s: float) -> Any:
    """The one report a child process sends on ``conn`` (a multiprocessing Connection).

    Fails at once when the child ends without sending it (its own message, if it raised
    BenchFailed, is printed above), or after ``limit_s`` seconds: a backstop, since each child
    ends its own waits after STALL_S without progress."""
    deadline = time.monotonic() + limit_s
    while not conn.poll(0.2):
        if not proc.is_alive() and not conn.poll(0):
            raise BenchFailed(
                f"{what} did not arrive: the process ended (exit code {proc.exitcode}) without sending it"
            )
        if time.monotonic() > deadline:
            raise BenchFailed(f"waited {limit_s:.0f} s for {what}; it did not arrive (the process is still running)")
    return conn.recv()


SYS_TOPICS = ("received", "sent", "dropped")


def broker_counters(port: int, timeout: float = 2.0) -> str:
    """The broker's own publish counters since it started ($SYS/broker/publish/messages/*).

    They tell where missing messages went: never received from the publisher, received and not
    sent to the subscriber, or dropped (a full queue). Mosquitto refreshes them every
    sys_interval (10 s in deploy/mosquitto.conf), so they may lag by that much."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    values: dict[str, str] = {}
    got_all = threading.Event()

    def on_message(c: object, u: object, msg: Any) -> None:
        values[msg.topic.rsplit("/", 1)[1]] = msg.payload.decode()
        if len(values) == len(SYS_TOPICS):
            got_all.set()

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-sys-{os.getpid()}-{threading.get_ident()}")
    c.on_connect = lambda cl, *a: cl.subscribe([(f"$SYS/broker/publish/messages/{t}", 0) for t in SYS_TOPICS])
    c.on_message = on_message
    try:
        c.connect("127.0.0.1", port, 10)
    except OSError as exc:
        return f"the broker on port {port} did not answer ({exc})"
    c.loop_start()
    got_all.wait(timeout)
    c.disconnect()
    c.loop_stop()
    if not values:
        return f"the broker on port {port} published no $SYS/broker/publish/messages/* within {timeout:.0f} s"
    counts = ", ".join(f"{t} {values.get(t, '?')}" for t in SYS_TOPICS)
    return f"broker counters since it started: {counts} ($SYS/broker/publish/messages/#, every sys_interval)"


def exit_on_sigterm() -> None:
    """Let an outer limit's SIGTERM run the bench's clean-up. Python's default dies at once,
    skipping every ``finally``: the hung runs left their child processes, broker and temporary
    folder behind."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("BENCH FAILED: stopped by SIGTERM (an outer time limit?)"))
