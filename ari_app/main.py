"""The one place that builds and wires everything."""
from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import RedisError

from agi.server import AgiServer
from ari_app.ari.http import HttpAri
from ari_app.ari.interface import Ari, AriError, AriUnavailable
from ari_app.ari.version_gate import VersionGate
from ari_app.config.directories import RegionNames
from ari_app.config.files import ConfigError
from ari_app.config.live import LiveConfig
from ari_app.config.policy import load_policy_bytes
from ari_app.config.settings import AriSettings, Settings, load_settings
from ari_app.core.admission import ShedTarget
from ari_app.core.clock import SystemClock
from ari_app.core.dialplan import DEFAULT_QUEUE
from ari_app.core.models import CallerProfile, Decision
from ari_app.core.numbers import normalize
from ari_app.core.ports import Clock
from ari_app.core.route_program import RouteProgram, compile_route
from ari_app.crm.companies import CompanyLookup
from ari_app.crm.factory import build_crm
from ari_app.crm.service import CrmService
from ari_app.history.cdr import CdrRow, learning_rules
from ari_app.history.connect import redis_for
from ari_app.history.store import RedisHistoryStore
from ari_app.ops.ami import ami_ready
from ari_app.ops.api import OpsServer, create_app
from ari_app.ops.config_reload import ConfigReloads
from ari_app.ops.dialplan_reload import ReloadError, ReloadModule, ReloadResult, reload_dialplan
from ari_app.ops.listen import PortInUse, raise_open_file_limit
from ari_app.ops.live_events import LiveFeed
from ari_app.ops.load import Admission, watch_loop_lag
from ari_app.ops.logs import configure_json_logging
from ari_app.ops.metrics import Metrics
from ari_app.record.agi_calls import AgiCalls
from ari_app.record.callback_api import callback_hooks
from ari_app.record.callbacks import CallbackFiler, CallbackStore
from ari_app.record.cdr_listener import CdrListener
from ari_app.record.console_data import console_hooks
from ari_app.record.live_view import live_view
from ari_app.record.observer import CallObserver
from ari_app.record.outcomes import OutcomeRecorder
from ari_app.record.pending_writes import PendingWrites
from ari_app.record.replay import entries_since, replay
from ari_app.router import Router
from ari_app.stasis.app import StasisApp
from ari_app.stasis.call import Call
from ari_app.stasis.callback_dialer import CallbackDialer
from ari_app.stasis.execute import Executor, leave_to_dialplan
from ari_app.stasis.greet import make_greeter
from ari_app.stasis.handler import CallRouting
from ari_app.stasis.presence import RedisPresence
from ari_app.stasis.presence_feed import EVENT_TYPES as PRESENCE_EVENT_TYPES
from ari_app.stasis.presence_feed import PresenceFeed
from ari_app.stasis.shared_presence import SharedPresence
from ari_app.stasis.admission_gate import SHED_USERFIELD, DialplanGate
from ari_app.stasis.shed import Shed

log = logging.getLogger("caseline")

# The ARI events Caseline acts on; Asterisk filters the rest out before sending.
EVENT_TYPES = ("StasisStart", "StasisEnd", "ChannelDestroyed", "Dial", "PlaybackFinished",
               "ChannelDtmfReceived", "ApplicationReplaced", "ChannelStateChange",
               "BridgeBlindTransfer", "BridgeAttendedTransfer", "ChannelEnteredBridge")


async def _finish(task: asyncio.Task) -> None:
    await asyncio.gather(task, return_exceptions=True)


