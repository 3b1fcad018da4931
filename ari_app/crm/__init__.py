"""CRM context: who the caller is according to the company's CRM (issue 4).

    settings = CrmSettings.model_validate(raw["crm"])
    client = build_crm(settings, config_dir, session)
    crm = CrmService.from_settings(settings, client)
    facts = await crm.facts("+79161234567")    # CrmFacts, never raises, never over budget
"""
from .base import CrmBadAnswer, CrmClient, CrmError, CrmErrorAnswer, CrmUnavailable
from .factory import build_crm
from .service import CrmService
from .settings import BITRIX24_WEBHOOK_ENV, TOKEN_ENV, CrmSettings, load_crm_settings

__all__ = [
    "BITRIX24_WEBHOOK_ENV",
    "TOKEN_ENV",
    "CrmBadAnswer",
    "CrmClient",
    "CrmError",
    "CrmErrorAnswer",
    "CrmService",
    "CrmSettings",
    "CrmUnavailable",
    "build_crm",
    "load_crm_settings",
]
