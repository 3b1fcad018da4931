"""CRM context: who the caller is according to the company's CRM (issue 4).

    settings = CrmSettings.model_validate(raw["crm"])
    client = build_crm(settings, config_dir, session)
    crm = CrmService.from_settings(settings, client)
    facts = await crm.facts("+79161234567")    # CrmFacts, never raises, never over budget
"""
from ari_app.config.crm_settings import (
    BITRIX24_WEBHOOK_ENV,
    TOKEN_ENV,
    CrmSettings,
    load_crm_settings,
)
from ari_app.crm.base import (
    CrmBadAnswer,
    CrmClient,
    CrmError,
    CrmErrorAnswer,
    CrmUnavailable,
)
from ari_app.crm.factory import build_crm
from ari_app.crm.service import CrmService

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
