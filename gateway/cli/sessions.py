"""``edge-gateway signin-link`` and ``edge-gateway session list/revoke``: sign a person's phone in
without a token, and see or end the devices signed in (gateway/api/sessions.py). Same conventions
as ``token``: ``--config`` (and ``--store``), JSON records, the secret (here the link) as the last
line printed, written with one short ``BEGIN IMMEDIATE`` transaction while the gateway runs."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys

from gateway.cli.common import load_site


def cmd_signin_link(args: argparse.Namespace) -> int:
    """Issue a one-time sign-in link; the link is the LAST line printed (a QR code above it with --qr)."""
    from gateway.api.auth import ROLES
    from gateway.api.sessions import cli_issue_link, qr_terminal, signin_url

    cfg = load_site(args.config)
    member = cfg.staff_member(args.person)
    if member is None:
        print(f"unknown person {args.person!r} (a staff id from the site file)", file=sys.stderr)
        return 2
    role = args.role or member.role
    if role not in ROLES:
        print(f"unknown role {role!r}; roles: {', '.join(ROLES)}", file=sys.stderr)
        return 2
    grids = args.grid if args.grid is not None else list(member.grids)
    compounds = args.compound if args.compound is not None else list(member.compounds)
    for g in grids:
        if cfg.grid(g) is None:
            print(f"unknown grid {g!r}", file=sys.stderr)
            return 2
    for c in compounds:
        if cfg.compound(c) is None:
            print(f"unknown compound {c!r}", file=sys.stderr)
            return 2
    minutes = args.minutes or cfg.api.signin_link_minutes
    try:
        token = cli_issue_link(
            args.store or cfg.store.path,
            person=member.id,
            role=role,
            grids=grids,
            compounds=compounds,
            ttl_s=int(minutes * 60),
        )
    except (FileNotFoundError, sqlite3.Error) as exc:
        print(f"cannot issue the link: {exc}", file=sys.stderr)
        return 1
    url = signin_url(cfg, token)
    record = {"person": member.id, "role": role, "grids": grids, "compounds": compounds, "minutes": minutes}
    print(json.dumps(record, ensure_ascii=False))
    if args.qr:
        print(qr_terminal(url))
    print(f"one-time sign-in link for {member.id} (works once, within {minutes} min; give it to that person only):")
    print(url)
    return 0


def cmd_session_list(args: argparse.Namespace) -> int:
    from gateway.api.sessions import cli_list

    cfg = load_site(args.config)
    try:
        rows = cli_list(args.store or cfg.store.path, args.person, all_=args.all)
    except sqlite3.Error as exc:
        print(f"cannot read the store: {exc}", file=sys.stderr)
        return 1
    print(json.dumps([r.public() for r in rows], indent=2, ensure_ascii=False))
    return 0


def cmd_session_revoke(args: argparse.Namespace) -> int:
    from gateway.api.sessions import cli_revoke

    cfg = load_site(args.config)
    if (args.id is None) == (args.person is None):
        print("give a session id, or --person STAFF_ID for all of a person's devices", file=sys.stderr)
        return 2
    try:
        n = cli_revoke(args.store or cfg.store.path, session_id=args.id, person=args.person)
    except (FileNotFoundError, sqlite3.Error) as exc:
        print(f"cannot revoke: {exc}", file=sys.stderr)
        return 1
    print(f"revoked {n} session(s)" if n else "no active session matched", file=sys.stdout if n else sys.stderr)
    return 0 if n else 1


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sl = sub.add_parser("signin-link", help="issue a person a one-time sign-in link for the console (docs/console.md)")
    sl.add_argument("--config", required=True)
    sl.add_argument("--store")
    sl.add_argument("--person", required=True, help="staff id from the site file")
    sl.add_argument("--role", help="API role (default: the person's role in the site file)")
    sl.add_argument("--grid", action="append", help="limit to this grid (repeatable; default: the person's)")
    sl.add_argument("--compound", action="append", help="limit to this compound (repeatable; default: the person's)")
    sl.add_argument("--minutes", type=float, help="how long the link stays usable (default api.signin_link_minutes)")
    sl.add_argument("--qr", action="store_true", help="also draw the link as a QR code in the terminal")
    sl.set_defaults(fn=cmd_signin_link)

    se = sub.add_parser("session", help="devices signed in to the console (list, revoke)")
    se_sub = se.add_subparsers(dest="session_cmd", required=True)
    ls = se_sub.add_parser("list", help="signed-in devices (no secrets)")
    ls.add_argument("--config", required=True)
    ls.add_argument("--store")
    ls.add_argument("--person", help="only this person's devices")
    ls.add_argument("--all", action="store_true", help="also revoked and expired sessions")
    ls.set_defaults(fn=cmd_session_list)
    rv = se_sub.add_parser("revoke", help="sign out one device (session id) or all of a person's (--person)")
    rv.add_argument("id", nargs="?")
    rv.add_argument("--person")
    rv.add_argument("--config", required=True)
    rv.add_argument("--store")
    rv.set_defaults(fn=cmd_session_revoke)
