"""Call rate and post-dial delay through the real lab: plain dialplan vs Caseline.

SIPp callers, short calls (answer, 200 ms, BYE), no RTP. Paths:
  plain   (a) dialplan Dial() to a SIPp phone, no Caseline (service 9300, bench/asterisk/bench.conf)
  holder  (b) Caseline routes an A client to their manager's phone (mgr1); file CRM, warm cache
  queue   (c) Caseline routes a new caller (a different number every call) into a queue
  plainq      control for (c): the same queue reached by dialplan alone (service 9301)
  plainset    (a) after 30 Set() priorities: what a dialplan walker's steps cost (service 9302)
  agi, agiq   (b) and (c) through Caseline's FastAGI front (service 9100): the same decision,
              acted on by dialplan Dial()/Queue() instead of ARI
  crm0, crm50 (b) with an HTTP CRM that answers in 0 / 50 ms, a different number every call
              (every call misses the CRM cache and waits for the CRM)

Two phases, one process:
  ceiling: for each path in --plan, its rates in ascending order; a rate
           "holds" when at most 0.1 % of its calls fail; a path stops at its first failing
           rate (one rate past the ceiling is enough to know it).
  pdd:     every path in --pdd-paths at each rate of --pdd-rates ("half": half of the
           highest rate (a) held; 50: one every path holds), to compare post-dial delay.
PDD is INVITE -> first 180/183/200 on the wire between the callers and Asterisk, from a
tcpdump capture (microseconds; bench/sip_capture.py); SIPp's own response-time trace, which
moves in 4 ms steps here, is kept beside it as pdd_sipp_ms. For each
run, the CPU seconds every process used (Asterisk, Caseline, Redis, SIPp) are read from
/proc, so a ceiling can be explained. Results: JSON in --out and one line per run on stdout.

  .venv/bin/python bench/call_rate.py                      # the full run (~1 h)
  .venv/bin/python bench/call_rate.py --plan "holder=100,125" --pdd-paths "" --seconds 30
  .venv/bin/python bench/call_rate.py --smoke      # seconds: the runner cannot rot
  .venv/bin/python bench/call_rate.py --tree base=/tmp/caseline-base \
      --plan "holder@base=100 holder=100 agi@base=100 agi=100" --pdd-paths ""
                                                   # a lever's before/after in one run
  .venv/bin/python bench/call_rate.py --plan "holder=190" --pdd-paths "" \
      --set admission.max_calls_in_progress=30       # caseline.yaml values for the run (overload)
A path named `<path>@<name>` runs Caseline from the checkout `--tree <name>=DIR` names (e.g.
`git worktree add /tmp/caseline-base <commit before the lever>`), with that checkout's
config/ and the same Python: the code before a change and after it, side by side on the same
Asterisk in one run.
Needs the lab (`scripts/lab up`) and nobody else using it. CASELINE_BENCH_KEEP_PCAP=1 keeps
each run's capture in the SIPp trace folder (printed at the end) instead of deleting it.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from aiohttp import web

PROJECT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT), str(PROJECT / "scripts")]
from labkit import asterisk as lab_asterisk  # noqa: E402
from labkit import paths as lab_paths  # noqa: E402
from labkit import scenarios, sipp  # noqa: E402
from labkit.caseline_process import CaselineProcess  # noqa: E402
from labkit.config_copy import copy_config  # noqa: E402
from labkit.redis_server import RedisServer  # noqa: E402

from bench.sip_capture import Capture, post_dial_delays  # noqa: E402

MAX_FAILED_PCT = 0.1
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class BenchPath:
    service: str  # the number SIPp dials
    number: str | None  # the caller's number, or None: a fresh number on every call
    crm_delay_ms: float | None = None  # None: the shipped file CRM; else the bench HTTP CRM
    dialplan_only: bool = False  # bench.conf routes it without Caseline


PATHS = {
    "plain": BenchPath("9300", "+79161234567", dialplan_only=True),
    "holder": BenchPath("100", "+79161234567"),  # an A client of mgr1 in config/clients.yaml
    "queue": BenchPath("100", None),
    "plainq": BenchPath("9301", None, dialplan_only=True),
    "plainset": BenchPath("9302", "+79161234567", dialplan_only=True),  # (a) after 30 Set()s
    "agi": BenchPath("9100", "+79161234567"),  # (b) through the FastAGI front + dialplan Dial
    "agiq": BenchPath("9100", None),  # (c) through the FastAGI front
    "crm0": BenchPath("100", None, crm_delay_ms=0),
    "crm50": BenchPath("100", None, crm_delay_ms=50),
}


class FreshNumbers:
    """Numbers nobody has called from yet (+7 999 ...), unique across the whole run."""

    def __init__(self) -> None:
        self.next = 0

    def take(self, count: int) -> list[str]:
        start, self.next = self.next, self.next + count
        return [f"+7999{n:07d}" for n in range(start, start + count)]


# --- the bench CRM: our HTTP contract (docs/crm-http-contract.md), a fixed delay --------------

async def start_bench_crm(delay_ms: float) -> tuple[web.AppRunner, str]:
    """Every number is an A client of mgr1, answered after `delay_ms`."""
    async def client(request: web.Request) -> web.Response:
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        return web.json_response({"id": request.match_info["number"], "name": "Bench client",
                                  "status": "active", "abc": "A", "responsible": "mgr1"})

    app = web.Application()
    app.router.add_get("/clients/{number}", client)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/clients/{{number}}"


# --- CPU per process ----------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its reaped children, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / TICKS


class CpuMeter:
    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = {name: cpu_seconds(pid) for name, pid in pids.items()}
        self.started = time.monotonic()

    def percent(self, extra: dict[str, float] | None = None) -> dict[str, float]:
        wall = time.monotonic() - self.started
        used = {name: cpu_seconds(pid) - self.start[name] for name, pid in self.pids.items()}
        used.update(extra or {})
        return {name: round(100 * seconds / wall, 1) for name, seconds in used.items()}


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process, from /proc/<pid>/status (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class RssMeter:
    """RSS at the start, the most seen (sampled every ~5 s) and at the end of a run: an
    overload must leave Caseline's memory flat and Asterisk's bounded."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.seen: dict[str, list[float]] = {name: [] for name in pids}
        self.sample()

    def sample(self) -> None:
        for name, pid in self.pids.items():
            if (value := rss_mib(pid)) is not None:
                self.seen[name].append(value)

    def summary(self) -> dict[str, dict[str, float]]:
        return {name: {"start": round(v[0], 1), "max": round(max(v), 1), "end": round(v[-1], 1)}
                for name, v in self.seen.items() if v}


