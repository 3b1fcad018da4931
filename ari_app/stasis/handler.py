"""The per-call coroutine: identify + decide (router), execute (executor), remember (recorder)."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from ari_app.ari.interface import ChannelGone, NotInStasis
from ari_app.core.models import Outcome, OutcomeResult
from ari_app.record.outcomes import OutcomeRecorder
from ari_app.router import Routed, Router
from ari_app.stasis.call import Call, CallEnded
from ari_app.stasis.execute import Executor, leave_to_dialplan

log = logging.getLogger("caseline.stasis.handler")


class CallRouting:
    def __init__(self, router: Router, executor: Executor, recorder: OutcomeRecorder,
                 on_decided: Callable[[str, Routed], None] | None = None,
                 on_finished: Callable[[str, Routed, Outcome], None] | None = None) -> None:
        self.router = router
        self.executor = executor
        self.recorder = recorder
        self.on_decided = on_decided
        self.on_finished = on_finished

    async def __call__(self, call: Call) -> None:
        started = datetime.now(UTC)
        call.step = "identifying"
        routed = await self.router.route(call.caller_number, call.id)
        call.routed = routed
        call.priority = routed.decision.priority
        if self.on_decided:
            self.on_decided(call.id, routed)
        outcome = Outcome()
        try:
            await self.executor.run(call, routed.decision.route, routed.snapshot.policy,
                                    routed.profile, outcome)
        except (CallEnded, ChannelGone, NotInStasis) as e:
            if isinstance(e, CallEnded) or call.hung_up:
                if outcome.result is OutcomeResult.UNKNOWN:
                    outcome.result = OutcomeResult.CALLER_HUNG_UP
            else:  # a channel vanished under us, but the caller is still ours: never strand them
                log.warning("call %s: %s in step %s; handing it to the dialplan", call.id, e, call.step)
                outcome.result = OutcomeResult.DIALPLAN
                await leave_to_dialplan(call, "caseline_lost_channel")
        except asyncio.CancelledError:
            outcome.result = OutcomeResult.INTERRUPTED
            raise
        except Exception:
            outcome.result = OutcomeResult.DIALPLAN
            log.exception("call %s failed in step %s; handing it to the dialplan", call.id, call.step)
            await leave_to_dialplan(call, "caseline_error")
        finally:
            if outcome.result is not OutcomeResult.INTERRUPTED:
                await self.recorder.record(call.id, started, routed.profile, routed.decision,
                                           outcome, routed.seconds * 1000)
            if self.on_finished:
                self.on_finished(call.id, routed, outcome)
