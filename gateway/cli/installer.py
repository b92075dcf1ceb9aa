"""The installer's subcommands of ``edge-gateway``: simulate, doctor, adopt, backup, restore, demo.

Registered by :func:`add_commands` from ``gateway/cli/__init__.py``; the logic lives in the modules named.
"""

from __future__ import annotations

import argparse
import json
import sys

from drivers import DRIVERS
from gateway.cli.common import load_site
from gateway.install.demo import DEFAULT_WORKDIR, SITE_FILE


def cmd_simulate(args: argparse.Namespace) -> int:
    from gateway.install.mqtt_reach import BrokerUnreachable
    from gateway.install.scenarios import SCENARIOS, ScenarioUnavailable
    from gateway.install.simulator import Simulator, print_progress

    cfg = load_site(args.config)
    names = [n for s in args.scenario or [] for n in s.split(",") if n]
    if names == ["all"]:
        names = list(SCENARIOS)
    pw = cfg.mqtt.password.get_secret_value() if cfg.mqtt.password is not None else None
    try:
        sim = Simulator(
            cfg,
            args.host or cfg.mqtt.host,
            args.port or cfg.mqtt.port,
            rate=args.rate,
            scenarios=names,
            scenario_at=[args.scenario_delay + 5.0 * i for i in range(len(names))],
            seed=args.seed,
            speed=args.speed,
            username=cfg.mqtt.username,
            password=pw,
            on_progress=print_progress,
            progress_every_s=args.progress_s,
            connect_timeout_s=args.connect_timeout,
        )
    except ScenarioUnavailable as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    for p, at in zip(sim.planned, sim.scenario_at, strict=True):
        print(f"scenario +{at:.0f}s {p.name}: {p.title} -> expect {', '.join(p.expect)}", file=sys.stderr)
    try:
        sim.run(args.duration)
    except KeyboardInterrupt:
        sim.stop()
    except BrokerUnreachable as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        print(
            "simulate: check that the broker runs and mqtt.host / mqtt.port of the site file (or --host / --port)",
            file=sys.stderr,
        )
        return 1
    return 0 if sim.stats.failed == 0 else 1


def cmd_doctor(args: argparse.Namespace) -> int:
    from gateway.install.doctor import Options, exit_code, report, run_checks

    checks = run_checks(
        args.config,
        Options(store=args.store, ntp=args.ntp, broker_conf=args.broker_conf, timeout_s=args.timeout),
    )
    print(report(checks, as_json=args.json))
    return exit_code(checks)


