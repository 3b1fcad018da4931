"""Names that Caseline and the shipped dialplan (dialplan/*.conf) agree on, defined once.

A rename in the dialplan is a rename here; tests/unit/test_dialplan_names.py checks that
every name below is a context (or a Stasis argument) of the shipped dialplan.
"""
from __future__ import annotations

INBOUND_CONTEXT = "inbound"  # calls from the trunk enter here
ROUTE_CONTEXT = "caseline-route"  # Stasis(${CASELINE_APP},inbound), operators if the app is away
INBOUND_ARG = "inbound"  # the Stasis argument that marks a caller to route
CALLBACK_TURN_CONTEXT = "caseline-callback-turn"  # Local/<QUEUE_PRIO>@...: a call-back's turn in the queue
OPERATORS_CONTEXT = "operators"  # Queue(${CASELINE_QUEUE}) with QUEUE_PRIO from CASELINE_PRIORITY
VOICEMAIL_CONTEXT = "caseline-voicemail"  # VoiceMail(${CASELINE_MAILBOX})
AGI_CONTEXT = "caseline-agi"  # the FastAGI front's dialplan
PEOPLE_CONTEXT = "internal"  # our people's phones dial from here (pjsip.conf endpoints)
DEFAULT_QUEUE = "operators"  # the operators' queue: where every route that runs out ends
AGI_ASK_CONTEXT = "caseline-agi-ask"  # one FastAGI request under a deadline (Gosub)
AGI_END_CONTEXT = "caseline-agi-end"  # the walker's hangup handler: the outcome into the CDR
FREEPBX_CONTEXT = "caseline-freepbx"  # the FreePBX recipe's Custom Destination
INTERNODE_CONTEXT = "caseline-internode"  # a person's call from another node's trunk (node.trunks)
# FreePBX's own contexts a routed call passes (README "FreePBX"): its CDRs are a client's
FREEPBX_INBOUND_CONTEXTS = ("from-trunk", "ext-queues")

# One character set for every name Caseline hands the dialplan: an endpoint's resource, a
# queue, a mailbox and its context, a sound, a music-on-hold class. routing.yaml accepts
# exactly these (core/policy.py) and the dialplan's REGEX and FILTER expressions let exactly
# these through (tests/unit/test_dialplan_charset.py): a name one side takes is never
# dropped or mangled by the other. FILTER spells the hyphen `\-`.
NAME_CHARS = "A-Za-z0-9_-"
NAME = f"[{NAME_CHARS}]+"
ENDPOINT = f"[A-Za-z0-9]+/{NAME}"  # Technology/resource: "PJSIP/mgr_1", "PJSIP/101"
MAILBOX = f"{NAME}(@{NAME})?"  # box[@context]: "1000@sales-dept"
SOUND = f"{NAME}(/{NAME})*"  # a sound without extension: "custom/closed"


def priority_extension(priority: int) -> str:
    """The extension of OPERATORS_CONTEXT that queues a call at `priority` (`_XXX`: it sets
    CASELINE_PRIORITY from itself), so handing a shed call over needs no variable request.

    >>> priority_extension(20), priority_extension(5), priority_extension(130)
    ('020', '005', '100')
    """
    return f"{max(0, min(100, int(priority))):03d}"
