"""`learning:` in caseline.yaml: what a call record means at this site.

Shared by the live CDR listener and `caseline import-cdr`, so both learn the same way. The
defaults fit the shipped dialplan; a FreePBX site sets its own contexts (README).
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ari_app.core.dialplan import (
    AGI_ASK_CONTEXT,
    AGI_CONTEXT,
    AGI_END_CONTEXT,
    FREEPBX_CONTEXT,
    FREEPBX_INBOUND_CONTEXTS,
    INBOUND_CONTEXT,
    OPERATORS_CONTEXT,
    PEOPLE_CONTEXT,
    ROUTE_CONTEXT,
    VOICEMAIL_CONTEXT,
)

Context = str


class LearningSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # contexts where a call from outside is handled: its CDRs are inbound calls of a client
    # (a CDR names the context of a hangup handler that ran in it: the FastAGI walker's)
    inbound_contexts: tuple[Context, ...] = (
        INBOUND_CONTEXT, ROUTE_CONTEXT, OPERATORS_CONTEXT, AGI_CONTEXT, AGI_ASK_CONTEXT,
        AGI_END_CONTEXT, VOICEMAIL_CONTEXT, FREEPBX_CONTEXT, *FREEPBX_INBOUND_CONTEXTS)
    # contexts our people's phones dial from: a call from there to a number outside is outbound
    people_contexts: tuple[Context, ...] = (PEOPLE_CONTEXT,)
    # a talk shorter than this makes nobody the case holder (a wrong number, "hold on")
    min_talk_s: int = Field(10, ge=0, le=3600)
    # the live listener waits this long after a call's last CDR before it learns from it
    # (Asterisk posts a transferred call's records one channel at a time)
    settle_s: float = Field(2.0, gt=0, le=60)
