"""In-process harness for the ticket tests: the rules harness (real store, pipeline, RuleEngine,
controllable clock) plus the TicketProcessor, on a small site with offices, departments, rosters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_config import load_config
from gateway.channels.stage import ChannelStage
from gateway.core import incidents as inc
from gateway.tickets import lifecycle as lc
from gateway.tickets.processor import TicketProcessor
from tests.rules_harness import T0, FakeClock, Harness, write_rules_site

EXTRA_STAFF = """\
  - {id: gw2, name: 网格员二, role: grid_worker}
  - {id: ps2, name: 物业夜班, role: property_staff}
  - {id: ec2, name: 养老护理员二, role: eldercare_worker}
  - {id: mt1, name: 维修工, role: maintenance}
  - {id: co1, name: 居委会, role: community_office}
  - {id: so1, name: 街道指挥中心, role: street_office}
  - {id: fire1p, name: 消防站值班, role: department}
  - {id: health1p, name: 卫生中心值班, role: department}
  - {id: police1p, name: 派出所值班, role: department}
"""
EXTRA_TEAMS = """\
  - {id: eldercare, name: 养老服务队, kind: eldercare, members: [ec1, ec2]}
  - {id: maint, name: 维护组, kind: maintenance, members: [mt1]}
  - {id: office, name: 居委会, kind: community_office, members: [co1]}
  - {id: street, name: 街道, kind: street_office, members: [so1]}
  - {id: dept-fire, name: 消防救援站, kind: department, department: fire, members: [fire1p]}
  - {id: dept-health, name: 卫生服务中心, kind: department, department: health, members: [health1p]}
  - {id: dept-police, name: 派出所, kind: department, department: police, members: [police1p]}
"""
TICKETS = """\
tickets:
  rosters:
    - team: duty1
      shifts:
        - {start: "08:00", end: "20:00", members: [ps1]}
        - {start: "20:00", end: "08:00", members: [ps2]}
    - team: eldercare
      shifts:
        - {days: [1, 2, 3, 4, 5], start: "08:00", end: "18:00", members: [ec1, ec2]}
        - {start: "18:00", end: "08:00", members: [ec2]}
  sla:
    - {category: eldercare, severity: critical, accept_s: 120, on_site_s: 900, resolve_s: 3600,
       escalate_every_s: 120, renotify_s: 60}
    - {category: parking, accept_s: 1800, escalate_every_s: 600}
    - {category: security, accept_s: 300, on_site_s: 1200, resolve_s: 7200, escalate_every_s: 300}
{extra}
"""


def write_ticket_site(directory: Path, *, extra: str = "", gateway_id: str = "gw-tk") -> Path:
    path = write_rules_site(directory, gateway_id=gateway_id)
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        "  - {id: gw1, name: 网格员一, role: grid_worker}\n",
        "  - {id: gw1, name: 网格员一, role: grid_worker}\n" + EXTRA_STAFF,
    )
    text = text.replace("\nrules:\n", "\n" + EXTRA_TEAMS + "rules:\n", 1)
    # a second grid and building so "grid worker" routing has two answers
    text = text.replace(
        "    - {id: g1, name: 第一网格, households: 200, grid_worker: gw1}\n",
        "    - {id: g1, name: 第一网格, households: 200, grid_worker: gw1}\n"
        "    - {id: g2, name: 第二网格, households: 200, grid_worker: gw2}\n",
    )
    text = text.replace(
        "        - {id: b3, name: 3号楼, grid: g1, floors: 6, units: [{id: u1, name: 1单元}]}\n",
        "        - {id: b3, name: 3号楼, grid: g1, floors: 6, units: [{id: u1, name: 1单元}]}\n"
        "        - {id: b4, name: 4号楼, grid: g2, floors: 6, units: [{id: u1, name: 1单元}]}\n",
    )
    text += "\n" + TICKETS.replace("{extra}", extra)
    path.write_text(text, encoding="utf-8")
    return path


class TicketHarness(Harness):
    """Harness + TicketProcessor. ``synced`` controls what the clock guard believes about NTP."""

    def __init__(self, directory: Path, *, extra: str = "", clock: FakeClock | None = None) -> None:
        self.synced = True
        cfg = load_config(write_ticket_site(directory, extra=extra))
        super().__init__(directory, cfg=cfg, clock=clock)

    def open(self) -> None:
        super().open()
        self.tickets = TicketProcessor(self.cfg, mono=self.clock.mono, clock_synced=lambda: self.synced)
        self.pipeline.stages.append(self.tickets)
        self.pipeline.stages.append(ChannelStage(self.cfg))  # the chain's order: tickets, then channels

    @property
    def ctx(self) -> lc.TicketContext:
        return self.tickets.ctx

    def call(self, fn: Any) -> Any:
        fut = self.pipeline.call(fn)
        self.pipeline.run_once()
        return fut.result(timeout=5)

    def act(self, incident_id: str, action: str, *, actor: str, role: str, **kw: Any) -> dict[str, Any]:
        ctx = self.ctx
        return self.call(  # type: ignore[no-any-return]
            lambda c, r, now: lc.apply_action(
                c, r, incident_id, action, actor=actor, role=role, now_ms=now, ctx=ctx, **kw
            )
        )

    def manual(self, **kw: Any) -> dict[str, Any]:
        ctx = self.ctx
        kw.setdefault("type", "report")
        kw.setdefault("severity", "major")
        kw.setdefault("description", "居民来电")
        kw.setdefault("actor", "co1")
        kw.setdefault("role", "community_office")
        return self.call(lambda c, r, now: lc.create_manual(c, r, now_ms=now, ctx=ctx, **kw))  # type: ignore[no-any-return]

    def incident(self, incident_id: str) -> dict[str, Any]:
        return lc.snapshot(self.store.conn, incident_id)

    def timeline(self, incident_id: str) -> list[dict[str, Any]]:
        return [e.as_feed() for e in inc.events(self.store.conn, 0, 100_000) if e.incident_id == incident_id]

    def kinds(self, incident_id: str) -> list[str]:
        return [
            e["kind"] if e["kind"] != "state_changed" else "->" + e["data"]["to"] for e in self.timeline(incident_id)
        ]


__all__ = ["T0", "FakeClock", "TicketHarness", "write_ticket_site"]