# --- one run ------------------------------------------------------------------------------

class Lab:
    """Caseline (configured for one CRM kind), Redis and the SIPp phones of the bench."""

    def __init__(self, workdir: Path, redis: RedisServer, *, caseline_on_plain: bool,
                 settings: dict[str, object] | None = None, trees: dict[str, Path] | None = None) -> None:
        self.workdir = workdir
        self.trees = trees or {}  # name -> the checkout `<path>@<name>` runs Caseline from
        self.settings = settings or {}  # "section.key" -> value, over the bench's caseline.yaml
        self.redis = redis
        self.phones = [sipp.Phone(name, workdir).start() for name in ("mgr1", "op1", "op2", "sup1")]
        self.caseline: CaselineProcess | None = None
        self.crm: web.AppRunner | None = None
        self.crm_delay_ms: float | None = None  # of the running Caseline
        self.tree: Path | None = None  # of the running Caseline: None is this checkout
        self.fresh = FreshNumbers()
        self.caseline_on_plain = caseline_on_plain
        self.starts = 0

    async def caseline_for(self, crm_delay_ms: float | None, tree: Path | None = None) -> None:
        if self.caseline is not None and (crm_delay_ms, tree) == (self.crm_delay_ms, self.tree):
            return
        await self.stop_caseline()
        self.starts += 1
        folder = self.workdir / f"config-{self.starts}"
        # The bench measures routing cost: overlapping calls of one client must not turn the
        # manager "busy", and queued calls go to benchq (bench/asterisk/queues_bench.conf).
        config = copy_config(folder, queues__operators__asterisk_queue="benchq",
                             source=(tree or lab_paths.PROJECT) / "config")
        settings = yaml.safe_load((config / "caseline.yaml").read_text())
        settings["calls"]["one_call_per_person"] = False
        if crm_delay_ms is not None:
            self.crm, url = await start_bench_crm(crm_delay_ms)
            settings["crm"] = {"adapter": "http", "budget_ms": 300, "cache_ttl_s": 60,
                               "http": {"url_template": url}}
        for dotted, value in self.settings.items():
            section, _, key = dotted.rpartition(".")
            node = settings
            for part in filter(None, section.split(".")):
                node = node.setdefault(part, {})
            node[key] = value
        (config / "caseline.yaml").write_text(yaml.safe_dump(settings))
        self.caseline = CaselineProcess(self.workdir, [], config,
                                        extra_env={"CASELINE_REDIS_URL": self.redis.url},
                                        project=tree)
        self.crm_delay_ms, self.tree = crm_delay_ms, tree
        await self.caseline.registered()

    async def stop_caseline(self) -> None:
        if self.caseline is not None:
            self.caseline.stop()
            self.caseline = None
        if self.crm is not None:
            await self.crm.cleanup()
            self.crm = None

    def pids(self) -> dict[str, int]:
        out = {"asterisk": lab_asterisk.pid() or 0, "redis": self.redis.process.pid}
        if self.caseline is not None:
            out["caseline"] = self.caseline.process.pid
        for phone in self.phones:
            if phone.process is not None:
                out[f"sipp_{phone.name}"] = phone.process.pid
        return out

    async def close(self) -> None:
        await self.stop_caseline()
        for phone in self.phones:
            phone.stop()


