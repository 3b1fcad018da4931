"""caseline: route calls (run), ask why (explain), look back (calls), try a routing change on
past calls (replay), check the config, import CDRs, and ops commands.

Every error is one readable line on stderr and a non-zero exit (1; 2 for a usage error),
never a traceback (CASELINE_DEBUG=1 shows the traceback of an unexpected error).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import NoReturn

from ari_app.config.files import ConfigError

CONFIG_ENV = "CASELINE_CONFIG"
DEFAULT_CONFIG = Path("config")


class CliError(Exception):
    """A failure the user can act on: printed as one line, exit 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Usage errors in one line too (argparse prints the whole usage first)."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _duration(value: str) -> timedelta:
    from ari_app.config.history_settings import parse_duration

    try:
        return parse_duration(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{value!r}: {e}") from None


def _zone(value: str) -> tzinfo:
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(value)
    except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        raise argparse.ArgumentTypeError(f"unknown IANA time zone {value!r}") from None


def _instant(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not ISO 8601 (2026-06-15T12:00:00+03:00)") from None


def _request_id(value: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", value, re.ASCII):
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not a callback request id")
    return value


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="caseline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=None,
                   help=f"config folder (default: ${CONFIG_ENV}, else ./config)")
    # --config is also accepted after the command; the global one is the default
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, help_text: str, **kw: object) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, parents=[common], **kw)  # type: ignore[arg-type]

    run = command("run", "route calls: ARI app, FastAGI server, ops API")
    run.add_argument("--greet", action="store_true", help="only answer, play a prompt, hang up")
    ex = command("explain", "who is this caller and where would their call go now (or --at)")
    ex.add_argument("number")
    ex.add_argument("--at", type=_instant, default=None,
                    help="ISO 8601 moment to decide at (without an offset: the company's time zone)")
    ex.add_argument("--json", action="store_true", help="one JSON object")
    calls = command("calls", "the last decisions and outcomes (decision log)")
    calls.add_argument("--last", type=int, default=20)
    calls.add_argument("--json", action="store_true")
    rp = command("replay", "re-decide recent calls under a candidate routing policy (dry run)")
    rp.add_argument("--since", type=_duration, required=True, help="how far back: 90m, 24h, 7d")
    rp.add_argument("--routing", type=Path, default=None,
                    help="candidate routing file (default: the running one, which changes nothing)")
    rp.add_argument("--json", action="store_true", help="one JSON object")
    for name in ("check-config", "check"):
        chk = command(name, "validate every config file; exit 0 when valid, 1 when not"
                      + (" (alias of check-config)" if name == "check" else ""))
        chk.add_argument("--routing", type=Path, default=None, help="check this routing file instead")

    def import_args(imp: argparse.ArgumentParser) -> None:
        imp.add_argument("file", type=Path)
        imp.add_argument("--cdr-timezone", type=_zone, default=UTC,
                         help="zone of the CDR times (default UTC: cdr.conf usegmtime=yes)")
        imp.add_argument("--inbound-context", action="append", default=None,
                         help="dialplan contexts of inbound calls (default: caseline.yaml learning.inbound_contexts)")

    import_args(command("import-cdr", "bootstrap history from Asterisk CSV CDRs (Master.csv)"))
    hist = command("history", "call history")
    hist_sub = hist.add_subparsers(dest="history_command", required=True, parser_class=_Parser)
    import_args(hist_sub.add_parser("import-cdr", help="alias of `caseline import-cdr`", parents=[common]))
    num = command("numbering", "the Russian numbering plan (callers' regions and time zones)")
    num_sub = num.add_subparsers(dest="numbering_command", required=True, parser_class=_Parser)
    nimp = num_sub.add_parser("import", parents=[common],
                              help="refresh the numbering plan from the registry's CSV files")
    nimp.add_argument("files", type=Path, nargs="+", metavar="FILE",
                      help="registry files: ABC-3xx.csv ABC-4xx.csv ABC-8xx.csv DEF-9xx.csv")
    nimp.add_argument("--output", type=Path, default=None,
                      help="the plan file to write (default: caseline.yaml numbering_file)")
    command("reload", "reload routing config, directories and file CRM (ops API)")
    cb = command("callbacks", "callback requests: list them, or place one now (dial ID)")
    cb.add_argument("--json", action="store_true", help='one JSON object {"callbacks": [...], "count"}')
    cb.add_argument("--status", choices=("open", "dialling", "done", "failed", "expired"), default=None)
    cb.add_argument("--last", type=int, default=50, help="the newest N requests (default 50)")
    cb_sub = cb.add_subparsers(dest="callbacks_command", required=False, parser_class=_Parser)
    cbd = cb_sub.add_parser("dial", parents=[common],
                            help="place request ID now, whatever the hour (ops API)")
    cbd.add_argument("id", type=_request_id)
    crm = command("crm", "CRM cache")
    crm_sub = crm.add_subparsers(dest="crm_command", required=True, parser_class=_Parser)
    inv = crm_sub.add_parser("invalidate", help="forget cached CRM answers (ops API)", parents=[common])
    inv.add_argument("number", nargs="?")
    inv.add_argument("--all", action="store_true")
    dp = command("dialplan", "dialplan")
    dp_sub = dp.add_subparsers(dest="dialplan_command", required=True, parser_class=_Parser)
    rel = dp_sub.add_parser("reload", help="check, install and reload dialplan/*.conf (over ARI)", parents=[common])
    rel.add_argument("--source", type=Path, default=Path("dialplan"))
    rel.add_argument("--install-dir", type=Path, default=Path("/etc/asterisk"))
    return p


