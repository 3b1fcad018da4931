"""A branch's call is identified as its parent company.

A large client's branch calls from a number its CRM does not know. The legal-entity
directory maps that number (or its prefix) to a company, and a branch to its parent. When
the CRM does not know the caller's number, it is asked for that company (the parent of a
branch, else the company itself) within what is left of the per-call budget, and the
company's record becomes the caller's: the parent's responsible manager takes the call.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable

from ari_app.core.environment import LegalDirectory
from ari_app.core.models import CrmFacts, LegalEntity, SourceStatus
from ari_app.crm.service import CrmService

MIN_LEFT_S = 0.01  # less budget than this left: not worth a second request


class CompanyLookup:
    """The CrmLookup port (core/ports.py) over a CrmService, with the directory's companies."""

    def __init__(self, service: CrmService, directory: Callable[[], LegalDirectory]) -> None:
        self.service = service
        self.directory = directory  # the live one: a reload's new directory counts at once

    async def __call__(self, number: str) -> CrmFacts:
        loop = asyncio.get_running_loop()
        started = loop.time()
        facts = await self.service.facts(number)
        if facts.status is not SourceStatus.UNKNOWN:
            return facts
        entity = self.directory().lookup(number)
        company = entity.crm_company if entity is not None else None
        if entity is None or company is None:
            return facts
        about = _which(entity, company)
        left = self.service.budget_s - (loop.time() - started)
        if left < MIN_LEFT_S:
            return CrmFacts(SourceStatus.UNKNOWN, detail=f"{facts.detail}; no budget left to ask for {about}")
        answer = await self.service.company_facts(company, budget_s=left)
        if answer.status is SourceStatus.OK:
            return CrmFacts(SourceStatus.OK, answer.record, detail=f"number not in CRM: {about}")
        if answer.status in (SourceStatus.UNKNOWN, SourceStatus.SKIPPED):
            return CrmFacts(SourceStatus.UNKNOWN, detail=f"{facts.detail}; {about}: not in CRM either")
        # the company's facts are missing because the CRM failed: say so, as for a number
        return CrmFacts(answer.status, detail=f"{about}: {answer.detail}")


def _which(entity: LegalEntity, company: str) -> str:
    if entity.parent_id:
        return f"parent company {company} of {entity.company} (legal-entity directory)"
    return f"company {company} {entity.company} (legal-entity directory)"
