"""Names that Caseline and the shipped dialplan (dialplan/*.conf) agree on, defined once.

A rename in the dialplan is a rename here; tests/unit/test_dialplan_names.py checks that
every name below is a context (or a Stasis argument) of the shipped dialplan.
"""
from __future__ import annotations

INBOUND_CONTEXT = "inbound"  # calls from the trunk enter here
ROUTE_CONTEXT = "caseline-route"  # Stasis(${CASELINE_APP},inbound), operators if the app is away
INBOUND_ARG = "inbound"  # the Stasis argument that marks a caller to route
OPERATORS_CONTEXT = "operators"  # Queue(${CASELINE_QUEUE}) with QUEUE_PRIO from CASELINE_PRIORITY
VOICEMAIL_CONTEXT = "caseline-voicemail"  # VoiceMail(${CASELINE_MAILBOX})
AGI_CONTEXT = "caseline-agi"  # the FastAGI front's dialplan
PEOPLE_CONTEXT = "internal"  # our people's phones dial from here (pjsip.conf endpoints)
DEFAULT_QUEUE = "operators"  # the operators' queue: where every route that runs out ends


def priority_extension(priority: int) -> str:
    """The extension of OPERATORS_CONTEXT that queues a call at `priority` (`_XXX`: it sets
    CASELINE_PRIORITY from itself), so handing a shed call over needs no variable request.

    >>> priority_extension(20), priority_extension(5), priority_extension(130)
    ('020', '005', '100')
    """
    return f"{max(0, min(100, int(priority))):03d}"