async def run_rate(lab: Lab, path_name: str, rate: float, seconds: float) -> dict:
    base_name, _, tree_name = path_name.partition("@")
    path = PATHS[base_name]
    tree = lab.trees[tree_name] if tree_name else None
    if not path.dialplan_only:
        await lab.caseline_for(path.crm_delay_ms, tree)
    elif not lab.caseline_on_plain:
        await lab.stop_caseline()  # the baseline: Asterisk with nobody attached
    elif lab.caseline is None or lab.tree != tree:
        await lab.caseline_for(None, tree)
    workdir = lab.workdir
    calls = max(1, int(rate * seconds))
    name = f"{path_name.replace('@', '_')}-{rate:g}"
    numbers = [path.number] * calls if path.number else lab.fresh.take(calls)
    (workdir / f"{name}.xml").write_text(scenarios.bench_caller())
    (workdir / f"{name}.csv").write_text("SEQUENTIAL\n" + "".join(f"{n};\n" for n in numbers))
    capture = Capture(workdir / f"{name}.pcap", sipp.CALLER_IP)
    meter = CpuMeter(lab.pids())
    memory = RssMeter({k: v for k, v in lab.pids().items() if k in ("asterisk", "caseline")})
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        "sipp", sipp.ASTERISK, "-sf", f"{name}.xml", "-inf", f"{name}.csv", "-s", path.service,
        "-i", sipp.CALLER_IP, "-p", str(sipp.free_udp_port(sipp.CALLER_IP)), "-m", str(calls),
        "-r", f"{rate:g}", "-rp", "1000", "-l", "5000", "-timer_resol", "1", "-nostdin",
        "-timeout", f"{seconds + 60:.0f}s",
        "-trace_stat", "-fd", "2", "-stf", f"{name}.stat.csv", "-trace_rtt", "-rtt_freq", "1",
        "-trace_err", "-error_file", f"{name}.errors", "-max_socket", "5000",
        cwd=workdir, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    caller_cpu = 0.0
    aborted = False
    queued: dict[str, int] = {}
    tick = 0
    while process.returncode is None:  # the caller's CPU must be read before it is reaped
        caller_cpu = cpu_seconds(process.pid) or caller_cpu
        tick += 1
        if tick % 5 == 0:  # every ~5 s: which of Asterisk's task queues back up
            for queue, depth in (await asyncio.to_thread(taskprocessor_queues)).items():
                queued[queue] = max(depth, queued.get(queue, 0))
            memory.sample()
        try:
            await asyncio.wait_for(process.wait(), 1.0)
        except TimeoutError:
            pass
        # A rate that already lost more than the allowed share cannot hold: stop early
        # instead of waiting out a collapse (SIPp writes its counters every -fd seconds).
        lost = read_stats(workdir / f"{name}.stat.csv").get("FailedCall(C)", 0)
        if process.returncode is None and lost > calls * MAX_FAILED_PCT / 100:
            aborted = True
            process.terminate()
    cpu = meter.percent({"sipp_caller": caller_cpu})
    memory.sample()
    elapsed = time.monotonic() - started
    packets = capture.stop()
    wire_pdd = post_dial_delays(capture.path)
    if not os.environ.get("CASELINE_BENCH_KEEP_PCAP"):
        capture.path.unlink()  # ~5 KB per call
    stats = read_stats(workdir / f"{name}.stat.csv")
    sipp_pdd = read_rtt(workdir)
    for f in workdir.glob("*_rtt.csv"):
        f.rename(workdir / f"{name}.rtt.done")
    ok, failed = stats.get("SuccessfulCall(C)", 0), stats.get("FailedCall(C)", 0)
    failed_pct = 100.0 * (calls - ok) / calls  # calls never finished count as failed too
    cli_stuck = False
    try:
        lab_asterisk.cli("channel request hangup all")  # a collapsed run must not spill over
    except subprocess.TimeoutExpired:
        cli_stuck = True  # restarted below, whatever SIPp counted
    if failed_pct > MAX_FAILED_PCT or cli_stuck:
        # A collapse leaves Asterisk bloated (GBs of queued work) and Caseline mid-way
        # through hundreds of calls: the next run starts with fresh processes of both.
        await lab.stop_caseline()
        await asyncio.to_thread(restart_asterisk)
    return {"path": path_name, "rate": rate, "seconds": seconds, "calls": calls,
            "aborted_early": aborted,
            "successful": ok, "failed": failed, "failed_pct": round(failed_pct, 3),
            "holds": failed_pct <= MAX_FAILED_PCT, "elapsed_s": round(elapsed, 1),
            "pdd_ms": summary(wire_pdd), "pdd_sipp_ms": summary(sipp_pdd), "capture": packets,
            "cpu_pct": cpu,
            "taskprocessors_most_queued": dict(sorted(queued.items(), key=lambda kv: -kv[1])[:4]),
            "rss_mib": memory.summary()}


