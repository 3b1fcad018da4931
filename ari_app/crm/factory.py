"""Build the configured adapter. Secrets come from the environment, never from YAML."""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import aiohttp

from ari_app.config.crm_settings import BITRIX24_WEBHOOK_ENV, TOKEN_ENV, CrmSettings
from ari_app.config.files import ConfigError
from ari_app.crm.base import CrmClient

ENV_SOURCE = "<environment>"  # the "file" of a ConfigError about an environment variable


def build_crm(
    settings: CrmSettings,
    config_dir: Path,
    session: aiohttp.ClientSession | None = None,
    *,
    env: Mapping[str, str] | None = None,
    known_person: Callable[[str], bool] | None = None,
) -> CrmClient | None:
    """The adapter for `settings.adapter`, or None for `none`.

    `known_person(id)`: the file adapter checks each client's `responsible` against it
    (`caseline check-config` passes the routing policy's people).

    `session` is the app's shared ClientSession (the adapter does not close it); without
    one, an HTTP adapter opens its own and closes it in `aclose()`.
    Raises ConfigError for a broken client directory or a missing/invalid secret.
    """
    env = os.environ if env is None else env
    if settings.adapter == "none":
        return None
    if settings.adapter == "file":
        from ari_app.crm.adapters.file import FileCrm

        path = Path(settings.file.path)
        return FileCrm(
            path if path.is_absolute() else Path(config_dir) / path,
            default_region=settings.file.default_region,
            timezone=settings.timezone,
            known_person=known_person,
        )
    if settings.adapter == "http":
        from ari_app.crm.adapters.http import HttpCrm

        assert settings.http is not None  # enforced by CrmSettings
        return HttpCrm(settings.http, token=env.get(TOKEN_ENV) or None, session=session)
    if settings.adapter == "bitrix24":
        from ari_app.crm.adapters.bitrix24 import Bitrix24Crm, check_webhook_url

        url = env.get(BITRIX24_WEBHOOK_ENV, "")
        if not url:
            raise ConfigError(ENV_SOURCE, BITRIX24_WEBHOOK_ENV, "not set (adapter bitrix24 needs the inbound webhook URL)")
        try:
            check_webhook_url(url)
        except ValueError as e:
            raise ConfigError(ENV_SOURCE, BITRIX24_WEBHOOK_ENV, str(e)) from None
        return Bitrix24Crm(settings.bitrix24, webhook_url=url, timezone=settings.timezone, session=session)
    raise ConfigError("", "crm.adapter", f"unknown adapter {settings.adapter!r}")  # unreachable: Literal
