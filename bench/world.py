"""A reproducible world for the benchmarks: config, callers, their history, the wired core.

- Config: a temporary copy of the shipped `config/` (routing.yaml, legal_entities.yaml,
  caseline.yaml as shipped, working hours on) whose clients.yaml is the shipped one plus
  synthetic clients, so that about half of the "known" callers are in the file CRM.
- Time: a fixed clock, Wednesday 2025-03-12 11:00 Europe/Moscow (open, not a holiday),
  so every run takes the same decisions. History is generated relative to it.
- Callers: Russian mobiles (16 candidate time zones) and landlines of several regions, as
  the trunk sends them (`+7...`, `8...`, `7...`). Known callers get a history that makes
  them `callback` (10 %), `repeat` (20 %) or `old` (70 %); new callers have none.
- The core is built by `ari_app.main.build_core`, exactly as `caseline run` builds it
  (RedisHistoryStore on a real redis-server, CrmService over the file CRM, LiveConfig,
  region names loaded); only the router's clock is replaced by the fixed one.
"""
from __future__ import annotations

import inspect
import random
import shutil
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from bench import report

report.setup_paths()

from ari_app.core.clock import FixedClock  # noqa: E402
from ari_app.core.models import Contact, Direction  # noqa: E402
from ari_app.history.store import RedisHistoryStore  # noqa: E402

NOW = datetime(2025, 3, 12, 8, 0, tzinfo=UTC)  # Wed 11:00 Europe/Moscow
MANAGERS = ("mgr1", "mgr2", "mgr3")
# Area codes of landlines (one time zone each), for the environment's single-zone path.
LANDLINE_CODES = ("495", "499", "812", "423", "343", "383", "843", "861", "391", "4212")
KINDS = (("callback", 0.10), ("repeat", 0.20), ("old", 0.70))


@dataclass
class Caller:
    number: str  # E.164
    raw: str  # the caller ID as a trunk sends it
    kind: str  # callback | repeat | old | new
    in_crm: bool = False
    contacts: list[Contact] = field(default_factory=list)


class Numbers:
    """Unique random Russian numbers (80 % mobile, 20 % landline), never the shipped ones."""

    def __init__(self, rng: random.Random, taken: set[str] | None = None) -> None:
        self.rng = rng
        self.taken = set(taken or ())

    def next(self) -> str:
        while True:
            if self.rng.random() < 0.8:
                number = f"+79{self.rng.randrange(10**9):09d}"
            else:
                code = self.rng.choice(LANDLINE_CODES)
                number = f"+7{code}{self.rng.randrange(10 ** (10 - len(code))):0{10 - len(code)}d}"
            if number not in self.taken:
                self.taken.add(number)
                return number


def raw_caller_id(rng: random.Random, number: str) -> str:
    """How a Russian trunk writes it: "+7...", "8..." or "7..." (all normalise to `number`)."""
    r = rng.random()
    if r < 0.5:
        return number
    if r < 0.8:
        return "8" + number[2:]
    return number[1:]


def contacts_count(rng: random.Random) -> int:
    """Contacts within the old window: mostly a few, some heavy callers (mean about 7.5)."""
    r = rng.random()
    if r < 0.60:
        return rng.randint(1, 3)
    if r < 0.85:
        return rng.randint(4, 10)
    if r < 0.97:
        return rng.randint(11, 30)
    return rng.randint(31, 120)


def make_history(rng: random.Random, kind: str, now: datetime = NOW, manager: str | None = None) -> list[Contact]:
    """Contacts (any order) that make the number classify as `kind` at `now`."""
    manager = manager or rng.choice(MANAGERS)
    n = contacts_count(rng)
    contacts: list[Contact] = []
    # the older ones: 1 day .. 170 days ago, so the newest decides the class
    for _ in range(n - 1):
        ago = timedelta(seconds=rng.uniform(86400 + 3600, 170 * 86400))
        out = rng.random() < 0.25
        answered = rng.random() < 0.8
        contacts.append(Contact(now - ago, Direction.OUTBOUND if out else Direction.INBOUND, answered,
                                manager if (answered or out) else None,
                                rng.randint(10, 600) if answered else 0))
    if kind == "callback":  # our manager called within the callback window (2 h)
        answered = rng.random() < 0.5
        contacts.append(Contact(now - timedelta(seconds=rng.uniform(60, 7000)), Direction.OUTBOUND,
                                answered, manager, rng.randint(10, 300) if answered else 0))
    elif kind == "repeat":  # they called us within the repeat window (1 d)
        answered = rng.random() < 0.7
        contacts.append(Contact(now - timedelta(seconds=rng.uniform(7300, 86000)), Direction.INBOUND,
                                answered, manager if answered else None,
                                rng.randint(10, 600) if answered else 0))
    else:  # old: newest contact older than a day
        contacts.append(Contact(now - timedelta(seconds=rng.uniform(86400 + 60, 170 * 86400)),
                                Direction.INBOUND, True, manager, rng.randint(10, 600)))
    return contacts