async def run_forever(config_dir: Path, *, greet: bool = False) -> int:
    settings = load_settings(config_dir)
    configure_json_logging(settings.logging.level, mask_numbers=settings.logging.mask_numbers)
    raise_open_file_limit()  # descriptors are shared by every socket we hold (ops/listen.py)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        ari = await stack.enter_async_context(HttpAri(
            settings.ari.url, settings.ari.user, settings.ari.password.get_secret_value(),
            settings.ari.app, heartbeat_s=settings.ari.heartbeat_s, event_types=EVENT_TYPES,
            rest_over_websocket=settings.ari.rest_over_websocket))
        # first of all: a too old Asterisk gets no app registration, no listener (ari/version_gate.py)
        gate = VersionGate(ari, settings.asterisk)
        checked = await gate.check()
        if gate.refused:
            return 1
        if greet:
            app = StasisApp(ari, make_greeter(settings.calls.greeting))
        else:
            app = await build_routing_app(settings, config_dir, ari, stack, loop, gate)
            log.info("routing: ARI app %r, FastAGI %s:%d, ops API %s:%d", settings.ari.app,
                     settings.agi.host, settings.agi.port, settings.ops.host, settings.ops.port)
        runner = asyncio.create_task(app.run(), name="stasis-app")
        stopper = asyncio.create_task(stop.wait(), name="stop-signal")
        late = None if checked else asyncio.create_task(gate.watch(app.connected, stop), name="asterisk-version")
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in (runner, stopper, late):
            if task is not None:
                task.cancel()
        await asyncio.gather(runner, stopper, *([late] if late else []), return_exceptions=True)
        if runner in done and not runner.cancelled() and runner.exception():
            raise runner.exception()
    return 1 if gate.refused else 0


@dataclass
class Core:
    """identify + decide with their adapters: what the ARI app, AGI and the CLI share."""

    settings: Settings
    redis: Redis
    history: RedisHistoryStore
    crm: CrmService | None
    config: LiveConfig
    router: Router


async def build_core(settings: Settings, config_dir: Path, stack: AsyncExitStack,
                     metrics: Metrics | None = None, clock: Clock | None = None) -> Core:
    redis = redis_for(settings.redis)
    stack.push_async_callback(redis.aclose)
    history = RedisHistoryStore.from_settings(redis, settings.history)
    session = await stack.enter_async_context(aiohttp.ClientSession())
    crm_client = build_crm(settings.crm, config_dir, session)

    def on_crm(status: str, seconds: float) -> None:
        if metrics is not None:
            metrics.crm(seconds, None if status in ("ok", "unknown", "skipped") else status)

    crm = CrmService.from_settings(settings.crm, crm_client, on_result=on_crm) if crm_client else None
    config = LiveConfig(config_dir / settings.routing_file,
                        config_dir / settings.legal_entities_file, crm,
                        numbering_path=config_dir / settings.numbering_file)
    # ~0.6 s and ~100 MB once: in the background, so a restarted process routes at once
    # (until loaded, profiles carry country and time zone but no region name)
    region_names = RegionNames()
    regions = asyncio.create_task(asyncio.to_thread(region_names.load), name="region-names")
    # then move the long-lived start-up objects out of the GC's reach: full collections
    # over them were the 70-85 ms pauses in bench/inprocess.py
    regions.add_done_callback(lambda _: gc.freeze())
    stack.push_async_callback(_finish, regions)
    # a number the CRM does not know, of a company in the legal-entity directory: the company's record
    crm_lookup = CompanyLookup(crm, lambda: config.current.directory) if crm else None
    router = Router(config=config, history=history, crm=crm_lookup,
                    clock=clock or SystemClock(), windows=settings.history.windows(),
                    history_budget_s=settings.history_budget_ms / 1000,
                    crm_budget_s=settings.crm.budget_ms / 1000,
                    default_region=settings.numbers.default_region, region_names=region_names,
                    crm_cache=crm.cached if crm else None)
    return Core(settings, redis, history, crm, config, router)