def config_dir(args: argparse.Namespace) -> Path:
    """--config, else $CASELINE_CONFIG, else ./config."""
    return args.config or Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop for `caseline run` (docs/benchmarks.md: it cut Caseline's CPU per call on the
    lab path); CASELINE_EVENT_LOOP=asyncio, or uvloop missing, keeps asyncio's own loop."""
    if os.environ.get("CASELINE_EVENT_LOOP", "uvloop") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.config = config_dir(args)
    try:
        if args.command == "run":
            from ari_app.main import run_forever
            with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                return runner.run(run_forever(args.config, greet=args.greet))
        return asyncio.run(COMMANDS[args.command](args))
    except ConfigError as e:
        print(f"caseline: config error: {_one_line(e)}", file=sys.stderr)
    except CliError as e:
        print(f"caseline: {_one_line(e)}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        from redis.exceptions import RedisError

        from ari_app.history.store import HistoryUnavailable

        if args.command == "run":  # the daemon's own log keeps the traceback, as a JSON line
            import logging
            logging.getLogger("caseline").critical("caseline run stopped", exc_info=True)
        if isinstance(e, RedisError | HistoryUnavailable):
            print(f"caseline: {args.command}: Redis unavailable: {_one_line(e)}", file=sys.stderr)
        elif os.environ.get("CASELINE_DEBUG"):
            raise
        else:
            print(f"caseline: {args.command} failed: {type(e).__name__}: {_one_line(e)[:300]}",
                  file=sys.stderr)
    return 1


# --- explain -----------------------------------------------------------------------------


def _decide_at(at: datetime | None, company_timezone: str) -> datetime | None:
    """--at as an aware instant; without an offset it is the company's wall time."""
    if at is None or at.tzinfo is not None:
        return at
    from zoneinfo import ZoneInfo

    return at.replace(tzinfo=ZoneInfo(company_timezone))


async def explain_command(args: argparse.Namespace) -> int:
    from ari_app.config.policy import load_policy
    from ari_app.config.settings import load_settings
    from ari_app.core.clock import FixedClock
    from ari_app.core.explain import explain, explain_data, holder_story
    from ari_app.main import build_core

    settings = load_settings(args.config)
    at = args.at
    if at is not None and at.tzinfo is None:
        at = _decide_at(at, load_policy(args.config / settings.routing_file).company.timezone)
    async with AsyncExitStack() as stack:
        core = await build_core(settings, args.config, stack, clock=FixedClock(at) if at else None)
        if core.router.region_names is not None:  # a second or so, worth it for one answer
            await asyncio.to_thread(core.router.region_names.load)
        now = core.router.clock.now()
        routed = await core.router.route(args.number)
    p, policy = routed.profile, routed.snapshot.policy
    data = explain_data(p, routed.decision, policy, now, crm_configured=core.crm is not None,
                        crm_record=routed.crm_record)
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=1))
        return 0
    print(f"Number: {p.number or 'unidentified'}" + (f" (as of {now.isoformat()})" if args.at else ""))
    print(f"History: {p.history.cls}" + (f" ({p.history.callback_kind})" if p.history.callback_kind else "")
          + f", owner {p.history.owner or '-'}, last contact {data['last_contact'] or '-'}, source {p.history.status}")
    record = p.crm.record
    print(f"CRM: {data['crm_status']}" + (f", {record.client_id} {record.name!r}, ABC {record.abc or '-'}, "
                                          f"responsible {record.responsible or '-'}" if record else ""))
    env = p.environment
    print(f"Environment: {env.country or '-'} {env.region or ''} {env.timezone or ''}".rstrip()
          + (f" (zone from {data['timezone_source'].replace('_', ' ')})" if data["timezone_source"] else "")
          + (f", local time {data['local_time']}" if data["local_time"] else "")
          + (" (night)" if data["night"] else "")
          + (f", legal entity {env.legal_entity.company}" if env.legal_entity else "")
          + (f" (part of {env.legal_entity.parent})" if env.legal_entity and env.legal_entity.parent else ""))
    print(f"Case holder: {p.case_holder or '-'} ({holder_story(p)})")
    print(explain(routed.decision))
    return 0


