"""SD-card wear: bytes the gateway writes to storage per day at a realistic site rate.

    .venv/bin/python bench/sd_wear.py [--rate 20] [--seconds 120]

Runs the gateway (full pipeline, group commit, synchronous=FULL) in its own process against a
private broker, publishes realistic mixed traffic at --rate messages per second for --seconds,
and reads the gateway process's /proc/self/io write_bytes (what reached the block layer: WAL,
checkpoints, fsyncs) to extrapolate a day. In the same run it measures the same traffic with
one transaction per message (no group commit) written straight to a store by a plain loop, to
show what grouping saves.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._wait import BenchFailed, exit_on_sigterm  # noqa: E402
from bench.ingest import gateway_proc, io_write_bytes, make_messages, run_phase  # noqa: E402


def one_tx_per_message(db: Path, n: int, rate: float) -> int:
    """The naive design: each reading its own fsync'd transaction, paced like the site."""
    from gateway.core import store as st

    s = st.Store(db, st.Quota(1 << 30, 1 << 20))
    c = s.conn
    start_io = io_write_bytes()
    start = time.time()
    for i in range(n):
        delay = start + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        c.execute("BEGIN IMMEDIATE")
        c.execute(
            "INSERT INTO readings(rx_ms, ts_ms, device_id, kind, vals, flags, msg_key, config_rev)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (i, i, "door-0001", "state", '{"contact":true,"battery":87,"linkquality":120}', 0, i, 1),
        )
        c.execute("COMMIT")
    s.close()
    return io_write_bytes() - start_io


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--seconds", type=float, default=120.0)
    args = ap.parse_args()
    exit_on_sigterm()

    from bench._site import write_bench_site
    from gateway.install.mosquitto import Mosquitto

    ctx = mp.get_context("spawn")
    n = int(args.rate * args.seconds)
    with tempfile.TemporaryDirectory(prefix="bench-wear-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "broker").start()
        try:
            site = write_bench_site(work, broker.port)
            messages = make_messages(site, n, seed=5)
            (commits, total, _rss, written), _sent, acked = run_phase(  # type: ignore[misc]
                ctx, gateway_proc, (str(site), n), broker.port, messages, args.rate
            )
        finally:
            broker.stop()
        conn = sqlite3.connect(work / "gateway.db")
        stored = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
        conn.close()
        per_day = written / args.seconds * 86400
        print(
            f"published {n}, acknowledged {acked}, committed {total}, stored {stored}; "
            f"{len(commits)} commits; gateway wrote {written / 1e6:.2f} MB in {args.seconds:.0f} s",
            flush=True,
        )
        if not acked == total == stored == n:  # bytes per message is only meaningful over all of them
            raise BenchFailed(f"published {n}: {acked} acknowledged, {total} committed, {stored} stored")
        naive = one_tx_per_message(work / "naive.db", min(n, int(args.rate * 30)), args.rate)
        naive_day = naive / min(args.seconds, 30) * 86400
        print(
            f"one transaction per message, same rate: {naive / 1e6:.2f} MB in {min(args.seconds, 30):.0f} s", flush=True
        )
        print(
            f"RESULT rate_msgs_per_s={args.rate:.0f} gb_written_per_day={per_day / 1e9:.2f} "
            f"naive_gb_per_day={naive_day / 1e9:.2f} bytes_per_msg={written / max(total, 1):.0f}"
        )


if __name__ == "__main__":
    main()