async def build_routing_app(settings: Settings, config_dir: Path, ari: HttpAri,
                            stack: AsyncExitStack, loop: asyncio.AbstractEventLoop,
                            gate: VersionGate | None = None) -> StasisApp:
    metrics = Metrics()
    if gate is not None:
        metrics.asterisk_below_min_version.set_function(gate.below_minimum)
    metrics.watch_process()  # RSS, open fds, asyncio tasks: what a soak test watches for leaks
    core = await build_core(settings, config_dir, stack, metrics)
    # admission control (docs/reliability.md): `app` and `agi` are bound below, counted
    # once calls arrive; every ARI request's duration is one sample
    gate = DialplanGate(ari, lambda: core.router.shed_target(None),
                        hold_s=settings.admission.gate_hold_s)
    admission = Admission(settings.admission.bounds(), lambda: len(app.calls) + agi.routing,
                          enabled=settings.admission.enabled, metrics=metrics,
                          on_change=gate.admission_changed if settings.admission.dialplan_gate else None)
    ari.on_latency = admission.ari_request
    shed = shed_calls(admission, core.router)
    # one lock for every reload: SIGHUP, POST /reload and `caseline reload` (through the API)
    reloads = ConfigReloads(core.config)
    stack.push_async_callback(reloads.aclose)
    loop.add_signal_handler(signal.SIGHUP, reloads.on_signal)
    pending = PendingWrites(on_dropped=metrics.redis_writes_dropped.inc,
                            on_refused=metrics.redis_writes_refused.inc)
    retry = asyncio.create_task(pending.run(), name="pending-writes")
    stack.callback(retry.cancel)
    recorder = OutcomeRecorder(core.redis, max_entries=settings.decision_log_max,
                               pending=pending, mask_numbers=settings.logging.mask_numbers)
    # `app` is bound below; the observer only counts its calls once calls arrive
    feed = LiveFeed()  # the console's live calls (GET /events/calls)
    observer = CallObserver(metrics, live_count=lambda: len(app.calls), feed=feed)
    callbacks = CallbackStore(core.redis, keep=settings.callbacks.keep)
    filer = CallbackFiler(callbacks, settings.callbacks, pending)  # route steps `callback`
    nodes = await start_shared_presence(settings, core, stack)  # None: a single node
    handler = CallRouting(core.router, Executor(RedisPresence(core.redis),
                                   one_call_per_person=settings.calls.one_call_per_person,
                                   callbacks=filer, nodes=nodes, node_id=settings.node.id,
                                   trunks=settings.node.trunks), recorder,
                          on_decided=observer.decided, on_finished=observer.finished)

    async def on_call_error(call: Call, error: BaseException) -> None:
        metrics.fallback("internal_error")
        await leave_to_dialplan(call, f"caseline_error:{type(error).__name__}")

    def on_reconnect() -> None:
        metrics.ari_reconnects.inc()
        gate.republish()  # a restarted Asterisk has lost the gate's global

    app = StasisApp(ari, handler, on_call_error=on_call_error, on_reconnect=on_reconnect, shed=shed)
    gate.ready = app.connected  # the gate speaks to Asterisk only while ARI is connected

    # FastAGI decisions wait here for their calls' CDRs (the outcome), then go to the log;
    # closed after the listener, which hands over what it still holds
    agi_calls = AgiCalls(recorder, filer, lambda: core.config.current.policy)
    stack.push_async_callback(agi_calls.close)
    cdr = CdrListener(settings.ami, core.history,
                      lambda: learning_rules(core.config.current.policy, settings), pending,
                      redis=core.redis, settle_s=settings.learning.settle_s,
                      on_bad_event=metrics.learning_bad_events.inc,
                      on_row=count_gate_shed(metrics), on_calls=agi_calls.calls_ended)
    metrics.learning_calls_open.set_function(lambda: cdr.gathering)
    await cdr.start()
    stack.push_async_callback(cdr.close)
    dialer = await start_dialer(settings, core, app, callbacks, pending, stack, nodes)
    if dialer is not None:
        filer.on_filed = dialer.wake  # route steps, FastAGI and the ops API alike

    agi = AgiServer(agi_route(core.router), agi_endpoint_of(core.config), settings.agi.host,
                    settings.agi.port, metrics=metrics, shed=shed, calls=agi_calls,
                    compile=agi_compile(core.config, settings.calls.one_call_per_person))
    await _listen(agi, config_dir, "agi.port")
    stack.push_async_callback(agi.close, 2.0)

    ops = OpsServer(create_app(
        token=settings.ops_token, metrics=metrics,
        checks={"ari": ari_check(app), "redis": redis_check(core.redis),
                "ami": lambda: ami_ready(settings.ami)},
        reload=reloads.reload, live_calls=live_view(app.live_calls, app.calls),
        invalidate=invalidate_hook(core.crm, settings.numbers.default_region),
        replay=replay_hook(core.redis, core.config),
        console=console_hooks(redis=core.redis, router=core.router, config=core.config,
                              reload=reloads.reload, feed=feed, crm_configured=core.crm is not None),
        callbacks=callback_hooks(callbacks, filer, core.router, region=settings.numbers.default_region,
                                 mask_numbers=settings.logging.mask_numbers,
                                 dial=dialer.dial_now if dialer else None,
                                 on_filed=dialer.wake if dialer else lambda: None)),
        settings.ops.host, settings.ops.port)
    await _listen(ops, config_dir, "ops.port")
    stack.push_async_callback(ops.close)
    lag = asyncio.create_task(watch_loop_lag(admission), name="loop-lag")  # once app and agi exist
    stack.push_async_callback(_stop, lag)
    if settings.admission.dialplan_gate:
        gate_task = asyncio.create_task(gate.run(), name="dialplan-gate")
        stack.push_async_callback(_stop, gate_task)
    return app


