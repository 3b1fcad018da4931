"""Callback requests: filed by a rule, an IVR option or the ops API, placed by the dialer
(stasis/callback_dialer.py), listed by `caseline callbacks` and GET /callbacks.

Kept in Redis, shared by every Caseline instance:

  caseline:callback:<id>           hash: the request (expires `keep` after it ends)
  caseline:callbacks:due           sorted set, id -> when it may be dialled (open), or until
                                   when its dialler holds it (dialling: a lease, so the request
                                   of a process that died becomes due again)
  caseline:callbacks:index         sorted set, id -> filed at: the listing (trimmed)
  caseline:callback:open:<number>  the number's open request: one per number

Status: open -> dialling -> done | open (retry) | failed (attempts used up); open -> expired.
Every transition is one Lua script, so two instances never place the same request twice.
"""
from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from redis.asyncio import Redis

from ari_app.config.callback_settings import CallbackSettings
from ari_app.core.clock import SystemClock
from ari_app.core.models import CallerProfile
from ari_app.core.numbers import mask, require_e164
from ari_app.core.policy import Policy
from ari_app.core.ports import Clock
from ari_app.record.pending_writes import PendingWrites

log = logging.getLogger("caseline.record.callbacks")

PREFIX = "caseline:callback:"
OPEN_PREFIX = "caseline:callback:open:"
DUE = "caseline:callbacks:due"
INDEX = "caseline:callbacks:index"
MAX_REASON = 200


class Status(StrEnum):
    OPEN = "open"  # waiting to be dialled (when due and we are open)
    DIALLING = "dialling"  # a dialler rings the holder or the client, or they talk
    DONE = "done"  # the holder and the client talked (or the client reached us meanwhile)
    FAILED = "failed"  # every attempt reached nobody
    EXPIRED = "expired"  # not placed within `expire_after`


LIVE = (Status.OPEN, Status.DIALLING)


@dataclass(frozen=True)
class CallbackRequest:
    id: str
    number: str  # E.164
    holder: str  # the person to ring first; "" = the first free operator
    reason: str  # the rule ("hours.after_hours"), the IVR choice ("ivr:main:2 (abc.C)"), "api: ..."
    priority: int  # QUEUE_PRIO when filed: due requests are placed highest first, then oldest
    filed_at: datetime
    due_at: datetime
    expires_at: datetime
    status: Status = Status.OPEN
    attempts: int = 0
    result: str = ""  # what the last attempt came to: answered, holder_busy, client_no_answer ...
    call_id: str = ""  # the call that filed it
    person: str = ""  # who was rung last (the holder, or the operator who stood in)
    talk_s: int = 0
    updated_at: datetime | None = None

    def shown_status(self, now: datetime) -> Status:
        """Open but past its expiry (no dialler has swept it yet) shows as expired."""
        return Status.EXPIRED if self.status is Status.OPEN and now >= self.expires_at else self.status

    def as_dict(self, now: datetime, *, mask_numbers: bool) -> dict[str, object]:
        data = asdict(self)
        data["number"] = mask(self.number) if mask_numbers else self.number
        data["status"] = str(self.shown_status(now))
        for name in ("filed_at", "due_at", "expires_at", "updated_at"):
            value = getattr(self, name)
            data[name] = value.isoformat(timespec="seconds") if value else None
        return data


def _ts(at: datetime) -> str:
    return f"{at.timestamp():.3f}"


def _at(raw: str | None) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(raw), UTC) if raw else None
    except (ValueError, OverflowError, OSError):
        return None


def _fields(req: CallbackRequest) -> dict[str, str]:
    return {"id": req.id, "number": req.number, "holder": req.holder, "reason": req.reason,
            "priority": str(req.priority), "filed_at": _ts(req.filed_at), "due_at": _ts(req.due_at),
            "expires_at": _ts(req.expires_at), "status": str(req.status),
            "attempts": str(req.attempts), "result": req.result, "call_id": req.call_id,
            "person": req.person, "talk_s": str(req.talk_s),
            "updated_at": _ts(req.updated_at or req.filed_at)}


