"""What the caller hears: ringing or music while a person rings, recordings, DTMF menus."""
from __future__ import annotations

import time

from ari_app.ari.interface import AriError
from ari_app.core.policy import IvrMenu, Policy
from ari_app.stasis.call import Call, channel_of

PLAYBACK_LIMIT_S = 120


async def answer(call: Call) -> None:
    if not call.answered:
        await call.ari.answer(call.id)
        call.answered = True


async def let_caller_wait(call: Call, policy: Policy) -> None:
    """Ringing (180) or music on hold while a person's phone rings (policy.defaults.ringback)."""
    if call.music_on:
        return
    if policy.defaults.ringback == "moh":
        await answer(call)
        await call.ari.start_music(call.id, policy.defaults.moh_class)
        call.music_on = True
    elif not call.answered:
        await call.ari.ring(call.id)


async def stop_waiting(call: Call) -> None:
    if call.music_on:
        call.music_on = False
        try:
            await call.ari.stop_music(call.id)
        except AriError:
            pass


async def play(call: Call, sound: str, *, stop_on_digit: bool = False) -> str | None:
    """Play a sound to the caller; with stop_on_digit, return the first digit pressed."""
    await answer(call)
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


async def collect_choice(call: Call, menu: IvrMenu) -> str | None:
    """Digits for one menu choice: the prompt can be interrupted; options may be multi-digit.

    Returns as soon as the digits name an option that no longer one extends, or cannot begin
    any option; None when nothing was pressed before the menu's timeout.
    """
    first = await play(call, menu.prompt, stop_on_digit=True)
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