def pick_kind(rng: random.Random) -> str:
    r, acc = rng.random(), 0.0
    for kind, share in KINDS:
        acc += share
        if r < acc:
            return kind
    return KINDS[-1][0]


def make_known(rng: random.Random, count: int, numbers: Numbers, crm_share: float = 0.5) -> list[Caller]:
    callers = []
    for _ in range(count):
        number = numbers.next()
        kind = pick_kind(rng)
        caller = Caller(number, raw_caller_id(rng, number), kind, in_crm=rng.random() < crm_share)
        caller.contacts = make_history(rng, kind)
        callers.append(caller)
    return callers


def make_new(rng: random.Random, count: int, numbers: Numbers) -> list[Caller]:
    out = []
    for _ in range(count):
        number = numbers.next()
        out.append(Caller(number, raw_caller_id(rng, number), "new"))
    return out


def synthetic_client(rng: random.Random, i: int, number: str) -> dict[str, object]:
    abc = rng.choices(("A", "B", "C"), weights=(2, 3, 5))[0]
    return {
        "id": f"BENCH-{i:06d}",
        "name": f"Bench client {i}",
        "numbers": [number],
        "status": "active",
        "abc": abc,
        "responsible": rng.choice(MANAGERS),
        "open_deals": rng.choice((0, 0, 1, 2)),
        "open_orders": rng.choice((0, 0, 0, 1)),
        "open_claims": 1 if rng.random() < 0.05 else 0,
        "delivery_today": rng.random() < 0.03,
        "extra": {"segment": rng.choice(("retail", "fleet", "b2b"))},
    }


def make_config(folder: Path, crm_callers: Sequence[Caller], rng: random.Random,
                managers: Sequence[str] = ()) -> Path:
    """Copy config/ (no Asterisk files) to `folder`; add `crm_callers` to clients.yaml.

    With `managers`, those managers are added to routing.yaml's people and the added
    clients are assigned to them in turn, all category A, no open cases (so that every
    call goes to its own manager: the "calls in bridges" memory bench)."""
    shutil.copytree(report.ROOT / "config", folder, ignore=shutil.ignore_patterns("asterisk"))
    path = folder / "clients.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    clients = list(data.get("clients") or [])
    added = [synthetic_client(rng, i, c.number) for i, c in enumerate(crm_callers)]
    if managers:
        for i, client in enumerate(added):
            client.update(abc="A", responsible=managers[i % len(managers)], open_claims=0,
                          delivery_today=False)
        routing = yaml.safe_load((folder / "routing.yaml").read_text())
        for m in managers:
            routing["people"]["managers"][m] = {"endpoint": f"PJSIP/{m}", "name": f"Bench manager {m}"}
        (folder / "routing.yaml").write_text(yaml.safe_dump(routing, allow_unicode=True, sort_keys=False))
    data["clients"] = clients + added
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return folder


def shipped_numbers(folder: Path) -> set[str]:
    """E.164 numbers already in the shipped CRM and legal-entity files (never reused)."""
    from ari_app.core.numbers import normalize

    out: set[str] = set()
    clients = yaml.safe_load((folder / "clients.yaml").read_text()) or {}
    for client in clients.get("clients") or []:
        for raw in client.get("numbers") or []:
            if n := normalize(str(raw), "RU"):
                out.add(n)
    legal = folder / "legal_entities.yaml"
    if legal.exists():
        for entity in (yaml.safe_load(legal.read_text()) or {}).get("entities") or []:
            out.update(entity.get("numbers") or [])
    return out


def seeding_store(core, now: datetime = NOW) -> RedisHistoryStore:  # type: ignore[no-untyped-def]
    """A store with the app's settings whose retention clock is `now` (not the wall clock)."""
    h = core.settings.history
    return RedisHistoryStore(core.redis, retention=h.windows().longest, key_prefix=h.key_prefix,
                             max_contacts=h.max_contacts, time_fn=now.timestamp)


async def seed_history(core, callers: Sequence[Caller], batch: int = 5000) -> int:  # type: ignore[no-untyped-def]
    store = seeding_store(core)
    items = [(c.number, contact) for c in callers for contact in c.contacts]
    written = 0
    for i in range(0, len(items), batch):
        written += await store.record_many(items[i:i + batch])
    return written


async def build(stack: AsyncExitStack, config_dir: Path, redis_url: str, *, fixed_clock: bool = True,
                metrics=None):  # type: ignore[no-untyped-def]
    """The app's own core (ari_app.main.build_core) on `redis_url`, clock fixed at NOW."""
    import asyncio

    from ari_app.config.settings import load_settings
    from ari_app.main import build_core

    settings = load_settings(config_dir, env={"CASELINE_REDIS_URL": redis_url})
    core = await build_core(settings, config_dir, stack, metrics)
    if fixed_clock:
        core.router.clock = FixedClock(NOW)
    for _ in range(600):  # build_core may load region names in the background: measure with them
        if core.router.region_names is None or core.router.region_names.loaded:
            break
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError("region names did not load within 30 s")
    return core


