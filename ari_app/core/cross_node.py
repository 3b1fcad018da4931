"""Which endpoint to ring a person on when their phone may be registered on another
Asterisk node (issue 23 item 3, pure).

Every node defines the same people's endpoints, but a phone registers to one node. A call
arriving on node A for a holder registered on node B is rung through A's PJSIP trunk to B:
`PJSIP/<person's endpoint>@<trunk>` puts the endpoint's name in the request URI's user part,
and B's `[caseline-internode]` context dials its own endpoint of that name. The caller ID
travels in the trunk call's From; the fallbacks stay on node A.

    >>> dial_target("PJSIP/mgr1", here="a", registered_on="b", trunks={"b": "node-b"})
    'PJSIP/mgr1@node-b'
    >>> dial_target("PJSIP/mgr1", here="a", registered_on="a", trunks={"b": "node-b"})
    'PJSIP/mgr1'
    >>> dial_target("PJSIP/mgr1", here="a", registered_on=None, trunks={"b": "node-b"})  # nowhere known
    'PJSIP/mgr1'
    >>> dial_target("PJSIP/mgr1", here="a", registered_on="c", trunks={"b": "node-b"})  # no trunk to c
    'PJSIP/mgr1'
"""
from __future__ import annotations

from collections.abc import Mapping


def dial_target(endpoint: str, *, here: str, registered_on: str | None,
                trunks: Mapping[str, str]) -> str:
    """The endpoint to create the person's leg on. Their own endpoint when the phone is
    registered here, nowhere we know of, or on a node we have no trunk to (Asterisk then
    answers unavailable and the route goes on); else the trunk to the node that has it."""
    if registered_on is None or registered_on == here:
        return endpoint
    trunk = trunks.get(registered_on)
    tech, _, resource = endpoint.partition("/")
    if trunk is None or tech.upper() != "PJSIP" or not resource:
        return endpoint
    return f"PJSIP/{resource}@{trunk}"
