"""Execute a decided route on a call in Stasis: ring people, bridge, queue, IVR, voicemail.

Every wait is bounded, every leg we create is watched before it exists, and whatever
happens the caller ends up somewhere: a person, the operators' queue, voicemail, or a
deliberate hang-up.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from ari_app.ari.interface import AriError, ChannelGone, NotInStasis
from ari_app.core.decide import route_for_target
from ari_app.core.models import CallerProfile, RouteStep, StepKind
from ari_app.core.policy import IvrMenu, Policy
from ari_app.stasis.app import Call, CallEnded, channel_of
from ari_app.stasis.presence import Presence

log = logging.getLogger(__name__)

OPERATORS_CONTEXT = "operators"  # dialplan/extensions.conf
VOICEMAIL_CONTEXT = "caseline-voicemail"
MAX_TALK_S = 4 * 3600  # a bridged call longer than this is a stuck channel
PLAYBACK_LIMIT_S = 120
MAX_IVR_DEPTH = 3
LEG_START_TIMEOUT_S = 5.0  # an IVR option leading to an IVR leading to an IVR: stop there

# Asterisk's DIALSTATUS -> how the route continues
_DIAL_RESULT = {"BUSY": "busy", "NOANSWER": "no_answer", "CHANUNAVAIL": "unavailable",
                "CONGESTION": "unavailable", "CANCEL": "no_answer", "ANSWER": "answered"}


@dataclass
class Outcome:
    result: str = "unknown"  # answered | queue | voicemail | hangup | caller_hung_up | dialplan
    answered_by: str | None = None
    talk_s: int = 0
    steps: list[str] = field(default_factory=list)  # "mgr1:busy", "queue:operators", ...
    fallbacks: list[str] = field(default_factory=list)  # "busy", "no_answer", ...


class Executor:
    def __init__(self, presence: Presence, *, one_call_per_person: bool = True) -> None:
        self.presence = presence
        self.one_call_per_person = one_call_per_person

    async def run(self, call: Call, route: tuple[RouteStep, ...], policy: Policy,
                  profile: CallerProfile, outcome: Outcome, depth: int = 0) -> None:
        """Walk `route` from its first step; fills `outcome`. Raises CallEnded if the caller leaves."""
        index: int | None = 0
        while index is not None and index < len(route):
            step = route[index]
            call.step = f"{step.kind}:{step.target}"
            if step.kind in (StepKind.MANAGER, StepKind.SUPERVISOR):
                result = await self.ring_person(call, step, policy, profile, outcome)
                outcome.steps.append(f"{step.target}:{result}")
                if result == "answered":
                    return
                outcome.fallbacks.append(result)
                index = {"busy": step.on_busy, "no_answer": step.on_no_answer}.get(result, step.on_unavailable)
                if index is None:  # decide guarantees a fallback; never strand a caller
                    await self.to_queue(call, "operators", policy, outcome)
                    return
            elif step.kind is StepKind.QUEUE:
                await self.to_queue(call, step.target, policy, outcome)
                return
            elif step.kind is StepKind.PLAYBACK:
                await self.play(call, policy.recordings.get(step.target, step.target))
                outcome.steps.append(f"playback:{step.target}")
                index += 1
            elif step.kind is StepKind.IVR:
                await self.ivr(call, step.target, policy, profile, outcome, depth)
                return
            elif step.kind is StepKind.VOICEMAIL:
                await self.to_voicemail(call, policy.voicemail.get(step.target, step.target), outcome)
                return
            else:
                outcome.steps.append("hangup")
                outcome.result = "hangup"
                await self.hangup_caller(call)
                return
        await self.to_queue(call, "operators", policy, outcome)

    # --- people --------------------------------------------------------------------------

    async def ring_person(self, call: Call, step: RouteStep, policy: Policy,
                          profile: CallerProfile, outcome: Outcome) -> str:
        """Ring one person; on answer bridge them with the caller and stay until the call ends."""
        try:
            endpoint = policy.endpoint_of(step.target)
        except KeyError:
            return "unavailable"
        if self.one_call_per_person:
            if await self._endpoint_busy(call, endpoint):
                return "busy"
            if not await self.presence.claim(step.target, call.id, step.ring_timeout_s + 30):
                return "busy"  # another call (maybe another instance) rings or talks to them
        leg = f"{call.id}-{len(outcome.steps) + 1}-{time.monotonic_ns() % 10**6}"
        bridged = leg_gone = False
        try:
            await self._let_caller_wait(call, policy)
            call.watch(leg)  # subscribe before we act: the leg's first events must reach us
            try:
                await call.ari.create_channel(
                    endpoint, channel_id=leg, app_args=f"leg,{call.id}", originator=call.id,
                    variables={"CALLERID(num)": profile.number or "anonymous",
                               "CALLERID(name)": profile.number or "anonymous"})
                # /channels/create answers before the channel is in our app: dialling it
                # earlier gets 409 "not in Stasis", so wait for its StasisStart.
                await call.wait_for(lambda e: e.get("type") == "StasisStart"
                                    and channel_of(e) == leg, LEG_START_TIMEOUT_S)
                await call.ari.dial(leg, step.ring_timeout_s, caller=call.id)
            except (ChannelGone, NotInStasis, TimeoutError):  # the leg failed, not the caller
                return "unavailable"
            result = await self._dial_result(call, leg, step.ring_timeout_s + 10)
            if result != "answered":
                return result
            if call.hung_up:
                raise CallEnded(call.id)
            await self._bridge(call, leg)
            bridged = True
            # While they talk, Asterisk's endpoint view says busy; the claim only has to
            # cover the ringing window, where two instances could pick the same person.
            outcome.result = "answered"
            outcome.answered_by = step.target
            started = time.monotonic()
            try:
                await call.wait_for(lambda e: channel_of(e) == leg
                                    and e.get("type") in ("StasisEnd", "ChannelDestroyed"), MAX_TALK_S)
                leg_gone = True  # the person hung up: only the caller is left to hang up
            except CallEnded:
                pass  # the caller hung up first
            finally:
                outcome.talk_s = int(time.monotonic() - started)
            return "answered"
        finally:
            await self._drop(call, leg, hang_up_caller=bridged, leg_gone=leg_gone)
            if self.one_call_per_person:  # only then was there a claim to release
                await self.presence.release(step.target, call.id)

    async def _endpoint_busy(self, call: Call, endpoint: str) -> bool:
        """On a call already: Asterisk knows channels on the endpoint (their own calls too)."""
        try:
            details = await call.ari.endpoint(endpoint)
        except AriError:
            return False  # unknown endpoint state: let the dial itself tell
        return bool(details.get("channel_ids"))

    async def _dial_result(self, call: Call, leg: str, timeout: float) -> str:
        def final(event) -> bool:
            if channel_of(event) != leg:
                return False
            if event.get("type") == "Dial":
                return event.get("dialstatus") in _DIAL_RESULT
            # not StasisEnd: it comes first and carries no cause; ChannelDestroyed has one
            return event.get("type") == "ChannelDestroyed"

        try:
            event = await call.wait_for(final, timeout)
        except TimeoutError:
            return "no_answer"
        log.debug("leg %s: %s %s cause=%s", leg, event.get("type"), event.get("dialstatus", ""),
                 event.get("cause", ""))
        if event.get("type") == "Dial":
            return _DIAL_RESULT[event["dialstatus"]]
        cause = int(event.get("cause") or 0)
        return "busy" if cause == 17 else "no_answer" if cause in (18, 19) else "unavailable"

    async def _let_caller_wait(self, call: Call, policy: Policy) -> None:
        """Ringing (180) or music on hold while a person's phone rings (policy.defaults.ringback)."""
        if getattr(call, "music_on", False):
            return
        if policy.defaults.ringback == "moh":
            await self._answer(call)
            await call.ari.start_music(call.id, policy.defaults.moh_class)
            call.music_on = True  # type: ignore[attr-defined]
        elif not getattr(call, "answered", False):
            await call.ari.ring(call.id)

    async def _answer(self, call: Call) -> None:
        if not getattr(call, "answered", False):
            await call.ari.answer(call.id)
            call.answered = True  # type: ignore[attr-defined]

    async def _bridge(self, call: Call, leg: str) -> None:
        await self._stop_waiting(call)
        await self._answer(call)
        bridge = f"{call.id}-bridge"
        await call.ari.create_bridge(bridge)
        call.bridge = bridge  # type: ignore[attr-defined]
        await call.ari.add_to_bridge(bridge, [call.id, leg])

    async def _drop(self, call: Call, leg: str, *, hang_up_caller: bool, leg_gone: bool = False) -> None:
        """Hang up the leg (and after a talk, the caller); remove the bridge. Idempotent.

        A channel whose end we already saw is not hung up again: each request costs ARI
        work on both sides (~0.2 ms of our CPU) and would only answer 404.
        """
        if call.app.replaced:
            call.unwatch(leg)
            return  # the process that replaced us adopted this call: leave it talking
        channels = [] if leg_gone else [leg]
        if hang_up_caller and not call.hung_up:
            channels.append(call.id)
        for channel in channels:
            try:
                await call.ari.hangup(channel)
            except (ChannelGone, AriError):
                pass
            except Exception:  # noqa: BLE001 - keep tearing down, but say so
                log.exception("could not hang up %s", channel)
        call.unwatch(leg)
        bridge = getattr(call, "bridge", None)
        if bridge:
            call.bridge = None  # type: ignore[attr-defined]
            try:
                await call.ari.destroy_bridge(bridge)
            except AriError:
                pass

    # --- terminal steps --------------------------------------------------------------------

    async def to_queue(self, call: Call, queue_id: str, policy: Policy, outcome: Outcome) -> None:
        """Hand the caller to the dialplan's operators context with our priority."""
        queue = policy.queues[queue_id].asterisk_queue if queue_id in policy.queues else queue_id
        await self._stop_waiting(call)
        await call.ari.set_variable(call.id, "CASELINE_PRIORITY", str(getattr(call, "priority", 0)))
        await call.ari.set_variable(call.id, "CASELINE_QUEUE", queue)
        await call.ari.continue_in_dialplan(call.id, OPERATORS_CONTEXT)
        outcome.steps.append(f"queue:{queue}")
        outcome.result = "queue"

    async def to_voicemail(self, call: Call, mailbox: str, outcome: Outcome) -> None:
        await self._stop_waiting(call)
        await call.ari.set_variable(call.id, "CASELINE_MAILBOX", mailbox)
        await call.ari.continue_in_dialplan(call.id, VOICEMAIL_CONTEXT)
        outcome.steps.append(f"voicemail:{mailbox}")
        outcome.result = "voicemail"

    async def hangup_caller(self, call: Call) -> None:
        try:
            await call.ari.hangup(call.id)
        except ChannelGone:
            pass

    async def _stop_waiting(self, call: Call) -> None:
        if getattr(call, "music_on", False):
            call.music_on = False  # type: ignore[attr-defined]
            try:
                await call.ari.stop_music(call.id)
            except AriError:
                pass

    async def play(self, call: Call, sound: str, *, stop_on_digit: bool = False) -> str | None:
        """Play a sound to the caller; with stop_on_digit, return the first digit pressed."""
        await self._answer(call)
        playback = f"{call.id}-play-{time.monotonic_ns()}"
        await call.ari.play(call.id, f"sound:{sound}", playback)

        def done(event) -> bool:
            if event.get("type") == "PlaybackFinished":
                return (event.get("playback") or {}).get("id") == playback
            return stop_on_digit and event.get("type") == "ChannelDtmfReceived" and channel_of(event) == call.id

        event = await call.wait_for(done, PLAYBACK_LIMIT_S)
        if event.get("type") == "ChannelDtmfReceived":
            try:
                await call.ari.stop_playback(playback)
            except AriError:
                pass
            return str(event.get("digit", ""))
        return None

    async def ivr(self, call: Call, menu_id: str, policy: Policy, profile: CallerProfile,
                  outcome: Outcome, depth: int) -> None:
        menu = policy.ivr.get(menu_id)
        if menu is None or depth >= MAX_IVR_DEPTH:
            await self.to_queue(call, "operators", policy, outcome)
            return
        outcome.steps.append(f"ivr:{menu_id}")
        for attempt in range(menu.retries + 1):
            digits = await self._collect(call, menu, menu.prompt)
            if digits is None:
                continue  # no input: replay the prompt
            if digits in menu.options:
                outcome.steps.append(f"ivr:{menu_id}:{digits}")
                route = route_for_target(policy, menu.options[digits], profile)
                await self.run(call, route, policy, profile, outcome, depth + 1)
                return
            outcome.steps.append(f"ivr:{menu_id}:invalid")
            await self.play(call, menu.invalid_prompt)
        outcome.steps.append(f"ivr:{menu_id}:timeout")
        route = route_for_target(policy, menu.on_timeout, profile)
        await self.run(call, route, policy, profile, outcome, depth + 1)

    async def _collect(self, call: Call, menu: IvrMenu, prompt: str) -> str | None:
        """Digits for one menu choice: the prompt can be interrupted; options may be multi-digit."""
        first = await self.play(call, prompt, stop_on_digit=True)
        digits = first or ""
        longest = max(len(d) for d in menu.options)
        while len(digits) < longest:
            if digits and (digits in menu.options and not any(
                    o.startswith(digits) and o != digits for o in menu.options)):
                break
            if digits and not any(o.startswith(digits) for o in menu.options):
                break
            try:
                event = await call.wait_for(lambda e: e.get("type") == "ChannelDtmfReceived"
                                            and channel_of(e) == call.id, menu.timeout_s)
            except TimeoutError:
                break
            digits += str(event.get("digit", ""))
        return digits or None


async def leave_to_dialplan(call: Call, reason: str) -> None:
    """Last resort after an internal error: the operators' queue, if the caller is still ours."""
    try:
        await call.ari.set_variable(call.id, "CASELINE_FALLBACK", reason[:60])
        await call.ari.continue_in_dialplan(call.id, OPERATORS_CONTEXT)
    except (ChannelGone, AriError):
        pass
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - the original error is already logged
        log.exception("could not hand call %s to the dialplan", call.id)
