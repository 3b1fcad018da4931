"""The per-call coroutine: identify + decide (shared core), execute, remember."""
from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from ari_app.ari.interface import ChannelGone, NotInStasis
from ari_app.router import Router
from ari_app.stasis.app import Call, CallEnded
from ari_app.stasis.execute import Executor, Outcome, leave_to_dialplan
from ari_app.record.outcomes import OutcomeRecorder

log = logging.getLogger(__name__)


class CallRouting:
    def __init__(self, router: Router, executor: Executor, recorder: OutcomeRecorder,
                 on_decided=None, on_finished=None) -> None:
        self.router = router
        self.executor = executor
        self.recorder = recorder
        self.on_decided = on_decided
        self.on_finished = on_finished

    async def __call__(self, call: Call) -> None:
        started = datetime.now(UTC)
        call.step = "identifying"
        routed = await self.router.route(call.caller_number, call.id)
        call.routed = routed  # type: ignore[attr-defined]
        call.priority = routed.decision.priority  # type: ignore[attr-defined]
        if self.on_decided:
            self.on_decided(call, routed)
        outcome = Outcome()
        try:
            await self.executor.run(call, routed.decision.route, routed.snapshot.policy,
                                    routed.profile, outcome)
        except (CallEnded, ChannelGone, NotInStasis) as e:
            if isinstance(e, CallEnded) or call.hung_up:
                if outcome.result == "unknown":
                    outcome.result = "caller_hung_up"
            else:  # a channel vanished under us, but the caller is still ours: never strand them
                log.warning("call %s: %s in step %s; handing it to the dialplan", call.id, e, call.step)
                outcome.result = "dialplan"
                await leave_to_dialplan(call, "caseline_lost_channel")
        except asyncio.CancelledError:
            outcome.result = "interrupted"
            raise
        except Exception:
            outcome.result = "dialplan"
            log.exception("call %s failed in step %s; handing it to the dialplan", call.id, call.step)
            await leave_to_dialplan(call, "caseline_error")
        finally:
            if outcome.result != "interrupted":
                await self.recorder.record(call.id, started, routed.profile, routed.decision,
                                           outcome, routed.seconds * 1000)
            if self.on_finished:
                self.on_finished(call, routed, outcome)
