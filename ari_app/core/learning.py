"""Learning who holds a client's case from what happened on a call.

Whoever really talked with the client holds the case for the next call: the last manager
or supervisor who talked at least `min_talk_s`. An operator who answered and transferred
is in the call's history but holds nothing; an operator who kept the call is recorded as
its talker, and the routing policy decides what an operator's client gets.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum

from ari_app.core.models import Talk


class Role(StrEnum):
    MANAGER = "manager"
    SUPERVISOR = "supervisor"
    OPERATOR = "operator"


HOLDER_ROLES = frozenset({Role.MANAGER, Role.SUPERVISOR})


def case_holder(talks: Iterable[Talk], roles: Mapping[str, Role], min_talk_s: int) -> str | None:
    """The person who holds the case after a call with these talks (in order), or None.

    >>> roles = {"op1": Role.OPERATOR, "mgr2": Role.MANAGER, "mgr3": Role.MANAGER}
    >>> case_holder([Talk("op1", 40), Talk("mgr2", 180)], roles, 10)
    'mgr2'
    >>> case_holder([Talk("mgr2", 180), Talk("mgr3", 3)], roles, 10)  # a 3 s talk holds nothing
    'mgr2'
    >>> case_holder([Talk("op1", 300)], roles, 10) is None
    True
    """
    held = None
    for talk in talks:
        if roles.get(talk.person) in HOLDER_ROLES and talk.seconds >= min_talk_s:
            held = talk.person
    return held


def merge_talks(talks: Iterable[Talk]) -> tuple[Talk, ...]:
    """Consecutive talks of one person (a hold, a re-bridge) are one talk.

    >>> merge_talks([Talk("op1", 5), Talk("op1", 7), Talk("mgr2", 60)])
    (Talk(person='op1', seconds=12), Talk(person='mgr2', seconds=60))
    """
    merged: list[Talk] = []
    for talk in talks:
        if merged and merged[-1].person == talk.person:
            merged[-1] = Talk(talk.person, merged[-1].seconds + talk.seconds)
        else:
            merged.append(talk)
    return tuple(merged)
