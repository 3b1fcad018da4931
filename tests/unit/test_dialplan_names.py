"""The names in ari_app/core/dialplan.py exist in the shipped dialplan and queues."""
from __future__ import annotations

import re
from pathlib import Path

from ari_app.config.learning_settings import LearningSettings
from ari_app.config.settings import load_settings
from ari_app.core import dialplan

PROJECT = Path(__file__).resolve().parents[2]
DIALPLAN = "\n".join(p.read_text() for p in sorted((PROJECT / "dialplan").glob("*.conf")))
CONTEXTS = set(re.findall(r"^\[([^\]]+)\]", DIALPLAN, re.M))


def test_every_context_named_in_code_is_in_the_dialplan() -> None:
    named = {dialplan.INBOUND_CONTEXT, dialplan.ROUTE_CONTEXT, dialplan.OPERATORS_CONTEXT,
             dialplan.VOICEMAIL_CONTEXT, dialplan.AGI_CONTEXT, dialplan.PEOPLE_CONTEXT,
             dialplan.INTERNODE_CONTEXT}
    assert named <= CONTEXTS, named - CONTEXTS


def test_the_stasis_argument_is_the_one_the_dialplan_passes() -> None:
    assert f"Stasis(${{CASELINE_APP}},{dialplan.INBOUND_ARG})" in DIALPLAN


def test_the_default_queue_exists_in_asterisk_and_is_the_dialplan_fallback() -> None:
    queues = (PROJECT / "config" / "asterisk" / "queues.conf").read_text()
    assert f"[{dialplan.DEFAULT_QUEUE}]" in queues
    assert re.search(rf"^OPERATORS_QUEUE\s*=\s*{dialplan.DEFAULT_QUEUE}$", DIALPLAN, re.M)


def test_the_learning_contexts_shipped_are_contexts_of_the_dialplan() -> None:
    shipped = load_settings(PROJECT / "config", env={}).learning
    for contexts in (LearningSettings().inbound_contexts, LearningSettings().people_contexts,
                     shipped.inbound_contexts, shipped.people_contexts):
        assert set(contexts) <= CONTEXTS, set(contexts) - CONTEXTS
