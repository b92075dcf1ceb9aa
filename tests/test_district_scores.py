"""The reader thread that sends the quarter's scores (gateway/district.py): computed on its own
connection, handed to the writer, in the outbox as edge_score / edge_department points (prio 0)."""

from __future__ import annotations

import threading
from pathlib import Path

from gateway.district import ScoreSnapshots
from tests.district_sim import SPECS, SimGateway, run_day


def test_scores_reach_the_outbox_through_the_writer(tmp_path: Path) -> None:
    h = SimGateway(tmp_path / "gw", SPECS[0])
    run_day(h)
    stop = threading.Event()

    def writer() -> None:  # the pipeline thread: runs what the reader thread hands it
        while not stop.is_set():
            h.pipeline.run_once()
            stop.wait(0.01)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    snaps = ScoreSnapshots(h.db, h.cfg, h.outbox, call=h.pipeline.call, clock=lambda: h.clock.wall_ms)
    try:
        n = snaps.run_once()
    finally:
        stop.set()
        t.join(5)
        snaps.stop()
    lines = [r[0] for r in h.store.conn.execute("SELECT line FROM outbox WHERE prio=0 AND (line LIKE 'edge_score,%'"
                                                " OR line LIKE 'edge_department,%')")]  # fmt: skip
    assert n == len(lines) > 0
    company = [x for x in lines if "kind=property_company" in x and "period=2026-Q1" in x]
    assert len(company) == 1 and "score=" in company[0] and "on_site_p50_s=" in company[0]
    assert {x.split("department=")[1].split(",")[0] for x in lines if x.startswith("edge_department,")} == {
        "fire", "health", "police"}  # fmt: skip
    h.close()