# --- decision log ------------------------------------------------------------------------


async def calls_command(args: argparse.Namespace) -> int:
    from ari_app.config.settings import load_settings
    from ari_app.history.connect import redis_for
    from ari_app.record.outcomes import last_decisions

    settings = load_settings(args.config)
    redis = redis_for(settings.redis, timeout_s=5)
    try:
        entries = await last_decisions(redis, max(1, min(args.last, 10_000)))
    finally:
        await redis.aclose()
    if args.json:
        print(json.dumps(entries, ensure_ascii=False, indent=1))
        return 0
    for e in reversed(entries):
        print(f"{e.get('at', '?')}  {e.get('number', '?'):>14}  {e.get('class', '?'):<8} "
              f"{e.get('service', '?'):<12} prio {e.get('priority', '?'):>3}  {e.get('outcome', '?'):<14} "
              f"{e.get('answered_by') or '-':<6} {e.get('steps', '')}"
              + (f"  talked: {e['talks']}" if e.get("talks") else ""))
    return 0


async def replay_command(args: argparse.Namespace) -> int:
    from ari_app.config.policy import load_policy
    from ari_app.config.settings import load_settings
    from ari_app.history.connect import redis_for
    from ari_app.record.replay import entries_since, replay

    settings = load_settings(args.config)
    # the candidate first: an invalid one is reported even when Redis is down
    candidate = load_policy(args.routing) if args.routing else None
    running = load_policy(args.config / settings.routing_file)
    since = datetime.now(UTC) - args.since
    redis = redis_for(settings.redis, timeout_s=5)
    try:
        entries = await entries_since(redis, since)
    finally:
        await redis.aclose()
    report = replay(entries, running, candidate or running, since)
    print(json.dumps(report.as_dict(), ensure_ascii=False, indent=1) if args.json else report.text())
    return 0


# --- config ------------------------------------------------------------------------------


async def check_command(args: argparse.Namespace) -> int:
    from ari_app.config.checks import check_config
    from ari_app.crm.factory import build_crm

    problems = check_config(args.config, routing=args.routing, check_crm=lambda settings, known: build_crm(
        settings.crm, args.config, None, known_person=known))
    for problem in problems:
        print(f"caseline: config error: {_one_line(problem)}", file=sys.stderr)
    if problems:
        return 1
    print(f"{args.config}: config OK")
    return 0


# --- history -----------------------------------------------------------------------------


async def import_cdr_command(args: argparse.Namespace) -> int:
    from ari_app.config.live import LiveConfig
    from ari_app.config.settings import load_settings
    from ari_app.history.cdr import CdrReport, import_cdr_file, learning_rules
    from ari_app.history.connect import redis_for
    from ari_app.history.store import HistoryUnavailable, RedisHistoryStore

    try:  # before anything else: a wrong path is the most likely mistake
        with args.file.open("rb"):
            pass
    except OSError as e:
        raise CliError(f"import-cdr: cannot read {args.file}: {e.strerror or type(e).__name__}") from None
    settings = load_settings(args.config)
    config = LiveConfig(args.config / settings.routing_file, args.config / settings.legal_entities_file,
                        numbering_path=args.config / settings.numbering_file)
    redis = redis_for(settings.redis, timeout_s=5)
    report = CdrReport()
    try:
        store = RedisHistoryStore.from_settings(redis, settings.history)
        rules = learning_rules(config.current.policy, settings)  # the live listener's rules
        if args.inbound_context:
            rules = replace(rules, inbound_contexts=tuple(args.inbound_context))
        await import_cdr_file(args.file, store, rules=rules, cdr_timezone=args.cdr_timezone,
                              report=report)
    except HistoryUnavailable as e:
        raise CliError(f"import-cdr: Redis unavailable after writing {report.written} calls "
                       f"({e}); importing the file again is harmless") from None
    except OSError as e:
        raise CliError(f"import-cdr: reading {args.file} failed after writing {report.written} calls: "
                       f"{e.strerror or type(e).__name__}") from None
    finally:
        await redis.aclose()
    calls = report.inbound + report.outbound
    not_stored = calls - report.written
    print(f"rows {report.rows}: inbound {report.inbound}, outbound {report.outbound}, merged {report.merged}, "
          f"skipped {report.skipped}, bad {report.bad}; written {report.written} calls"
          + (f" ({not_stored} older than the history retention, not stored)" if not_stored else ""))
    for line, reason in report.problems[:20]:
        print(f"  line {line}: {reason}")
    return 0 if report.bad == 0 else 1