def cmd_adopt(args: argparse.Namespace) -> int:
    from gateway.install.adopt import AdoptError, Adoption, adopt, from_store

    driver, address, friendly = args.driver, args.address, args.friendly_name
    try:
        if args.from_store:
            seen = from_store(args.from_store, args.address, driver)
            driver, address = seen["driver"], seen["address"]
            friendly = friendly or seen["friendly_name"]
            print(f"seen {seen['count']}x on {seen['last_topic']}; last values {seen['sample']}", file=sys.stderr)
        if not driver:
            print("adopt: give --driver (or --from-store STORE)", file=sys.stderr)
            return 2
        loc = {
            "building": args.building,
            "unit": args.unit,
            "floor": args.floor,
            "room": args.room,
            "parking_space": args.parking_space,
            "area": args.area,
        }
        text = adopt(
            args.config,
            Adoption(
                id=args.id,
                driver=driver,
                address=address,
                type=args.type,
                name=args.name or "",
                friendly_name=friendly,
                resident=args.resident,
                location=loc,
            ),
        )
    except AdoptError as exc:
        print(f"adopt: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"adopt: {exc}", file=sys.stderr)
        return 2
    print(f"added to {args.config}:\n{text}")
    print("the running gateway picks it up at the next reload: systemctl reload edge-gateway (SIGHUP)")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from gateway.install.backup import BackupError, backup

    cfg = load_site(args.config)
    try:
        info = backup(args.store or cfg.store.path, args.out)
    except BackupError as exc:
        print(f"backup: {exc}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "backup": str(info.path),
                "bytes": info.bytes,
                "schema_version": info.schema_version,
                "integrity": info.integrity,
                "seconds": round(info.seconds, 2),
                "rows": info.counts,
            },
            indent=2,
        )
    )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from gateway.install.backup import BackupError, restore, verify

    cfg = load_site(args.config)
    store = args.store or cfg.store.path
    try:
        version, counts = verify(args.from_)
        kept = restore(args.from_, store)
    except BackupError as exc:
        print(f"restore: {exc}", file=sys.stderr)
        return 1
    print(f"restored {args.from_} (schema v{version}, rows {counts}) to {store}")
    if kept is not None:
        print(f"the previous store is kept as {kept}")
    print("start the gateway: it migrates an older schema on start")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.install.demo import main_cli

    return main_cli(args)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("simulate", help="publish a simulated community's device traffic (and scenarios)")
    s.add_argument("--config", required=True)
    s.add_argument("--rate", type=float, default=20.0, help="messages per second (default 20)")
    s.add_argument(
        "--scenario",
        action="append",
        help="fall_night, fire_lane, door_propped, power_loss, sos, or all (repeatable / comma-separated)",
    )
    s.add_argument("--scenario-delay", type=float, default=5.0, help="seconds before the first scenario")
    s.add_argument("--duration", type=float, help="seconds (default: until Ctrl-C)")
    s.add_argument("--host", help="broker (default mqtt.host of the config)")
    s.add_argument("--port", type=int, help="broker port (default mqtt.port)")
    s.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second (day/night)")
    s.add_argument("--seed", type=int, default=8)
    s.add_argument("--progress-s", type=float, default=5.0, help="seconds between progress lines")
    s.add_argument(
        "--connect-timeout", type=float, default=5.0, help="seconds to reach the broker before giving up (default 5)"
    )
    s.set_defaults(fn=cmd_simulate)

    d = sub.add_parser("doctor", help="check config, broker, permissions, clock, disk, store, central store, ports")
    d.add_argument("--config", required=True)
    d.add_argument("--store", help="override store.path")
    d.add_argument("--ntp", help="NTP server to compare the clock with (only this host is contacted)")
    d.add_argument("--broker-conf", help="Mosquitto config to inspect (default /etc/mosquitto/mosquitto.conf)")
    d.add_argument("--timeout", type=float, default=3.0)
    d.add_argument("--json", action="store_true")
    d.set_defaults(fn=cmd_doctor)

    a = sub.add_parser("adopt", help="add a device (e.g. one seen, not configured) to the site file")
    a.add_argument("--config", required=True)
    a.add_argument("--from-store", help="take driver/address/friendly name from this store's unconfigured list")
    a.add_argument("--driver", choices=list(DRIVERS), help="ingest driver (with --from-store: the one that saw it)")
    a.add_argument("--address", required=True)
    a.add_argument("--id", required=True)
    a.add_argument("--type", required=True)
    a.add_argument("--name")
    a.add_argument("--friendly-name")
    a.add_argument("--building")
    a.add_argument("--unit")
    a.add_argument("--floor", type=int)
    a.add_argument("--room")
    a.add_argument("--parking-space")
    a.add_argument("--area")
    a.add_argument("--resident")
    a.set_defaults(fn=cmd_adopt)

    b = sub.add_parser("backup", help="consistent copy of the live store (SQLite online backup)")
    b.add_argument("--config", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--store")
    b.set_defaults(fn=cmd_backup)

    r = sub.add_parser("restore", help="verify a backup and put it in place (gateway stopped)")
    r.add_argument("--config", required=True)
    r.add_argument("--from", dest="from_", required=True)
    r.add_argument("--store")
    r.set_defaults(fn=cmd_restore)

    dm = sub.add_parser("demo", help="the example community with a broker and the simulator (./scripts/run)")
    dm.add_argument("--config", help="site file (default edge_config/examples/community.yaml)")
    dm.add_argument("--duration", type=float, help="stop after this many seconds (default: Ctrl-C)")
    dm.add_argument("--rate", type=float, default=20.0)
    dm.add_argument("--api-port", type=int, help="default 8080, or a free port when 8080 is taken")
    dm.add_argument("--broker", choices=["auto", "local", "embedded", "mosquitto"], default="auto")
    dm.add_argument(
        "--workdir",
        default=str(DEFAULT_WORKDIR),
        help=f"demo store, site copy and token (default {DEFAULT_WORKDIR}; then: status --config "
        f"{DEFAULT_WORKDIR / SITE_FILE})",
    )
    dm.add_argument("--fresh", action="store_true", help="start with an empty demo store")
    dm.set_defaults(fn=cmd_demo)