@dataclass
class World:
    core: object
    config_dir: Path
    known: list[Caller]
    new: list[Caller]
    contacts: int


async def make_world(stack: AsyncExitStack, tmp: Path, redis_url: str, *, known: int, new: int,
                     seed: int, crm_share: float = 0.5, managers: int = 0, metrics=None) -> World:  # type: ignore[no-untyped-def]
    """`managers` > 0: the bridged-calls world (see make_config): every known caller is an
    A client of one of `managers` extra managers, with an `old` history."""
    rng = random.Random(seed)
    numbers = Numbers(rng, shipped_numbers(report.ROOT / "config"))
    manager_ids = [f"bm{i:05d}" for i in range(managers)]
    if manager_ids:
        known_callers = []
        for i in range(known):
            number = numbers.next()
            caller = Caller(number, raw_caller_id(rng, number), "old", in_crm=True)
            caller.contacts = make_history(rng, "old", manager=manager_ids[i % managers])
            known_callers.append(caller)
    else:
        known_callers = make_known(rng, known, numbers, crm_share)
    new_callers = make_new(rng, new, numbers)
    config_dir = make_config(tmp / "config", [c for c in known_callers if c.in_crm], rng, manager_ids)
    core = await build(stack, config_dir, redis_url, metrics=metrics)
    contacts = await seed_history(core, known_callers)
    return World(core, config_dir, known_callers, new_callers, contacts)


# --- the Stasis app on a fake ARI (bench/fake_ari.py in its own process) -----------------


class FakeAriProcess:
    """`python bench/fake_ari.py` on a free port; `.url` is its base URL."""

    def __init__(self) -> None:
        import subprocess
        import sys

        from labkit.redis_server import free_port

        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(report.ROOT / "bench" / "fake_ari.py"), "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "ready" not in line:
            self.stop()
            raise RuntimeError(f"fake ARI did not start: {line!r}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_s(self) -> float:
        """CPU seconds the fake ARI process has used (user + system)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        import os

        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except Exception:  # noqa: BLE001
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()


@dataclass
class App:
    app: object
    finished: list = field(default_factory=list)  # (routed, outcome) of finished calls
    decided_s: list = field(default_factory=list)  # Routed.seconds as the app measured it
    done: object = None  # asyncio.Event set when `expect` calls have finished
    expect: int = 0
    presence: object = None

    def reset(self, expect: int) -> None:
        import asyncio

        self.finished.clear()
        self.decided_s.clear()
        self.expect = expect
        self.done = asyncio.Event()


def build_app(core, ari, metrics, *, presence=None) -> App:  # type: ignore[no-untyped-def]
    """The call-handling half of ari_app.main.build_routing_app, on `ari` (no AMI/AGI/ops)."""
    from ari_app.record.observer import CallObserver
    from ari_app.record.outcomes import OutcomeRecorder
    from ari_app.stasis.app import StasisApp
    from ari_app.stasis.execute import Executor, leave_to_dialplan
    from ari_app.stasis.handler import CallRouting
    from ari_app.stasis.presence import RedisPresence

    settings = core.settings
    extra = {}
    if "pending" in inspect.signature(OutcomeRecorder).parameters:  # since dcdbf8c
        from ari_app.record.pending_writes import PendingWrites

        extra["pending"] = PendingWrites()
    recorder = OutcomeRecorder(core.redis, max_entries=settings.decision_log_max,
                               mask_numbers=settings.logging.mask_numbers, **extra)
    box = App(app=None)
    observer = CallObserver(metrics, live_count=lambda: len(box.app.calls) if box.app else 0)
    box.reset(0)

    def decided(call, routed) -> None:  # type: ignore[no-untyped-def]
        observer.decided(call, routed)
        box.decided_s.append(routed.seconds)

    def finished(call, routed, outcome) -> None:  # type: ignore[no-untyped-def]
        observer.finished(call, routed, outcome)
        box.finished.append((routed, outcome))
        if len(box.finished) >= box.expect:
            box.done.set()

    presence = presence or RedisPresence(core.redis)
    box.presence = presence
    executor_kw = {}
    if "one_call_per_person" in inspect.signature(Executor).parameters:
        executor_kw["one_call_per_person"] = getattr(settings.calls, "one_call_per_person", True)
    handler = CallRouting(core.router, Executor(presence, **executor_kw), recorder,
                          on_decided=decided, on_finished=finished)

    async def on_call_error(call, error) -> None:  # type: ignore[no-untyped-def]
        metrics.fallback("internal_error")
        await leave_to_dialplan(call, f"caseline_error:{type(error).__name__}")

    app = StasisApp(ari, handler, on_call_error=on_call_error, on_reconnect=metrics.ari_reconnects.inc)
    box.app = app
    return box
