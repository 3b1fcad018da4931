"""`admission:` in caseline.yaml: when new calls skip the route (docs/reliability.md,
"Overload: admission control"). A bound set to null is not watched."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ari_app.core.admission import Bounds


class AdmissionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # false: measured and shown on /metrics, never shed (to size the bounds first)
    enabled: bool = True
    # ARI calls in our app (ringing, talking in our bridges) + FastAGI sessions being answered
    max_calls_in_progress: int | None = Field(500, ge=1, le=100_000)
    # mean lateness of a 100 ms timer over the last 1-2 s
    max_loop_lag_ms: float | None = Field(50.0, gt=0, le=10_000)
    # mean duration of ARI requests over the last 1-2 s
    max_ari_latency_ms: float | None = Field(100.0, gt=0, le=10_000)
    # routing resumes once a measure is below this fraction of its bound...
    resume_below: float = Field(0.8, gt=0, le=1)
    # ...and, for lag and latency, has not reached the bound for this long
    hold_s: float = Field(1.0, ge=0, le=60)

    # while shedding, new calls skip Stasis and AGI in the dialplan (a global variable),
    # kept at least this long after shedding stopped; false: each shed call enters Stasis
    dialplan_gate: bool = True
    gate_hold_s: float = Field(5.0, ge=0, le=600)

    def bounds(self) -> Bounds:
        return Bounds(
            calls_in_progress=self.max_calls_in_progress,
            loop_lag_s=None if self.max_loop_lag_ms is None else self.max_loop_lag_ms / 1000,
            ari_latency_s=None if self.max_ari_latency_ms is None else self.max_ari_latency_ms / 1000,
            resume_below=self.resume_below, hold_s=self.hold_s)
