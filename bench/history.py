"""Incident history benchmark: list and search latency on a year of incidents, and one export.

    .venv/bin/python bench/history.py [--incidents 100000] [--store PATH] [--requests 300] [--seed 1]

Generates --incidents incidents over the past year of the example community into a fresh store
(bench/history_store.py; or reuses --store when it exists), starts ``python -m gateway run`` on it
(ingest + API in one process, as deployed, with a private Mosquitto and no traffic), and from this
process, one request at a time over one keep-alive connection:

1. list: --requests GET /api/v1/history/incidents with filters drawn from the console's filter
   bar (category, type, state, building, grid, compound, assignee, SLA missed, a month, and
   combinations), half of them first pages with ``total=true`` (the console asks for the count
   once), half the following page through the cursor; tokens: an installer (whole site) and a
   property-staff member scoped to one compound.
2. search: --requests the same with ``q`` from notes people write (two-character Chinese words,
   which no trigram index can serve, longer phrases, Latin words, a rare tag), with and without
   other filters.
3. export: one .xlsx of a month of every incident (the monthly report), timed end to end.

Latency is the client's wall time per request (p50/p95/max). Last line:
RESULT incidents=... list_p95_ms=... search_p95_ms=... export_s=...
Goals: list p95 <= 200 ms and search p95 <= 500 ms at >= 100,000 incidents.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.history_store import DAY_MS, EXAMPLE, generate
from gateway.api import auth
from gateway.install.mosquitto import Mosquitto, free_port

FILTERS: list[list[tuple[str, Any]]] = [
    [],
    [("category", "parking")],
    [("category", "security"), ("category", "device_health")],
    [("type", "door_forced")],
    [("type", "parking_fire_lane")],
    [("state", "open")],
    [("state", "closed")],
    [("building", "b03")],
    [("building", "b11"), ("category", "security")],
    [("grid", "g05")],
    [("compound", "c2"), ("state", "closed")],
    [("assignee", "pm-c1-1")],
    [("assignee", "mt-01"), ("sla_missed", "true")],
    [("sla_missed", "true")],
    [("sla_missed", "false"), ("category", "parking")],
    [("category", "security"), ("building", "b07"), ("state", "closed"), ("sla_missed", "true")],
]
TERMS = ["挪车", "电池", "误报", "消防通道", "已通知物业维修", "门禁正常", "battery", "#999", "家属", "贴告知单"]


def _site(directory: Path, broker_port: int) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^(mqtt:\n  host: 127\.0\.0\.1\n  port: )1883$", rf"\g<1>{broker_port}", text, count=1)
    # one client asking back to back is far above a person's rate: lift the per-role limits
    text += "api:\n  rate_limits: {per_minute: {installer: 100000, property_staff: 100000}}\n"
    path = directory / "site.yaml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def _month(rng: random.Random, now: int) -> list[tuple[str, Any]]:
    start = now - rng.randrange(30, 360) * DAY_MS
    return [("from_ms", start), ("to_ms", start + 30 * DAY_MS)]


def _run(client: httpx.Client, tokens: list[str], rng: random.Random, n: int, now: int, search: bool) -> list[float]:
    times = []
    for _ in range(n):
        params = list(rng.choice(FILTERS))
        if rng.random() < 0.25:
            params += _month(rng, now)
        if search:
            params = [("q", rng.choice(TERMS))] + (params if rng.random() < 0.5 else [])
        headers = {"Authorization": f"Bearer {rng.choice(tokens)}"}
        first = rng.random() < 0.5
        if not first:  # the next page: ask for the first one untimed, then time the page after it
            r = client.get("/api/v1/history/incidents", params=params, headers=headers)
            r.raise_for_status()
            cursor = r.json()["next_cursor"]
            if cursor is not None:
                params.append(("cursor", cursor))
        else:
            params.append(("total", "true"))
        t0 = time.perf_counter()
        r = client.get("/api/v1/history/incidents", params=params, headers=headers)
        times.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
    return times


def _p(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[max(0, round(q * len(s)) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--incidents", type=int, default=100_000)
    ap.add_argument("--store", type=Path, default=None, help="reuse (or create) this store")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        d = Path(tmp)
        db = args.store or d / "gateway.db"
        now = int(time.time() * 1000)
        if not db.exists():
            g = generate(db, args.incidents, now_ms=now)
            print(f"store: {g.incidents} incidents, {g.events} events, {g.notes} notes ({g.seconds:.1f} s)")
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            n_incidents = int(conn.execute("SELECT count(*) FROM incidents").fetchone()[0])
        _, installer = auth.cli_create(db, role="installer", name="bench")
        _, staff = auth.cli_create(db, role="property_staff", name="pm-c1-1", compounds=["c1"])
        broker = Mosquitto(d / "broker").start()
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "run",
                "--config",
                str(_site(d, broker.port)),
                "--store",
                str(db),
                "--api-port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(d / "gateway.log", "w"),  # noqa: SIM115
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"gateway did not start: {(d / 'gateway.log').read_text()[-2000:]}")
                time.sleep(0.2)
            tokens = [installer, staff]
            with httpx.Client(base_url=base, timeout=60) as client:
                _run(client, tokens, rng, 20, now, False)  # warm-up: connections, page cache
                lst = _run(client, tokens, rng, args.requests, now, False)
                srch = _run(client, tokens, rng, args.requests, now, True)
                month = [("from_ms", now - 60 * DAY_MS), ("to_ms", now - 30 * DAY_MS)]
                t0 = time.perf_counter()
                r = client.get(
                    "/api/v1/reports/incidents.xlsx", params=month, headers={"Authorization": f"Bearer {installer}"}
                )
                export_s = time.perf_counter() - t0
                r.raise_for_status()
            for name, xs in (("list", lst), ("search", srch)):
                p50, p95 = statistics.median(xs), _p(xs, 0.95)
                print(f"{name}: n={len(xs)} p50={p50:.1f} ms p95={p95:.1f} ms max={max(xs):.1f} ms")
            print(f"export: one month as .xlsx, {len(r.content) / 1024:.0f} KiB in {export_s:.2f} s")
            print(
                f"RESULT incidents={n_incidents} list_p95_ms={_p(lst, 0.95):.1f} "
                f"search_p95_ms={_p(srch, 0.95):.1f} export_s={export_s:.2f}"
            )
        finally:
            proc.terminate()
            proc.wait(20)
            broker.stop()


if __name__ == "__main__":
    main()
