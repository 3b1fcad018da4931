"""identify: the caller's profile from what history, the CRM and the environment said.

Pure: the answers come in (router.py asks the sources over the ports), the profile goes out.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from ari_app.core.history_class import Windows, classify
from ari_app.core.models import (
    CallerProfile,
    Contact,
    CrmFacts,
    EnvironmentFacts,
    HistoryClass,
    HistoryFacts,
    SourceStatus,
)
from ari_app.core.numbers import is_e164

_SKIPPED_HISTORY = HistoryFacts(status=SourceStatus.SKIPPED, cls=HistoryClass.NEW)
_UNAVAILABLE_HISTORY = HistoryFacts(status=SourceStatus.UNAVAILABLE, cls=HistoryClass.NEW)


def identify(
    number: str | None,
    contacts_or_error: Sequence[Contact] | BaseException,
    crm: CrmFacts,
    env: EnvironmentFacts,
    now: datetime,
    windows: Windows,
) -> CallerProfile:
    """Combine the three sources. A number that is not strict E.164 counts as unidentified."""
    if not is_e164(number):
        return CallerProfile(number=None, history=_SKIPPED_HISTORY, crm=CrmFacts(status=SourceStatus.SKIPPED))
    if isinstance(contacts_or_error, BaseException):
        history = _UNAVAILABLE_HISTORY
    else:
        history = classify(contacts_or_error, now, windows)
    return CallerProfile(number=number, history=history, crm=crm, environment=env)


def decide_input(profile: CallerProfile) -> CallerProfile:
    """The profile decide is given and the decision log keeps: without the CRM record's
    `extra`, the CRM's free-form display data (explain shows it from the CRM's answer).
    No routing rule can read it, and no client's notes end up in the log."""
    rec = profile.crm.record
    if rec is None or not rec.extra:
        return profile
    return replace(profile, crm=replace(profile.crm, record=replace(rec, extra={})))