async def numbering_command(args: argparse.Namespace) -> int:
    from ari_app.config.numbering import ImportReport, import_registry, write_plan
    from ari_app.config.settings import load_settings

    output = args.output or args.config / load_settings(args.config).numbering_file
    report = ImportReport()
    try:
        ranges = import_registry(args.files, report)
    except (OSError, ValueError) as e:
        detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise CliError(f"numbering import: cannot read {getattr(e, 'filename', None) or ''}: {detail}") from None
    if not ranges:
        raise CliError(f"numbering import: no ranges in {', '.join(map(str, args.files))} "
                       f"({report.summary()}); {output} left as it was")
    write_plan(output, ranges, [f.name for f in args.files])
    print(f"{report.summary()}\nwritten to {output}; `caseline reload` makes a running Caseline use it")
    for source, line, reason in report.bad[:20]:
        print(f"  {source}:{line}: {reason}")
    return 0 if not report.bad else 1


# --- ops API -----------------------------------------------------------------------------


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
    except (aiohttp.ClientError, TimeoutError) as e:
        raise CliError(f"ops API at {url} not reachable: {type(e).__name__}") from None


async def callbacks_command(args: argparse.Namespace) -> int:
    if args.callbacks_command == "dial":
        return await ops_request(args, "POST", f"/callbacks/{args.id}/dial")
    from ari_app.config.settings import load_settings
    from ari_app.history.connect import redis_for
    from ari_app.record.callbacks import CallbackStore

    settings = load_settings(args.config)
    redis = redis_for(settings.redis, timeout_s=5)
    try:
        found = await CallbackStore(redis).listing(max(1, min(args.last, 10_000)))
    finally:
        await redis.aclose()
    now = datetime.now(UTC)
    rows = [r.as_dict(now, mask_numbers=settings.logging.mask_numbers) for r in found]
    rows = [r for r in rows if args.status is None or r["status"] == args.status]
    if args.json:
        print(json.dumps({"callbacks": rows, "count": len(rows)}, ensure_ascii=False, indent=1))
        return 0
    if not rows:
        print("no callback requests" + (f" {args.status}" if args.status else ""))
    for r in reversed(rows):  # oldest first, like `caseline calls`
        due = f"due {r['due_at']}" if r["status"] == "open" else (r["result"] or "-")
        print(f"{r['filed_at']}  {r['id']}  {r['status']:<8} {r['number']:>14}  "
              f"holder {r['holder'] or '(operators)':<11} prio {r['priority']:>3}  "
              f"attempts {r['attempts']}  {due}  {r['reason']}")
    return 0


async def reload_command(args: argparse.Namespace) -> int:
    return await ops_request(args, "POST", "/reload")


async def crm_command(args: argparse.Namespace) -> int:
    if not args.all and not args.number:
        raise CliError("crm invalidate: give a NUMBER or --all")
    body = {"all": True} if args.all else {"number": args.number}
    return await ops_request(args, "POST", "/crm/invalidate", body)


async def dialplan_command(args: argparse.Namespace) -> int:
    from ari_app.config.settings import load_settings
    from ari_app.main import reload_dialplan_over_ari

    result = await reload_dialplan_over_ari(load_settings(args.config), args.source, args.install_dir)
    print(result.summary())
    return 0 if result.ok else 1


async def history_command(args: argparse.Namespace) -> int:
    return await import_cdr_command(args)  # `history import-cdr` is its only subcommand


COMMANDS = {"explain": explain_command, "calls": calls_command, "replay": replay_command,
            "check-config": check_command, "check": check_command, "import-cdr": import_cdr_command,
            "history": history_command, "numbering": numbering_command, "reload": reload_command, "crm": crm_command,
            "dialplan": dialplan_command, "callbacks": callbacks_command}


if __name__ == "__main__":
    sys.exit(main())
