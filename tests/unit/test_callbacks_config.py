"""Configuring callback requests: the `callback` target in routing.yaml, `company.caller_id`,
and `callbacks:` in caseline.yaml."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from ari_app.config.callback_settings import CallbackSettings
from ari_app.config.files import ConfigError
from ari_app.config.policy import cross_check
from ari_app.config.settings import load_settings
from ari_app.core.policy import Policy, Ref, RefKind, parse_ref

CONFIG = Path(__file__).resolve().parents[2] / "config"
RAW: dict[str, Any] = yaml.safe_load((CONFIG / "routing.yaml").read_text(encoding="utf-8"))


def problems(edit) -> dict[str, str]:
    data = copy.deepcopy(RAW)
    edit(data)
    return dict(cross_check(Policy.model_validate(data)))


def test_callback_targets_parse() -> None:
    assert parse_ref("callback") == Ref(RefKind.CALLBACK)
    assert parse_ref("callback:thanks") == Ref(RefKind.CALLBACK, "thanks")
    assert str(parse_ref("callback:thanks")) == "callback:thanks"


def test_the_shipped_config_offers_a_callback_in_the_ivr_and_names_the_company_caller_id() -> None:
    assert problems(lambda d: None) == {}
    policy = Policy.model_validate(RAW)
    assert policy.ivr["main"].options["2"][0] == Ref(RefKind.CALLBACK, "thanks")
    assert policy.company.caller_id == "+74950000000"


def test_a_callback_confirmation_must_be_a_recording() -> None:
    found = problems(lambda d: d["ivr"]["main"]["options"].update({"2": "callback:nosuch"}))
    assert found == {"ivr.main.options.2.0": "callback:nosuch not found in recordings"}


@pytest.mark.parametrize(("key", "edit"), [
    ("defaults.target", lambda d: d["defaults"].update(target="callback")),
    ("chains.standard.step_down_to", lambda d: d["chains"]["standard"].update(step_down_to="callback")),
])
def test_a_callback_cannot_be_a_fallback(key: str, edit) -> None:
    found = problems(edit)
    assert found[key].startswith("callback cannot be a fallback (a withheld caller cannot be called back)")


def test_a_callback_is_a_way_out_of_a_menu_like_the_holder() -> None:
    """As with `[holder, ivr:main]`: a way out for a caller it resolves for (here: one with a
    number); the executor cuts a withheld caller's loop after a few menus."""
    def edit(d: dict) -> None:
        d["ivr"]["main"] = {"prompt": "demo-instruct", "options": {"1": ["callback", "ivr:main"]},
                            "on_timeout": "ivr:main"}
    assert problems(edit) == {}
    only_menus = problems(lambda d: d["ivr"].update(main={"prompt": "demo-instruct", "options": {
        "1": "ivr:main"}, "on_timeout": "ivr:main"}))
    assert "ivr.main.options.1.0" in only_menus


@pytest.mark.parametrize("caller_id", ["74950000000", "+7495", "+7 495 000 00 00", "anonymous"])
def test_the_company_caller_id_is_e164(caller_id: str) -> None:
    data = copy.deepcopy(RAW)
    data["company"]["caller_id"] = caller_id
    with pytest.raises(ValidationError, match="caller_id"):
        Policy.model_validate(data)


def test_the_shipped_settings_and_the_client_s_endpoint() -> None:
    settings = load_settings(CONFIG, env={}).callbacks
    assert settings.endpoint("+79161234567") == "PJSIP/79161234567@trunk"
    assert CallbackSettings(dial="PJSIP/{e164}@provider").endpoint("+79161234567") == "PJSIP/+79161234567@provider"


@pytest.mark.parametrize("dial", ["PJSIP/{number}@trunk", "PJSIP/{digits}{digits}@trunk",
                                  "PJSIP/{digits}@{e164}", "PJSIP/{digits}@trunk;x", "Local/{digits}@ctx/n",
                                  "PJSIP/client;x", "client", "PJSIP/"])
def test_a_dial_string_takes_one_number_field_at_most_and_an_endpoint_shape(dial: str) -> None:
    with pytest.raises(ValidationError, match="dial"):
        CallbackSettings(dial=dial)


def test_a_dial_string_without_a_number_field_rings_one_endpoint_for_every_client() -> None:
    """The docker kit's `client` softphone answers only INVITEs for its own name (baresip
    answers 404 to sip:<number>@): there every call-back rings PJSIP/client. The client's
    phone shows the company's caller ID either way; the number is still the request's."""
    kit = CallbackSettings(dial="PJSIP/client")
    assert kit.endpoint("+79260001122") == kit.endpoint("+79161234567") == "PJSIP/client"


def test_callback_dial_comes_from_the_environment_over_the_file() -> None:
    """CASELINE_CALLBACK_DIAL, like the other CASELINE_* overrides: set by docker/compose.yml
    for the kit; unset or empty, caseline.yaml's `callbacks.dial` stays (the lab's trunk)."""
    overridden = load_settings(CONFIG, env={"CASELINE_CALLBACK_DIAL": "PJSIP/client"}).callbacks
    assert overridden.endpoint("+79260001122") == "PJSIP/client"
    shipped = load_settings(CONFIG, env={}).callbacks
    assert overridden.model_dump(exclude={"dial"}) == shipped.model_dump(exclude={"dial"})  # the rest: the file's
    for env in ({}, {"CASELINE_CALLBACK_DIAL": ""}):
        assert load_settings(CONFIG, env=env).callbacks.dial == "PJSIP/{digits}@trunk"


@pytest.mark.parametrize("dial", ["PJSIP/{number}@trunk", "PJSIP/client;x"])
def test_a_bad_callback_dial_from_the_environment_is_refused_like_the_file_s(dial: str) -> None:
    with pytest.raises(ConfigError, match="CASELINE_"):
        load_settings(CONFIG, env={"CASELINE_CALLBACK_DIAL": dial})