async def _stop(task: asyncio.Task) -> None:
    task.cancel()
    await _finish(task)


# --- presence across nodes (issue 23 item 2) -------------------------------------------------

async def start_shared_presence(settings: Settings, core: Core,
                                stack: AsyncExitStack) -> SharedPresence | None:
    """Off unless `presence.shared` (one node: nothing changes). On: this node's endpoints
    go to Redis, fed through an ARI app of its own (`<app>-presence`, stasis/presence_feed.py
    says why not the call app), and busy checks ask every live node. Stopped with the process."""
    if not settings.presence.shared:
        return None
    registry = SharedPresence(core.redis, settings.node.id, ttl_s=settings.presence.ttl_s)
    ari = await stack.enter_async_context(HttpAri(
        settings.ari.url, settings.ari.user, settings.ari.password.get_secret_value(),
        f"{settings.ari.app}-presence", heartbeat_s=settings.ari.heartbeat_s,
        event_types=PRESENCE_EVENT_TYPES))
    feed = PresenceFeed(ari, registry)
    for run, name in ((registry.run, "presence-writer"), (feed.run, "presence-feed")):
        stack.push_async_callback(_stop, asyncio.create_task(run(), name=name))
    log.info("shared presence: node %s, heartbeat TTL %g s", settings.node.id, settings.presence.ttl_s)
    return registry


async def start_dialer(settings: Settings, core: Core, app: StasisApp, store: CallbackStore,
                       pending: PendingWrites, stack: AsyncExitStack,
                       nodes: SharedPresence | None = None) -> CallbackDialer | None:
    """The callback dialler (stasis/callback_dialer.py), stopped with the process."""
    if not settings.callbacks.enabled:
        return None
    dialer = CallbackDialer(app, store, policy=lambda: core.config.current.policy,
                            history=core.history, presence=RedisPresence(core.redis),
                            settings=settings.callbacks, clock=SystemClock(), pending=pending,
                            nodes=nodes)
    task = asyncio.create_task(dialer.run(), name="callback-dialer")

    async def stop() -> None:
        task.cancel()
        await _finish(task)
    stack.push_async_callback(stop)
    return dialer


def count_gate_shed(metrics: Metrics) -> Callable[[CdrRow], None]:
    """The calls the dialplan gate shed never reach us: their CDRs say so (userfield)."""
    def on_row(row: CdrRow) -> None:
        if row.userfield == SHED_USERFIELD:
            metrics.calls_shed.labels(reason="dialplan_gate").inc()
    return on_row


def shed_calls(admission: Admission, router: Router) -> Shed:
    """What both fronts ask once per new caller: None routes it, a target sheds it."""
    def shed(raw_caller_id: str | None) -> ShedTarget | None:
        if admission.check_new_call() is None:
            return None
        try:
            return router.shed_target(raw_caller_id)
        except Exception:  # a bug here must not stop the event dispatcher: plain operators
            log.exception("admission: no priority for a shed call")
            return ShedTarget(0, DEFAULT_QUEUE)
    return shed


def agi_route(router: Router):
    async def route(raw_caller_id: str | None, call_id: str):
        routed = await router.route(raw_caller_id, call_id)
        return routed.profile, routed.decision
    return route


def agi_compile(config: LiveConfig, one_call_per_person: bool = True):
    """The program the dialplan walks (core/route_program.py), with the running policy's
    people, recordings, mailboxes and IVR menus."""
    endpoint_of = agi_endpoint_of(config)

    def compile(profile: CallerProfile, decision: Decision) -> RouteProgram:
        return compile_route(decision, profile, endpoint_of=endpoint_of,
                             policy=config.current.policy, busy_check=one_call_per_person)
    return compile


