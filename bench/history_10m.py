"""History look-up with millions of stored calls: fill Redis, then time `recent()`.

    python bench/history_10m.py                   # 10M contacts over ~1M numbers
    python bench/history_10m.py --calls 1000000   # a smaller history
    python bench/history_10m.py --smoke           # 20k contacts, a few seconds

Fill: one sorted set per number, members encoded by the store's own `encode_contact`,
written as ZADD + EXPIRE (what `record_many` leaves behind) in non-transactional pipelines
of ~10k commands. Contacts per number are skewed (most numbers have a few, some have
hundreds; mean about 10). Timestamps carry microseconds, as live calls do.

Look-up: `RedisHistoryStore.recent()` as the router calls it (the app's `redis_client`,
the shipped history settings: newest 50 within the 180-day window), one call after the
other, for random stored numbers and for numbers that were never stored.
Target (issue 9): recent() p99 < 1 ms.
"""
from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import report  # noqa: E402

report.setup_paths()

from ari_app.core.models import Contact, Direction  # noqa: E402
from ari_app.config.history_settings import HistorySettings  # noqa: E402
from ari_app.history.store import RedisHistoryStore, encode_contact, redis_client  # noqa: E402
from labkit.redis_server import RedisServer  # noqa: E402

NAME = "history_10m"
TARGET_P99_US = 1000
MANAGERS = ("mgr1", "mgr2", "mgr3", "ivanov", "petrova", "sidorov", "kuznetsova")


def contacts_for_number(rng: random.Random) -> int:
    """Skewed: 60 % 1-5, 30 % 6-20, 9 % 21-60, 1 % 61-300 (mean about 10)."""
    r = rng.random()
    if r < 0.60:
        return rng.randint(1, 5)
    if r < 0.90:
        return rng.randint(6, 20)
    if r < 0.99:
        return rng.randint(21, 60)
    return rng.randint(61, 300)


def number_of(i: int) -> str:
    """The i-th stored number: distinct, valid-looking Russian mobiles."""
    return f"+79{(i * 7919 + 1234567) % 10**9:09d}"


def make_contacts(rng: random.Random, count: int, now_ts: float, retention_s: float) -> list[Contact]:
    out = []
    for _ in range(count):
        at = now_ts - rng.uniform(0, retention_s * 0.97)
        out.append(Contact(
            at=datetime.fromtimestamp(round(at, 6), UTC),
            direction=Direction.OUTBOUND if rng.random() < 0.25 else Direction.INBOUND,
            answered=(answered := rng.random() < 0.8),
            manager=rng.choice(MANAGERS) if answered else None,
            duration_s=rng.randint(5, 900) if answered else 0,
        ))
    return out


async def fill(redis, store: RedisHistoryStore, total: int, rng: random.Random, now_ts: float,  # type: ignore[no-untyped-def]
               retention_s: int, batch_commands: int = 10_000) -> dict[str, object]:
    """Write `total` contacts; returns numbers used, member sizes and timings."""
    numbers = 0
    written = 0
    member_bytes: Counter[int] = Counter()
    encode_s = 0.0
    started = time.perf_counter()
    last_report = started
    while written < total:
        t0 = time.perf_counter()
        pipe = redis.pipeline(transaction=False)
        commands = 0
        while commands < batch_commands and written < total:
            count = min(contacts_for_number(rng), total - written)
            members: dict[str, float] = {}
            for c in make_contacts(rng, count, now_ts, retention_s):
                member, score = encode_contact(c)
                members[member] = score
                if len(member_bytes) < 400 or rng.random() < 0.001:
                    member_bytes[len(member.encode())] += 1
            key = store.key(number_of(numbers))
            pipe.zadd(key, members)
            pipe.expire(key, retention_s)
            commands += 2
            numbers += 1
            written += count
        t1 = time.perf_counter()
        encode_s += t1 - t0
        await pipe.execute()
        now = time.perf_counter()
        if now - last_report > 15:
            rate = written / (now - started)
            print(f"  filled {written:,} contacts / {numbers:,} numbers, {rate:,.0f} contacts/s", flush=True)
            last_report = now
    sizes = sorted(member_bytes.elements())
    return {
        "numbers": numbers,
        "contacts": written,
        "fill_s": round(time.perf_counter() - started, 1),
        "python_encode_s": round(encode_s, 1),
        "member_bytes_p50": report.percentile(sizes, 50),
        "member_bytes_max_sampled": sizes[-1] if sizes else None,
    }


async def measure(store: RedisHistoryStore, numbers: list[str], since: datetime) -> tuple[list[int], list[int]]:
    """(latency ns, contacts returned) per look-up, one look-up after the other."""
    samples = []
    sizes = []
    clock = time.perf_counter_ns
    for number in numbers:
        start = clock()
        got = await store.recent(number, since)
        samples.append(clock() - start)
        sizes.append(len(got))
    return samples, sizes


def bucket(n: int) -> str:
    return "0" if n == 0 else "1-5" if n <= 5 else "6-20" if n <= 20 else "21-49" if n < 50 else "50 (cap)"


