"""Execute a decided route on a call in Stasis: ring people, bridge, queue, IVR, voicemail.

Every wait is bounded, every leg we create is watched before it exists, and whatever
happens the caller ends up somewhere: a person, the operators' queue, voicemail, or a
deliberate hang-up.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from ari_app.ari.interface import AriError, ChannelGone, Event
from ari_app.core.decide import route_for_target
from ari_app.core.dialplan import DEFAULT_QUEUE, OPERATORS_CONTEXT, VOICEMAIL_CONTEXT
from ari_app.core.models import (
    CallerProfile,
    DialResult,
    Outcome,
    OutcomeResult,
    RouteStep,
    StepKind,
)
from ari_app.core.policy import Policy
from ari_app.core.cross_node import dial_target
from ari_app.core.ports import NodePresence, Presence
from ari_app.history.cdr import endpoint_of
from ari_app.record.callbacks import CallbackFiler
from ari_app.stasis.bridges import bridge, drop
from ari_app.stasis.call import (
    ENDED,
    TRANSFERS,
    Call,
    CallEnded,
    channel_of,
    transfer_target,
)
from ari_app.stasis.callback_step import file_callback
from ari_app.stasis.media import collect_choice, let_caller_wait, play, stop_waiting

log = logging.getLogger("caseline.stasis.execute")

MAX_TALK_S = 4 * 3600  # a bridged call longer than this is a stuck channel
MAX_IVR_DEPTH = 3  # an IVR option leading to an IVR leading to an IVR: stop there
LEG_START_TIMEOUT_S = 5.0

# Asterisk's DIALSTATUS -> how the route continues
_DIAL_RESULT = {"BUSY": DialResult.BUSY, "NOANSWER": DialResult.NO_ANSWER,
                "CHANUNAVAIL": DialResult.UNAVAILABLE, "CONGESTION": DialResult.UNAVAILABLE,
                "CANCEL": DialResult.NO_ANSWER, "ANSWER": DialResult.ANSWERED}
# Q.850 causes of a leg destroyed without a Dial result
# the Local channel Asterisk links two bridges with in an attended transfer (bridge.c's
# "_attended@transfer"): not a person; the transfer event names who is behind it
ATTENDED_LINK = "_attended"
_CAUSE_RESULT = {17: DialResult.BUSY, 18: DialResult.NO_ANSWER, 19: DialResult.NO_ANSWER}


@dataclass
class Talk:
    """Who the caller talks with in our bridge: the answered leg, then whoever a transfer
    swapped in for it."""

    current: str  # the channel in our bridge on the person's side
    up: bool = True  # that channel has answered (a transfer's target may still ring)
    person: str = ""  # who is behind `current` (a transfer's Local channel names nobody)
    replacements: list[str] = field(default_factory=list)  # channels transfers brought in
    ended: str | None = None

    def transferred_to(self, channel: str, answered: bool) -> None:
        self.current, self.up = channel, answered
        self.replacements.append(channel)


def _about_talk(event: Event, talk: Talk, bridge_id: str | None) -> bool:
    kind = event.get("type")
    if kind == "ChannelEnteredBridge":
        return (event.get("bridge") or {}).get("id") == bridge_id
    if kind in TRANSFERS:
        # blind: `bridge`; attended: the transferrer's first leg's bridge (ours), and by then
        # the link channel may already stand in the transferrer's place
        bridges = {(event.get(key) or {}).get("id") for key in
                   ("bridge", "transferer_first_leg_bridge", "transferer_second_leg_bridge")}
        return (bridge_id is not None and bridge_id in bridges) or channel_of(event) == talk.current
    return channel_of(event) == talk.current and (kind in ENDED or kind == "ChannelStateChange")


def _state(event: Event, channel_id: str) -> str:
    """The state of `channel_id` as a transfer event shows it."""
    for value in event.values():
        if isinstance(value, dict) and value.get("id") == channel_id:
            return str(value.get("state", ""))
    return ""


async def _caller_left(call: Call, within_s: float = 1.0) -> bool:
    """After a bridge failed: did the caller hang up? Their end event may still be on its way
    (an ARI answer can come before the events Asterisk sent ahead of it)."""
    if call.hung_up:
        return True
    try:
        await call.wait_for(lambda _event: False, within_s)
    except CallEnded:
        return True
    except TimeoutError:
        pass
    return call.hung_up


class Executor:
    def __init__(self, presence: Presence, *, one_call_per_person: bool = True,
                 callbacks: CallbackFiler | None = None, nodes: NodePresence | None = None,
                 node_id: str = "", trunks: Mapping[str, str] | None = None) -> None:
        self.presence = presence
        self.nodes = nodes  # presence across Asterisk nodes (presence.shared); None: this node's
        self.node_id = node_id
        self.trunks = dict(trunks or {})  # node id -> this node's PJSIP trunk to it
        self.one_call_per_person = one_call_per_person
        self.callbacks = callbacks  # files the requests of callback steps (record/callbacks.py)

    async def run(self, call: Call, route: tuple[RouteStep, ...], policy: Policy,
                  profile: CallerProfile, outcome: Outcome, depth: int = 0) -> None:
        """Walk `route` from its first step; fills `outcome`. Raises CallEnded if the caller leaves."""
        index: int | None = 0
        while index is not None and index < len(route):
            step = route[index]
            call.step = f"{step.kind}:{step.target}"
            if step.kind in (StepKind.MANAGER, StepKind.SUPERVISOR):
                position = len(outcome.steps)  # this person's step goes before their transfers
                try:
                    result = await self.ring_person(call, step, policy, profile, outcome)
                except CallEnded:  # the decision log names everyone rung, even then
                    outcome.steps.insert(position, f"{step.target}:{OutcomeResult.CALLER_HUNG_UP}")
                    raise
                outcome.steps.insert(position, f"{step.target}:{result}")
                if result is DialResult.ANSWERED:
                    return
                outcome.fallbacks.append(result)
                index = {DialResult.BUSY: step.on_busy, DialResult.NO_ANSWER: step.on_no_answer,
                         DialResult.TRANSFER_FAILED: step.on_no_answer}.get(result, step.on_unavailable)
                if index is None:  # decide guarantees a fallback; never strand a caller
                    await self.to_queue(call, DEFAULT_QUEUE, policy, outcome)
                    return
            elif step.kind is StepKind.QUEUE:
                await self.to_queue(call, step.target, policy, outcome)
                return
            elif step.kind is StepKind.PLAYBACK:
                await play(call, policy.recordings.get(step.target, step.target))
                outcome.steps.append(f"playback:{step.target}")
                index += 1
            elif step.kind is StepKind.IVR:
                await self.ivr(call, step.target, policy, profile, outcome, depth)
                return
            elif step.kind is StepKind.VOICEMAIL:
                await self.to_voicemail(call, policy.voicemail.get(step.target, step.target), outcome)
                return
            elif step.kind is StepKind.CALLBACK:
                if not await file_callback(call, step, policy, profile, outcome, self.callbacks):
                    await self.to_queue(call, DEFAULT_QUEUE, policy, outcome)  # never strand a caller
                    return
                await self.hangup_caller(call)
                return
            else:
                outcome.steps.append("hangup")
                outcome.result = OutcomeResult.HANGUP
                await self.hangup_caller(call)
                return
        await self.to_queue(call, DEFAULT_QUEUE, policy, outcome)

    # --- people --------------------------------------------------------------------------

    async def ring_person(self, call: Call, step: RouteStep, policy: Policy,
                          profile: CallerProfile, outcome: Outcome) -> DialResult:
        """Ring one person; on answer bridge them with the caller and stay until the call ends."""
        try:
            endpoint = policy.endpoint_of(step.target)
        except KeyError:
            return DialResult.UNAVAILABLE
        if self.one_call_per_person:
            if await self._endpoint_busy(call, endpoint):
                return DialResult.BUSY
            if not await self.presence.claim(step.target, call.id, step.ring_timeout_s + 30):
                return DialResult.BUSY  # another call (maybe another instance) rings or talks to them
        endpoint = await self._reachable_at(endpoint)
        leg = f"{call.id}-{len(outcome.steps) + 1}-{time.monotonic_ns() % 10**6}"
        bridged = leg_gone = False
        talk: Talk | None = None
        try:
            await let_caller_wait(call, policy)
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
            except (AriError, TimeoutError):  # the leg failed, not the caller
                # 404/409: the leg vanished; 500 "Allocation failed": the endpoint has no
                # reachable contact (an unregistered phone). Either way: unavailable.
                return DialResult.UNAVAILABLE
            result = await self._dial_result(call, leg, step.ring_timeout_s + 10)
            if result is not DialResult.ANSWERED:
                return result
            if call.hung_up:
                raise CallEnded(call.id)
            # The person answered: the call is theirs from here, even if the caller leaves
            # while we bridge (their phone already said "answered": a talk of 0 s).
            # While they talk, Asterisk's endpoint view says busy; the claim only has to
            # cover the ringing window, where two instances could pick the same person.
            outcome.result = OutcomeResult.ANSWERED
            outcome.answered_by = step.target
            try:
                await bridge(call, leg)
            except (CallEnded, AriError):  # 400 "Channel not found", 404, 422 not in Stasis
                if await _caller_left(call):
                    return DialResult.ANSWERED
                raise
            bridged = True
            started = time.monotonic()
            talk = Talk(leg)
            try:
                result = await self._talk(call, talk, policy, outcome)
                leg_gone = talk.ended == leg  # the person hung up: only the caller is left
                if result is DialResult.TRANSFER_FAILED:
                    bridged = False  # the caller stays ours: the route goes on
                return result
            except CallEnded:
                return DialResult.ANSWERED  # the caller hung up first
            finally:
                outcome.talk_s = int(time.monotonic() - started)
        finally:
            # a transfer's channel still up (the caller left first) goes with the call
            others = [c for c in talk.replacements if c != talk.ended] if talk else []
            await drop(call, leg, hang_up_caller=bridged, leg_gone=leg_gone, others=others)
            if self.one_call_per_person:  # only then was there a claim to release
                await self.presence.release(step.target, call.id)

    async def _talk(self, call: Call, talk: Talk, policy: Policy, outcome: Outcome) -> DialResult:
        """Stay while the caller talks with a person, following transfers by that person.

        A transfer swaps another channel into our bridge in the person's place (Asterisk's
        BridgeBlindTransfer / BridgeAttendedTransfer); the call goes on with it. Returns
        ANSWERED when the conversation ends, TRANSFER_FAILED when a transfer's target hung
        up without ever answering (a blind transfer's transferrer is gone by then).
        """
        while True:
            event = await call.wait_for(lambda e: _about_talk(e, talk, call.bridge), MAX_TALK_S)
            kind = event.get("type")
            if kind == "ChannelEnteredBridge":
                # the swap itself: it comes before the transfer event, and before the
                # transferrer's phone may already have hung up
                joined = channel_of(event)
                if joined and joined not in (call.id, talk.current) and joined not in talk.replacements:
                    self._swapped_in(talk, joined, _state(event, joined) == "Up",
                                     self._who(event, policy), outcome)
            elif kind in TRANSFERS:
                person = self._attended_target(event, policy)
                if (target := transfer_target(event)) and target != talk.current:
                    self._swapped_in(talk, target, _state(event, target) == "Up",
                                     person or self._who(event, policy), outcome)
                elif person and outcome.steps and outcome.steps[-1] == f"transfer:{ATTENDED_LINK}":
                    # the link channel came first; now Asterisk names who is behind it
                    outcome.steps[-1] = f"transfer:{person}"
                    talk.person = person
                    if talk.up:
                        outcome.answered_by = person
            elif kind == "ChannelStateChange":
                if (event.get("channel") or {}).get("state") == "Up" and not talk.up:
                    talk.up = True  # the link of an attended transfer may come up before
                    # or after the transfer event names the person: who is behind it counts
                    who = talk.person if talk.person != ATTENDED_LINK else ""
                    who = who or self._who(event, policy)
                    if who and who != ATTENDED_LINK:
                        outcome.answered_by = who
            else:  # the channel the caller talks with has ended
                talk.ended = talk.current
                if talk.up:
                    return DialResult.ANSWERED
                outcome.steps.append("transfer:no_answer")
                return DialResult.TRANSFER_FAILED

    @staticmethod
    def _swapped_in(talk: Talk, channel: str, up: bool, who: str, outcome: Outcome) -> None:
        """A transfer put `channel` in the person's place; already talking: they answered."""
        talk.transferred_to(channel, up)
        talk.person = who
        outcome.steps.append(f"transfer:{who}")
        if up and who:
            outcome.answered_by = who

    @staticmethod
    def _attended_target(event: Event, policy: Policy) -> str:
        """Who an attended transfer joined the caller with: its `transfer_target` channel
        (the consulted person), whatever channel links the two bridges."""
        if event.get("type") != "BridgeAttendedTransfer" or event.get("result") != "Success":
            return ""
        name = str((event.get("transfer_target") or {}).get("name", ""))
        person = endpoint_of(name) or ""
        return policy.people.by_endpoint().get(person, person)

    @staticmethod
    def _who(event: Event, policy: Policy) -> str:
        """The person a transfer or a replacement channel leads to ("mgr3" of Local/mgr3@internal)."""
        exten = str(event.get("exten") or "")
        channel = (event.get("channel") or {}).get("name", "")
        name = exten or endpoint_of(str(channel)) or ""
        return policy.people.by_endpoint().get(name, name)

    async def _reachable_at(self, endpoint: str) -> str:
        """The person's own endpoint, or the trunk to the node their phone is registered on."""
        if self.nodes is None or not self.trunks:
            return endpoint
        node, _online = await self.nodes.where(endpoint)
        return dial_target(endpoint, here=self.node_id, registered_on=node, trunks=self.trunks)

    async def _endpoint_busy(self, call: Call, endpoint: str) -> bool:
        """On a call already: Asterisk knows channels on the endpoint (their own calls too);
        with shared presence, so does any other node's Asterisk, through Redis."""
        try:
            details = await call.ari.endpoint(endpoint)
        except AriError:
            details = {}  # unknown here (maybe another node's phone): the dial itself tells
        if details.get("channel_ids"):
            return True
        return self.nodes is not None and await self.nodes.busy(endpoint)

    async def _dial_result(self, call: Call, leg: str, timeout: float) -> DialResult:
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
            return DialResult.NO_ANSWER
        log.debug("leg %s: %s %s cause=%s", leg, event.get("type"), event.get("dialstatus", ""),
                  event.get("cause", ""))
        if event.get("type") == "Dial":
            return _DIAL_RESULT[event["dialstatus"]]
        return _CAUSE_RESULT.get(int(event.get("cause") or 0), DialResult.UNAVAILABLE)

    # --- terminal steps --------------------------------------------------------------------

    async def to_queue(self, call: Call, queue_id: str, policy: Policy, outcome: Outcome) -> None:
        """Hand the caller to the dialplan's operators context with our priority."""
        queue = policy.queues[queue_id].asterisk_queue if queue_id in policy.queues else queue_id
        await stop_waiting(call)
        await call.ari.set_variable(call.id, "CASELINE_PRIORITY", str(call.priority))
        await call.ari.set_variable(call.id, "CASELINE_QUEUE", queue)
        await call.ari.continue_in_dialplan(call.id, OPERATORS_CONTEXT)
        outcome.steps.append(f"queue:{queue}")
        outcome.result = OutcomeResult.QUEUE

    async def to_voicemail(self, call: Call, mailbox: str, outcome: Outcome) -> None:
        await stop_waiting(call)
        await call.ari.set_variable(call.id, "CASELINE_MAILBOX", mailbox)
        await call.ari.continue_in_dialplan(call.id, VOICEMAIL_CONTEXT)
        outcome.steps.append(f"voicemail:{mailbox}")
        outcome.result = OutcomeResult.VOICEMAIL

    async def hangup_caller(self, call: Call) -> None:
        try:
            await call.ari.hangup(call.id)
        except ChannelGone:
            pass

    async def ivr(self, call: Call, menu_id: str, policy: Policy, profile: CallerProfile,
                  outcome: Outcome, depth: int) -> None:
        menu = policy.ivr.get(menu_id)
        if menu is None or depth >= MAX_IVR_DEPTH:
            await self.to_queue(call, DEFAULT_QUEUE, policy, outcome)
            return
        outcome.steps.append(f"ivr:{menu_id}")
        for _attempt in range(menu.retries + 1):
            digits = await collect_choice(call, menu)
            if digits is None:
                continue  # no input: replay the prompt
            if digits in menu.options:
                outcome.steps.append(f"ivr:{menu_id}:{digits}")
                route = route_for_target(policy, menu.options[digits], profile)
                await self.run(call, route, policy, profile, outcome, depth + 1)
                return
            outcome.steps.append(f"ivr:{menu_id}:invalid")
            await play(call, menu.invalid_prompt)
        outcome.steps.append(f"ivr:{menu_id}:timeout")
        route = route_for_target(policy, menu.on_timeout, profile)
        await self.run(call, route, policy, profile, outcome, depth + 1)


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