def agi_endpoint_of(config: LiveConfig):
    def endpoint_of(person_id: str) -> str | None:
        try:
            return config.current.policy.endpoint_of(person_id)
        except KeyError:
            return None
    return endpoint_of


def ari_check(app: StasisApp):
    async def check() -> bool:
        return app.connected.is_set()
    return check


def redis_check(redis: Redis):
    async def check() -> bool:
        try:
            return bool(await redis.ping())
        except (RedisError, OSError):
            return False
    return check


async def _listen(server: AgiServer | OpsServer, config_dir: Path, key: str) -> None:
    """Bind exclusively; a taken port (another instance?) is one line for the operator."""
    try:
        await server.start()
    except PortInUse as e:
        raise ConfigError(config_dir / "caseline.yaml", key, str(e)) from None


def reload_hook(config: LiveConfig):
    """POST /reload for a config of its own (the daemon shares one ConfigReloads with SIGHUP)."""
    return ConfigReloads(config).reload


def replay_hook(redis: Redis, config: LiveConfig):
    async def replay_candidate(candidate: bytes, since: timedelta) -> dict[str, object]:
        policy = load_policy_bytes(candidate, "<candidate routing.yaml>")  # ConfigError: a 400
        start = datetime.now(UTC) - since
        entries = await entries_since(redis, start)
        # CPU only, but thousands of decide() calls: off the event loop that routes calls
        report = await asyncio.to_thread(replay, entries, config.current.policy, policy, start)
        return report.as_dict()
    return replay_candidate


def invalidate_hook(crm: CrmService | None, region: str):
    async def invalidate(number: str | None) -> dict[str, object]:
        if crm is None:
            return {"ok": True, "invalidated": 0}
        if number is None:
            crm.invalidate_all()
            return {"ok": True, "invalidated": "all"}
        normalized = normalize(number, region)
        if normalized is None:
            return {"ok": False, "error": "not a phone number"}
        crm.invalidate(normalized)
        return {"ok": True, "invalidated": normalized}
    return invalidate


async def reload_dialplan_over_ari(settings: Settings, source: Path, install_dir: Path, *,
                                   timeout_s: float = 10.0, retries: int = 5,
                                   retry_delay_s: float = 0.5) -> ReloadResult:
    """`caseline dialplan reload`: ops/dialplan_reload.py, pbx_config reloaded over ARI (its
    docstring says why not AMI)."""
    password = settings.ari.password.get_secret_value()
    if not password:
        return ReloadResult(False, error="ARI password not configured (CASELINE_ARI_PASSWORD); nothing installed")
    async with HttpAri(settings.ari.url, settings.ari.user, password, settings.ari.app,
                       request_timeout_s=timeout_s) as ari:
        return await reload_dialplan(source, install_dir, ari_module_reload(ari, settings.ari),
                                     retries=retries, retry_delay_s=retry_delay_s)


def ari_module_reload(ari: Ari, settings: AriSettings) -> ReloadModule:
    """ARI's module reload, its answers in ops/dialplan_reload.py's terms."""
    parts = urlsplit(settings.url)
    where = f"ARI at {parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"

    async def reload(module: str) -> str:
        try:
            reloaded = await ari.reload_module(module)
        except AriUnavailable as e:
            cause = e.__cause__
            # no connection means no request: only then is the running dialplan surely unchanged
            sent = not isinstance(cause, aiohttp.ClientConnectorError)
            raise ReloadError(f"{where}: {'no answer' if sent else 'unreachable'} "
                              f"({type(cause or e).__name__})", maybe_done=sent) from None
        except AriError as e:
            answer = e.message.rpartition(f"{module}: ")[2]  # Asterisk's words, after our "PUT path: "
            if e.status in (401, 403):
                reason = f"{where} refused user {settings.user!r} (CASELINE_ARI_PASSWORD, ari.conf)"
            elif e.status == 404:
                reason = f"Asterisk has no module {module} loaded"
            elif e.status == 503:
                reason = "Asterisk is not fully booted yet"
            else:
                reason = f"Asterisk refused to reload {module}"
            raise ReloadError(f"{reason}: {answer}", answer=answer,
                              busy=e.status == 409 and "in progress" in answer.lower()) from None
        return f"{module} reloaded" if reloaded else f"{module} reload queued until Asterisk is fully booted"
    return reload
