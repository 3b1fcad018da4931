"""`callbacks:` in caseline.yaml: how callback requests are kept and dialled (README,
"Callback requests"). The caller ID shown to the client is routing.yaml's `company.caller_id`."""
from __future__ import annotations

import re
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ari_app.config.history_settings import Duration

# what ARI's /channels/create accepts as an endpoint, once the number is in
_ENDPOINT_RE = re.compile(r"[A-Za-z0-9]+/[A-Za-z0-9_.@+-]+", re.ASCII)


class CallbackSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True  # `caseline run` dials due requests (filing works either way)
    # the client's leg: {digits} is the E.164 number without "+", {e164} with it. Without
    # either, every call-back rings that one endpoint: the docker kit's `client` softphone
    # (PJSIP/client, CASELINE_CALLBACK_DIAL), which answers only its own name.
    dial: str = "PJSIP/{digits}@trunk"
    expire_after: Duration = timedelta(hours=24)  # an open request not placed by then: expired
    keep: Duration = timedelta(days=7)  # finished requests stay listed this long
    max_attempts: int = Field(3, ge=1, le=20)  # attempts that reached nobody, then: failed
    retry_after: Duration = timedelta(minutes=10)
    holder_ring_s: int = Field(30, ge=5, le=120)  # how long the holder's phone rings
    client_ring_s: int = Field(40, ge=5, le=120)  # how long the client's phone rings
    poll_s: float = Field(5.0, ge=0.05, le=300)  # how often due requests are looked at
    max_parallel: int = Field(4, ge=1, le=100)  # call-backs in progress at once (per process)
    # a request naming nobody waits its turn in the operators' queue (at its priority) rather
    # than taking the first free operator; this long at most per attempt
    keep_turn: bool = True
    turn_wait_s: int = Field(600, ge=30, le=3600)
    max_turns: int = Field(50, ge=1, le=1000)  # turns waiting in the queue at once (per process)

    @field_validator("dial")
    @classmethod
    def _dial_string(cls, v: str) -> str:
        fields = re.findall(r"{([^{}]*)}", v)
        if fields not in ([], ["digits"], ["e164"]):
            raise ValueError("takes one {digits} or {e164} at most, e.g. PJSIP/{digits}@trunk")
        if not _ENDPOINT_RE.fullmatch(v.replace("{digits}", "79161234567").replace("{e164}", "+79161234567")):
            raise ValueError("not an ARI endpoint such as PJSIP/{digits}@trunk")
        return v

    @model_validator(mode="after")
    def _durations(self) -> CallbackSettings:
        for name in ("expire_after", "keep", "retry_after"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be > 0")
        return self

    def endpoint(self, number: str) -> str:
        """The client's endpoint for an E.164 `number` ("PJSIP/79161234567@trunk")."""
        return self.dial.replace("{digits}", number.lstrip("+")).replace("{e164}", number)
