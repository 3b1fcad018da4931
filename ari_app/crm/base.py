"""The CRM port: what every adapter implements, and the errors it may raise.

Adapters only translate one CRM's answer into a `CrmRecord`; budgets, caching and the
circuit breaker live in `service.py`, so every adapter gets them for free.
"""
from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

from ari_app.core.models import CrmRecord

# A company id as the legal-entity directory writes it (config/directories.py): the only
# thing besides a strict E.164 number that is ever sent to a CRM.
COMPANY_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", re.ASCII)


@runtime_checkable
class CrmClient(Protocol):
    async def lookup(self, number: str) -> CrmRecord | None:
        """The record for a strict E.164 `number`, or None if the CRM does not know it.

        Raises CrmUnavailable (could not get an answer, or the CRM answered with an error)
        or CrmBadAnswer (answered something we cannot read).
        """
        ...

    async def lookup_company(self, company_id: str) -> CrmRecord | None:
        """The record of the company with this id (COMPANY_ID_RE), or None if the CRM does
        not know it: a branch calling from a number the CRM does not know is identified as
        its parent company (the legal-entity directory names it). Raises as `lookup`."""
        ...


class CrmError(Exception):
    """Base of all adapter errors. str() is a short detail that never contains secrets."""


class CrmUnavailable(CrmError):
    """No usable answer: connection refused/reset, DNS, gateway errors (502/503/504)."""


class CrmErrorAnswer(CrmUnavailable):
    """The CRM answered, with an error (4xx/5xx, Bitrix24 `error`, rate limits, auth).

    A subclass of CrmUnavailable so code that only cares about "no data" catches both;
    the service reports it as ERROR rather than UNAVAILABLE.
    """


class CrmBadAnswer(CrmError):
    """The CRM answered something we cannot read: not JSON, wrong types, too large."""
