"""A new call shed by admission control (core/admission.py) leaves our app at once.

No answer, no ring, no route: the caller goes on in the dialplan to the operators' queue.
The priority travels in the extension (`[operators]` `_XXX` sets CASELINE_PRIORITY from
it), so the hand-over is one `continue` request; a second one, CASELINE_QUEUE, only when
the policy's operators queue is not the dialplan's default. The decision log gets nothing:
the call had no decision to explain or replay, and its CDR still records it.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from ari_app.ari.interface import (
    Ari,
    AriError,
    AriUnavailable,
    ChannelGone,
    NotInStasis,
)
from ari_app.core.admission import ShedTarget
from ari_app.core.dialplan import DEFAULT_QUEUE, OPERATORS_CONTEXT, priority_extension

log = logging.getLogger("caseline.stasis.shed")

# raw caller number -> where to send the call if it must be shed now, else None (admit)
Shed = Callable[[str | None], ShedTarget | None]


async def hand_off(ari: Ari, channel_id: str, target: ShedTarget) -> None:
    try:
        if target.queue != DEFAULT_QUEUE:
            await ari.set_variable(channel_id, "CASELINE_QUEUE", target.queue)
        await ari.continue_in_dialplan(channel_id, OPERATORS_CONTEXT, priority_extension(target.priority))
    except (ChannelGone, NotInStasis):
        pass  # the caller hung up meanwhile
    except (AriError, AriUnavailable) as e:
        # Asterisk is the overloaded part: the caller stays in Stasis until they hang up,
        # or until a reconnect's resync hands them over again
        log.warning("could not hand shed call %s to the dialplan: %s", channel_id, e)