def taskprocessor_queues() -> dict[str, int]:
    """Asterisk's task queues with work waiting now ("In Queue"), by name without its id:

    Processor                                 Processed   In Queue  Max Depth ...
    stasis/m:manager:core-0000000d              2624519          6        556 ...
    """
    queues: dict[str, int] = {}
    try:
        listing = lab_asterisk.cli("core show taskprocessors", timeout=5)
    except subprocess.TimeoutExpired:  # a collapsing Asterisk stops answering its CLI
        return {"(CLI not answering)": 1}
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2].isdigit() and int(parts[2]) > 0:
            name = parts[0].rsplit("-", 1)[0]
            queues[name] = max(int(parts[2]), queues.get(name, 0))
    return queues


def read_stats(path: Path) -> dict[str, int]:
    lines = path.read_text().splitlines() if path.exists() else []
    if len(lines) < 2:
        return {}
    header, last = lines[0].split(";"), lines[-1].split(";")
    out = {}
    for key, value in zip(header, last):
        if key in ("SuccessfulCall(C)", "FailedCall(C)"):
            out[key] = int(value or 0)
    return out


def read_rtt(workdir: Path) -> list[float]:
    values = []
    for f in workdir.glob("*_rtt.csv"):
        for line in f.read_text().splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 3:
                try:
                    values.append(float(parts[1]))
                except ValueError:
                    pass
    return values


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {"n": len(values), "p50": round(pick(0.5), 2), "p90": round(pick(0.9), 2),
            "p99": round(pick(0.99), 2), "max": round(values[-1], 2),
            "mean": round(statistics.fmean(values), 2)}


def show(result: dict) -> None:
    cpu = " ".join(f"{k}={v}" for k, v in sorted(result["cpu_pct"].items()) if v >= 1)
    print(f"{result['path']:7} {result['rate']:6.0f}/s  calls {result['calls']:6}  failed "
          f"{result['failed_pct']:6.2f} %  PDD {result['pdd_ms']}  CPU% {cpu}", flush=True)


BENCH_FILES = ("bench.conf", "queues_bench.conf")


def restart_asterisk() -> None:
    lab_asterisk.stop()
    lab_asterisk.start()
    lab_asterisk.wait_ready()


def install_bench_dialplan() -> None:
    for name in BENCH_FILES:
        shutil.copy(Path(__file__).with_name("asterisk") / name, lab_paths.ROOT / "etc/asterisk" / name)
    lab_asterisk.cli("dialplan reload")
    lab_asterisk.cli("module reload app_queue.so")


def remove_bench_dialplan() -> None:
    for name in BENCH_FILES:
        (lab_paths.ROOT / "etc/asterisk" / name).unlink(missing_ok=True)
    lab_asterisk.cli("dialplan reload")
    lab_asterisk.cli("module reload app_queue.so")


DEFAULT_PLAN = ("plain=300,350,400 holder=100,125,150 agi=200,250,300 "
                "queue=100,125,150 plainq=200,300,400 agiq=200,250,300")


def parse_setting(text: str) -> tuple[str, object]:
    """"admission.max_calls_in_progress=30" -> ("admission.max_calls_in_progress", 30)"""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: want section.key=value (a YAML value)")
    return key, yaml.safe_load(value)