async def main_async(args) -> int:  # type: ignore[no-untyped-def]
    run = report.Run(NAME, args)
    total = args.calls or (20_000 if args.smoke else 10_000_000)
    lookups = args.lookups or (1_000 if args.smoke else 20_000)
    settings = HistorySettings()  # the shipped defaults (config/caseline.yaml says the same)
    retention_s = int(settings.windows().longest.total_seconds())
    now = datetime.now(UTC)
    run.params.update(contacts=total, lookups=lookups, seed=args.seed, max_contacts=settings.max_contacts,
                      old_window_days=settings.old_window.days, target_p99_us=TARGET_P99_US,
                      encoding="ari_app.history.store.encode_contact", writes="ZADD+EXPIRE, pipelines of 10k commands")
    rng = random.Random(args.seed)
    server = RedisServer.start()
    try:
        redis = redis_client(server.url, timeout_s=30)  # the fill sends big pipelines
        try:
            store = RedisHistoryStore(redis, retention=settings.windows().longest, key_prefix=settings.key_prefix,
                                      max_contacts=settings.max_contacts)
            before = await redis.info("memory")
            print(f"filling {total:,} contacts ...", flush=True)
            filled = await fill(redis, store, total, rng, now.timestamp(), retention_s)
            after = await redis.info("memory")
            keys = await redis.dbsize()
            sample_key = store.key(number_of(0))
            encodings = Counter()
            for i in range(0, filled["numbers"], max(1, filled["numbers"] // 200)):
                enc = await redis.object("encoding", store.key(number_of(i)))
                encodings[enc.decode() if isinstance(enc, bytes) else str(enc)] += 1
            used = int(after["used_memory"]) - int(before["used_memory"])
            run.results["fill"] = {
                **filled,
                "keys": keys,
                "redis_used_memory_mb": round(int(after["used_memory"]) / 2**20, 1),
                "redis_used_memory_delta_mb": round(used / 2**20, 1),
                "redis_rss_mb": round(int(after["used_memory_rss"]) / 2**20, 1),
                "bytes_per_contact": round(used / max(1, filled["contacts"]), 1),
                "zset_encodings_sampled": dict(encodings),
                "example_member": (await redis.zrange(sample_key, 0, 0))[0].decode(),
            }
        finally:
            await redis.aclose()

        # the look-ups, with the app's own client settings
        app_redis = redis_client(server.url)
        try:
            app_store = RedisHistoryStore(app_redis, retention=settings.windows().longest,
                                          key_prefix=settings.key_prefix, max_contacts=settings.max_contacts)
            since = now - settings.windows().old
            n_stored = filled["numbers"]
            warm = [number_of(rng.randrange(n_stored)) for _ in range(min(1000, lookups))]
            await measure(app_store, warm, since)
            await app_redis.config_resetstat()
            stored = [number_of(rng.randrange(n_stored)) for _ in range(lookups)]
            absent = [f"+7916{rng.randrange(10**7):07d}" for _ in range(lookups)]
            s_stored, sizes = await measure(app_store, stored, since)
            s_absent, _ = await measure(app_store, absent, since)
            stats = await app_redis.info("commandstats")
            server_us = stats.get("cmdstat_zrevrangebyscore", {}).get("usec_per_call")
        finally:
            await app_redis.aclose()
    finally:
        server.stop()

    by_size: dict[str, list[int]] = {}
    for ns, n in zip(s_stored, sizes):
        by_size.setdefault(bucket(n), []).append(ns)
    order = ("1-5", "6-20", "21-49", "50 (cap)")
    run.results["recent"] = {
        "stored_numbers": report.summarize_ns(s_stored),
        "absent_numbers": report.summarize_ns(s_absent),
        "by_contacts_returned": {k: report.summarize_ns(by_size[k]) for k in order if k in by_size},
        "redis_server_usec_per_call": server_us,
    }
    run.results["verdict"] = {
        "recent_p99_under_1ms": max(run.results["recent"]["stored_numbers"]["p99_us"],
                                    run.results["recent"]["absent_numbers"]["p99_us"]) < TARGET_P99_US,
    }
    f = run.results["fill"]
    report.print_table("fill", ("contacts", "numbers", "fill s", "encode s", "Redis MB", "B/contact", "encodings"),
                       [[f["contacts"], f["numbers"], f["fill_s"], f["python_encode_s"],
                         f["redis_used_memory_mb"], f["bytes_per_contact"], f["zset_encodings_sampled"]]])
    report.print_table(f"recent() with {f['contacts']:,} stored contacts", report.STAT_HEADER,
                       [report.stat_row("stored number", run.results["recent"]["stored_numbers"]),
                        report.stat_row("never stored", run.results["recent"]["absent_numbers"])]
                       + [report.stat_row(f"  {k} contacts", v)
                          for k, v in run.results["recent"]["by_contacts_returned"].items()])
    print(f"Redis server time per ZREVRANGEBYSCORE (INFO commandstats): {server_us} µs")
    print("verdict:", run.results["verdict"])
    run.write()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = report.parser(__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=None, help="stored contacts (default 10,000,000; smoke 20,000)")
    p.add_argument("--lookups", type=int, default=None, help="recent() calls per case (default 20,000)")
    args = p.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
