"""caseline: route calls (run), ask why (explain), look back (calls), and ops commands."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import AsyncExitStack
from pathlib import Path

from ari_app.config.files import ConfigError

DEFAULT_CONFIG = Path("config")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="caseline", description=__doc__)
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="config folder (default ./config)")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="route calls: ARI app, FastAGI server, ops API")
    run.add_argument("--greet", action="store_true", help="only answer, play a prompt, hang up")
    ex = sub.add_parser("explain", help="who is this caller and where would their call go now")
    ex.add_argument("number")
    calls = sub.add_parser("calls", help="the last decisions and outcomes (decision log)")
    calls.add_argument("--last", type=int, default=20)
    calls.add_argument("--json", action="store_true")
    sub.add_parser("check", help="validate every config file and exit")
    hist = sub.add_parser("history", help="call history")
    hist_sub = hist.add_subparsers(dest="history_command", required=True)
    imp = hist_sub.add_parser("import-cdr", help="bootstrap history from Asterisk CSV CDRs")
    imp.add_argument("file", type=Path)
    imp.add_argument("--inbound-context", action="append", default=None,
                     help="dialplan contexts of inbound calls (default: inbound, operators)")
    sub.add_parser("reload", help="reload routing config, directories and file CRM (ops API)")
    crm = sub.add_parser("crm", help="CRM cache")
    crm_sub = crm.add_subparsers(dest="crm_command", required=True)
    inv = crm_sub.add_parser("invalidate", help="forget cached CRM answers (ops API)")
    inv.add_argument("number", nargs="?")
    inv.add_argument("--all", action="store_true")
    dp = sub.add_parser("dialplan", help="dialplan")
    dp_sub = dp.add_subparsers(dest="dialplan_command", required=True)
    rel = dp_sub.add_parser("reload", help="check, install and reload dialplan/*.conf over AMI")
    rel.add_argument("--source", type=Path, default=Path("dialplan"))
    rel.add_argument("--install-dir", type=Path, default=Path("/etc/asterisk"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "run":
            from ari_app.main import run_forever
            return asyncio.run(run_forever(args.config, greet=args.greet))
        return asyncio.run(COMMANDS[args.command](args))
    except ConfigError as e:
        print(f"caseline: config error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


async def explain_command(args: argparse.Namespace) -> int:
    from ari_app.config.settings import load_settings
    from ari_app.core.explain import explain
    from ari_app.main import build_core

    settings = load_settings(args.config)
    async with AsyncExitStack() as stack:
        core = await build_core(settings, args.config, stack)
        routed = await core.router.route(args.number)
    p = routed.profile
    print(f"Number: {p.number or 'unidentified'}")
    print(f"History: {p.history.cls}" + (f" ({p.history.callback_kind})" if p.history.callback_kind else "")
          + f", owner {p.history.owner or '-'}, source {p.history.status}")
    record = p.crm.record
    print(f"CRM: {p.crm.status}" + (f", {record.client_id} {record.name!r}, ABC {record.abc or '-'}, "
                                    f"responsible {record.responsible or '-'}" if record else ""))
    env = p.environment
    print(f"Environment: {env.country or '-'} {env.region or ''} {env.timezone or ''}".rstrip()
          + (f", legal entity {env.legal_entity.company}" if env.legal_entity else ""))
    print(f"Case holder: {p.case_holder or '-'}")
    print(explain(routed.decision))
    return 0


async def calls_command(args: argparse.Namespace) -> int:
    from ari_app.config.settings import load_settings
    from ari_app.history.store import redis_client
    from ari_app.record.outcomes import last_decisions

    settings = load_settings(args.config)
    redis = redis_client(settings.redis.url, timeout_s=5)
    try:
        entries = await last_decisions(redis, max(1, min(args.last, 10_000)))
    finally:
        await redis.aclose()
    if args.json:
        print(json.dumps(entries, ensure_ascii=False, indent=1))
        return 0
    for e in reversed(entries):
        print(f"{e['at']}  {e['number']:>14}  {e['class']:<8} {e['service']:<12} prio {e['priority']:>3}  "
              f"{e['outcome']:<14} {e['answered_by'] or '-':<6} {e['steps']}")
    return 0


async def check_command(args: argparse.Namespace) -> int:
    from ari_app.config.live import LiveConfig
    from ari_app.config.settings import load_settings
    from ari_app.crm.factory import build_crm

    settings = load_settings(args.config)
    LiveConfig(args.config / settings.routing_file, args.config / settings.legal_entities_file)
    build_crm(settings.crm, args.config, None)
    print(f"{args.config}: config OK")
    return 0


async def history_command(args: argparse.Namespace) -> int:
    from ari_app.config.live import LiveConfig
    from ari_app.config.settings import load_settings
    from ari_app.core.dialplan import CDR_INBOUND_CONTEXTS
    from ari_app.history.cdr import import_cdr_file
    from ari_app.history.store import RedisHistoryStore, redis_client

    settings = load_settings(args.config)
    config = LiveConfig(args.config / settings.routing_file, args.config / settings.legal_entities_file)
    redis = redis_client(settings.redis.url, timeout_s=5)
    try:
        store = RedisHistoryStore.from_settings(redis, settings.history)
        report = await import_cdr_file(
            args.file, store, managers=config.managers_by_endpoint(),
            inbound_contexts=tuple(args.inbound_context or CDR_INBOUND_CONTEXTS),
            default_region=settings.numbers.default_region)
    finally:
        await redis.aclose()
    print(f"rows {report.rows}: inbound {report.inbound}, outbound {report.outbound}, "
          f"skipped {report.skipped}, bad {report.bad}, written {report.written}")
    for line, reason in report.problems[:20]:
        print(f"  line {line}: {reason}")
    return 0 if report.bad == 0 else 1


async def ops_request(args: argparse.Namespace, method: str, path: str,
                      body: dict | None = None) -> int:
    """A request to the running process's ops API, authenticated with CASELINE_OPS_TOKEN."""
    import aiohttp

    from ari_app.config.settings import load_settings

    settings = load_settings(args.config)
    url = f"http://{settings.ops.host}:{settings.ops.port}{path}"
    headers = {"Authorization": f"Bearer {settings.ops_token.get_secret_value()}"}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
            async with session.request(method, url, json=body, headers=headers) as answer:
                text = await answer.text()
                print(text)
                return 0 if answer.status < 400 else 1
    except aiohttp.ClientError as e:
        print(f"caseline: ops API at {url} not reachable: {type(e).__name__}", file=sys.stderr)
        return 1


async def reload_command(args: argparse.Namespace) -> int:
    return await ops_request(args, "POST", "/reload")


async def crm_command(args: argparse.Namespace) -> int:
    if not args.all and not args.number:
        print("caseline crm invalidate: give a NUMBER or --all", file=sys.stderr)
        return 2
    body = {"all": True} if args.all else {"number": args.number}
    return await ops_request(args, "POST", "/crm/invalidate", body)


async def dialplan_command(args: argparse.Namespace) -> int:
    from ari_app.config.settings import load_settings
    from ari_app.ops.dialplan_reload import reload_dialplan

    result = await reload_dialplan(load_settings(args.config), args.source, args.install_dir)
    print(result.summary())
    return 0 if result.ok else 1


COMMANDS = {"explain": explain_command, "calls": calls_command, "check": check_command,
            "history": history_command, "reload": reload_command, "crm": crm_command,
            "dialplan": dialplan_command}


if __name__ == "__main__":
    sys.exit(main())
