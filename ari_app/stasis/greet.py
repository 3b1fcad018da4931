"""The simplest call: answer, play a prompt, hang up (`caseline run --greet`, the lab's smoke test)."""
from __future__ import annotations

from ari_app.ari.interface import ChannelGone
from ari_app.stasis.call import Call

PROMPT_TIMEOUT_S = 30


def make_greeter(media: str):
    async def greet(call: Call) -> None:
        call.step = "greeting"
        await call.ari.answer(call.id)
        playback_id = f"{call.id}-greeting"
        await call.ari.play(call.id, media, playback_id)
        await call.wait_for(lambda e: e.get("type") == "PlaybackFinished"
                            and (e.get("playback") or {}).get("id") == playback_id,
                            timeout=PROMPT_TIMEOUT_S)
        try:
            await call.ari.hangup(call.id)
        except ChannelGone:
            pass
    return greet