def _request(raw: dict[bytes | str, bytes | str]) -> CallbackRequest | None:
    """The request in a hash, or None if the hash is not one (never raises)."""
    f = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
         for k, v in raw.items()}
    try:
        filed, due, expires = _at(f["filed_at"]), _at(f["due_at"]), _at(f["expires_at"])
        if filed is None or due is None or expires is None:
            return None
        return CallbackRequest(
            id=f["id"], number=f["number"], holder=f.get("holder", ""), reason=f.get("reason", ""),
            priority=int(f.get("priority", "0")), filed_at=filed, due_at=due, expires_at=expires,
            status=Status(f["status"]), attempts=int(f.get("attempts", "0")),
            result=f.get("result", ""), call_id=f.get("call_id", ""), person=f.get("person", ""),
            talk_s=int(f.get("talk_s", "0")), updated_at=_at(f.get("updated_at")))
    except (KeyError, ValueError):
        return None


# KEYS: open key, hash, due, index. ARGV: id, open ttl, hash ttl, due score, filed score,
# hash prefix, index cutoff, then the hash's field/value pairs. Returns the number's open id.
_FILE = """
local current = redis.call('GET', KEYS[1])
if current then
  local s = redis.call('HGET', ARGV[6] .. current, 'status')
  if s == 'open' or s == 'dialling' then return current end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 8))
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[7])
return ARGV[1]
"""
# KEYS: hash, due. ARGV: id, now, lease until, owner. Open, or dialling by a dead dialler.
_CLAIM = """
local s = redis.call('HGET', KEYS[1], 'status')
if s ~= 'open' then
  if s ~= 'dialling' or tonumber(redis.call('HGET', KEYS[1], 'lease') or '0') >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], 'status', 'dialling', 'lease', ARGV[3], 'owner', ARGV[4], 'updated_at', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
"""
# KEYS: hash, due, open key. ARGV: id, from status, to status, due score ('' = not due any
# more), owner (checked when moving from dialling), hash ttl ('' = keep), then field/values.
_MOVE = """
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[2] then return 0 end
if ARGV[2] == 'dialling' and redis.call('HGET', KEYS[1], 'owner') ~= ARGV[5] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[3], unpack(ARGV, 7))
if ARGV[4] == '' then redis.call('ZREM', KEYS[2], ARGV[1]) else redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1]) end
if ARGV[3] ~= 'open' and ARGV[3] ~= 'dialling' and redis.call('GET', KEYS[3]) == ARGV[1] then
  redis.call('DEL', KEYS[3])
end
if ARGV[6] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[6]) end
return 1
"""