def parse_plan(text: str) -> list[tuple[str, list[float]]]:
    """"plain=100,200 holder@base=100" -> [("plain", [100.0, 200.0]), ("holder@base", [100.0])]"""
    plan = []
    for item in text.split():
        path, _, rates = item.partition("=")
        name, at, tree = path.partition("@")
        if name not in PATHS or not rates or (at and not tree):
            raise argparse.ArgumentTypeError(f"{item!r}: want path=rate,... with a path of {sorted(PATHS)}")
        plan.append((path, [float(r) for r in rates.split(",")]))
    return plan


class Results:
    """Every run is written out as soon as it ends: a long run stopped half-way keeps its figures."""

    def __init__(self, out: Path, machine: dict) -> None:
        self.out, self.machine, self.runs = out, machine, []
        out.parent.mkdir(parents=True, exist_ok=True)

    def add(self, result: dict) -> None:
        self.runs.append(result)
        if "pdd_ms" in result:
            show(result)
        self.out.write_text(json.dumps({"machine": self.machine, "results": self.runs}, indent=1))


async def measure(lab: Lab, args: argparse.Namespace, results: Results) -> None:
    held: dict[str, float] = {}
    for path, rates in args.plan:
        for rate in sorted(rates):
            result = await run_rate(lab, path, rate, args.seconds)
            results.add(dict(result, phase="ceiling"))
            if not result["holds"]:
                break
            held[path] = rate
    for rate_text in filter(None, args.pdd_rates.split(",")):
        rate = held.get("plain", 0) / 2 if rate_text == "half" else float(rate_text)
        for path in filter(None, args.pdd_paths.split(",")) if rate else ():
            # crm0/crm50 are the holder path with another CRM: the holder's ceiling applies
            ceiling = held.get("holder" if path.startswith("crm") else path)
            if rate_text == "half" and ceiling is not None and ceiling < rate:
                print(f"{path:7} {rate:6.0f}/s  skipped: above its ceiling ({ceiling:g}/s)", flush=True)
                results.add({"path": path, "rate": rate, "phase": "pdd", "skipped": "above its ceiling"})
                continue
            results.add(dict(await run_rate(lab, path, rate, args.seconds), phase="pdd"))


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", type=parse_plan, default=parse_plan(DEFAULT_PLAN),
                        help=f"ceiling phase: path=rate,rate,... (default: {DEFAULT_PLAN!r})")
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--pdd-paths", default="plain,holder,queue,agi,agiq,plainq,crm0,crm50")
    parser.add_argument("--pdd-rates", default="half,50",
                        help="'half' is half of the highest rate path (a) held; at that rate, "
                             "paths whose own ceiling is lower are skipped")
    parser.add_argument("--caseline-on-plain", action="store_true",
                        help="keep Caseline attached (ARI + AMI) during the dialplan-only paths")
    parser.add_argument("--set", type=parse_setting, action="append", default=[], dest="settings",
                        metavar="SECTION.KEY=VALUE",
                        help="a caseline.yaml value for the bench's Caseline, e.g. "
                             "admission.max_calls_in_progress=30 (repeatable)")
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                        help="another checkout (e.g. the code before a change): paths named "
                             "<path>@NAME run Caseline from it (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/call_rate.json"))
    parser.add_argument("--smoke", action="store_true", help="2 s at 5 calls/s per path")
    args = parser.parse_args()
    trees = {name: Path(folder).resolve() for name, _, folder in (t.partition("=") for t in args.tree)}
    if missing := {p.partition("@")[2] for p, _ in args.plan} - set(trees) - {""}:
        parser.error(f"--plan names checkouts no --tree gives: {sorted(missing)}")
    if args.smoke:
        args.plan, args.seconds, args.pdd_rates = parse_plan("plain=5 holder=5 queue=5"), 2.0, "5"
        args.pdd_paths = "agi,crm0,crm50"
    lab_asterisk.up()
    install_bench_dialplan()
    workdir = Path(tempfile.mkdtemp(prefix="caseline-bench-"))
    redis = RedisServer.start()
    lab = Lab(workdir, redis, caseline_on_plain=args.caseline_on_plain, settings=dict(args.settings),
              trees=trees)
    results = Results(args.out, {"asterisk": lab_asterisk.cli("core show version").strip()[:60],
                                 "seconds_per_rate": args.seconds, "cores": os.cpu_count(),
                                 "max_failed_pct": MAX_FAILED_PCT,
                                 "caseline_settings": dict(args.settings),
                                 "trees": {k: str(v) for k, v in trees.items()}})
    try:
        await measure(lab, args, results)
    finally:
        await lab.close()
        redis.stop()
        remove_bench_dialplan()
    print(f"results: {args.out} (SIPp traces: {workdir})")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