class CallbackStore:
    """The requests in Redis. Raises redis-py's errors when Redis is down (PendingWrites
    keeps a filing for later; the dialler tries again at its next poll)."""

    def __init__(self, redis: Redis, *, keep: timedelta = timedelta(days=7)) -> None:
        self.redis = redis
        self.keep_s = max(1, int(keep.total_seconds()))

    async def file(self, req: CallbackRequest) -> str:
        """Store `req` unless its number has an open one; the id of the number's open request."""
        number = require_e164(req.number)  # only strict E.164 becomes part of a key
        now = req.filed_at
        open_ttl = max(1, int((req.expires_at - now).total_seconds()))
        flat = [x for pair in _fields(req).items() for x in pair]
        got = await self.redis.eval(
            _FILE, 4, OPEN_PREFIX + number, PREFIX + req.id, DUE, INDEX,
            req.id, open_ttl, open_ttl + self.keep_s, _ts(req.due_at), _ts(req.filed_at), PREFIX,
            _ts(now - timedelta(seconds=open_ttl + self.keep_s)), *flat)
        return got.decode() if isinstance(got, bytes) else str(got)

    async def get(self, request_id: str) -> CallbackRequest | None:
        raw = await self.redis.hgetall(PREFIX + request_id)
        return _request(raw) if raw else None

    async def _many(self, ids: list[bytes | str]) -> list[CallbackRequest]:
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hgetall(PREFIX + (i.decode() if isinstance(i, bytes) else i))
            raws = await pipe.execute()
        return [r for raw in raws if raw and (r := _request(raw)) is not None]

    async def listing(self, limit: int = 100) -> list[CallbackRequest]:
        """The newest `limit` requests still kept, newest first."""
        return await self._many(await self.redis.zrevrange(INDEX, 0, max(0, limit - 1)))

    async def due(self, now: datetime, limit: int = 100) -> list[CallbackRequest]:
        """Requests that may be dialled now, in the queue's own order: highest priority first,
        then the oldest (a caller who chose a call-back keeps their turn)."""
        ids = await self.redis.zrangebyscore(DUE, "-inf", _ts(now), start=0, num=limit)
        found = await self._many(ids)
        return sorted(found, key=lambda r: (-r.priority, r.filed_at, r.id))

    async def claim(self, request_id: str, now: datetime, lease_until: datetime, owner: str) -> bool:
        """open -> dialling for `owner` until `lease_until` (renew it while the call lasts)."""
        return bool(await self.redis.eval(_CLAIM, 2, PREFIX + request_id, DUE, request_id,
                                          _ts(now), _ts(lease_until), owner))

    async def renew(self, request_id: str, lease_until: datetime) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(PREFIX + request_id, "lease", _ts(lease_until))
            pipe.zadd(DUE, {request_id: float(_ts(lease_until))}, xx=True)
            await pipe.execute()

    async def move(self, req: CallbackRequest, to: Status, *, owner: str = "",
                   due_at: datetime | None = None, **fields: object) -> bool:
        """One transition from the request's current status; False if it changed meanwhile."""
        final = to not in LIVE
        if due_at is not None and not final:
            fields["due_at"] = _ts(due_at)
        flat = [x for k, v in fields.items() for x in (k, str(v))]
        return bool(await self.redis.eval(
            _MOVE, 3, PREFIX + req.id, DUE, OPEN_PREFIX + require_e164(req.number),
            req.id, str(req.status), str(to), _ts(due_at) if due_at and not final else "",
            owner, str(self.keep_s) if final else "", *flat))


def holder_for(policy: Policy, profile: CallerProfile) -> str:
    """Who calls the client back: their case holder if routing.yaml can ring them, else ""
    (the first free operator, chosen when the call-back is placed)."""
    holder = profile.case_holder or ""
    known = policy.person(holder) is not None or holder in policy.people.operators
    return holder if known else ""


class CallbackFiler:
    """Files requests from calls (the executor's callback step) and the ops API."""

    def __init__(self, store: CallbackStore, settings: CallbackSettings,
                 pending: PendingWrites | None = None, clock: Clock | None = None) -> None:
        self.store = store
        self.settings = settings
        self.pending = pending
        self.clock = clock or SystemClock()
        # after each filing that landed: the dialler looks at due requests at once (an IVR
        # caller's turn must join the queue now, not at the next poll)
        self.on_filed: Callable[[], None] = lambda: None

    def new(self, number: str, *, holder: str, reason: str, priority: int,
            call_id: str = "") -> CallbackRequest:
        now = self.clock.now()
        return CallbackRequest(
            id=secrets.token_hex(5), number=require_e164(number), holder=holder,
            reason=" ".join(reason.split())[:MAX_REASON], priority=max(0, min(100, priority)),
            filed_at=now, due_at=now, expires_at=now + self.settings.expire_after,
            call_id=call_id, updated_at=now)

    async def file(self, req: CallbackRequest) -> str | None:
        """The id of the number's open request (`req.id` if it is new); None when Redis is
        down and the filing waits in the pending writes (it lands when Redis is back)."""
        opened: list[str] = []

        async def write() -> None:
            opened.append(await self.store.file(req))
            self.on_filed()

        if self.pending is None:
            await write()
        else:
            await self.pending.write(f"callback request {req.id} ({mask(req.number)})", write)
        return opened[0] if opened else None

    async def existing(self, req: CallbackRequest, open_id: str) -> CallbackRequest:
        """The request a filing ended up as: `req` itself, or the number's open one."""
        if open_id == req.id:
            return req
        found = await self.store.get(open_id)
        return found or replace(req, id=open_id)
