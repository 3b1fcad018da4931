"""A branch's call is identified as its parent company: the legal-entity directory names the
company, the CRM is asked for it by id (CrmService.company_facts), and its responsible
manager takes the call (crm/companies.py, over the shipped config)."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from ari_app.config.directories import LegalEntitiesFile, directory_from_model
from ari_app.config.history_settings import HistorySettings
from ari_app.config.live import LiveConfig
from ari_app.core.clock import FixedClock
from ari_app.core.models import CrmRecord, SourceStatus, StepKind
from ari_app.crm.adapters.file import FileCrm
from ari_app.crm.base import CrmClient, CrmUnavailable
from ari_app.crm.companies import CompanyLookup
from ari_app.crm.service import CrmService
from ari_app.history.store import MemoryHistoryStore
from ari_app.router import Router

CONFIG = Path(__file__).resolve().parents[2] / "config"
BRANCH = "+78432777000"  # Avtodom Service Kazan: a branch of C-2001, not in the CRM
HEAD_OFFICE_DID = "+74957770000"  # Avtodom Holding's prefix, not in the CRM
OPEN = datetime(2026, 6, 15, 9, 0, tzinfo=UTC)  # Monday 12:00 Moscow
PARENT = CrmRecord("C-2001", "Avtodom Holding", abc="A", responsible="mgr1")


class Crm:
    """answers[key]: a record, None or an exception; key is a number or "company:<id>".
    A gate (an Event) holds a request until the test sets it."""

    def __init__(self, answers: dict[str, object]) -> None:
        self.answers = answers
        self.gates: dict[str, asyncio.Event] = {}
        self.calls: list[str] = []

    async def lookup(self, number: str) -> CrmRecord | None:
        self.calls.append(number)
        if number in self.gates:
            await self.gates[number].wait()
        answer = self.answers.get(number)
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[return-value]

    async def lookup_company(self, company_id: str) -> CrmRecord | None:
        return await self.lookup(f"company:{company_id}")


def directory():  # type: ignore[no-untyped-def]
    return directory_from_model(LegalEntitiesFile.model_validate({"entities": [
        {"name": "Holding", "id": "H-1", "manager": "mgr2", "prefixes": ["+7495777"]},
        {"name": "Branch", "id": "br", "parent": "H-1", "prefixes": ["+7843"]},
        {"name": "Nameless", "prefixes": ["+7812"]},
    ]}))


def lookup(crm: Crm, **kw: object) -> tuple[CompanyLookup, CrmService]:
    service = CrmService(crm, **kw)  # type: ignore[arg-type]
    d = directory()
    return CompanyLookup(service, lambda: d), service


def test_the_fake_and_every_adapter_speak_the_protocol() -> None:
    assert isinstance(Crm({}), CrmClient)
    assert isinstance(FileCrm(CONFIG / "clients.yaml"), CrmClient)


async def test_the_file_crm_finds_a_company_by_its_id() -> None:
    crm = FileCrm(CONFIG / "clients.yaml")
    record = await crm.lookup_company("C-2001")
    assert record is not None and (record.name, record.responsible, record.abc) == ("Avtodom Holding", "mgr1", "A")
    assert await crm.lookup_company("+74957771234") is None and await crm.lookup_company("C-9999") is None


async def test_a_branch_number_gets_its_parent_companys_record() -> None:
    crm = Crm({"company:H-1": PARENT})
    ask, service = lookup(crm)
    facts = await ask("+78430000001")
    assert facts.status is SourceStatus.OK and facts.record == PARENT
    assert facts.detail == "number not in CRM: parent company H-1 of Branch (legal-entity directory)"
    assert crm.calls == ["+78430000001", "company:H-1"]
    await service.aclose()


async def test_a_companys_own_number_gets_the_companys_record() -> None:
    crm = Crm({"company:H-1": PARENT})
    ask, service = lookup(crm)
    facts = await ask("+74957770001")
    assert facts.status is SourceStatus.OK and facts.record == PARENT
    assert "company H-1 Holding" in facts.detail
    await service.aclose()


async def test_a_known_number_or_one_outside_the_directory_asks_nothing_more() -> None:
    own = CrmRecord("C-7", responsible="mgr3")
    crm = Crm({"+78430000001": own})
    ask, service = lookup(crm)
    assert (await ask("+78430000001")).record == own
    assert (await ask("+79990000000")).status is SourceStatus.UNKNOWN
    assert (await ask("+78120000000")).status is SourceStatus.UNKNOWN  # in the directory, without an id
    assert crm.calls == ["+78430000001", "+79990000000", "+78120000000"]
    await service.aclose()


async def test_an_unknown_parent_leaves_the_number_unknown() -> None:
    crm = Crm({})
    ask, service = lookup(crm)
    facts = await ask("+78430000001")
    assert facts.status is SourceStatus.UNKNOWN and facts.record is None
    assert facts.detail == "not in CRM; parent company H-1 of Branch (legal-entity directory): not in CRM either"
    await service.aclose()


async def test_a_failing_company_lookup_is_a_degraded_crm() -> None:
    crm = Crm({"company:H-1": CrmUnavailable("connection refused")})
    ask, service = lookup(crm)
    facts = await ask("+78430000001")
    assert facts.status is SourceStatus.UNAVAILABLE and "parent company H-1" in facts.detail
    await service.aclose()


async def test_company_answers_are_cached_and_shared_by_every_branch_number() -> None:
    crm = Crm({"company:H-1": PARENT})
    ask, service = lookup(crm)
    await ask("+78430000001")
    await ask("+78430000002")
    assert crm.calls == ["+78430000001", "company:H-1", "+78430000002"]  # the company once
    service.invalidate_all()
    await ask("+78430000002")
    assert crm.calls[-1] == "company:H-1"
    await service.aclose()


async def test_the_company_gets_what_is_left_of_the_budget() -> None:
    """Number and company together stay within one per-call budget (the router's backstop
    is only 50 ms above it)."""
    crm = Crm({"company:H-1": PARENT})
    crm.gates["company:H-1"] = asyncio.Event()  # never set: the company never answers
    ask, service = lookup(crm, budget_ms=100)
    loop = asyncio.get_running_loop()
    started = loop.time()
    facts = await ask("+78430000001")
    assert facts.status is SourceStatus.TIMEOUT
    assert loop.time() - started < 0.1 + 0.05
    await service.aclose()


async def test_company_facts_skips_what_is_not_a_company_id() -> None:
    crm = Crm({})
    service = CrmService(crm)  # type: ignore[arg-type]
    for bad in ("", "../admin", "a b", "x" * 65, "+7916"):
        assert (await service.company_facts(bad)).status is SourceStatus.SKIPPED
    assert crm.calls == []
    assert (await CrmService(None).company_facts("H-1")).status is SourceStatus.SKIPPED
    await service.aclose()


async def test_company_facts_share_the_breaker() -> None:
    crm = Crm({"company:H-1": CrmUnavailable("down"), "+79161234567": CrmUnavailable("down")})
    service = CrmService(crm, breaker_failures=2)  # type: ignore[arg-type]
    await service.facts("+79161234567")
    await service.company_facts("H-1")
    assert (await service.company_facts("H-1")).status is SourceStatus.BREAKER_OPEN
    await service.aclose()


# -- the call path: router over the shipped config ----------------------------------------


async def test_the_parents_responsible_manager_takes_the_branchs_call() -> None:
    config = LiveConfig(CONFIG / "routing.yaml", CONFIG / "legal_entities.yaml")
    service = CrmService(FileCrm(CONFIG / "clients.yaml"))
    router = Router(config=config, history=MemoryHistoryStore(),
                    crm=CompanyLookup(service, lambda: config.current.directory), clock=FixedClock(OPEN),
                    windows=HistorySettings().windows(), history_budget_s=1, crm_budget_s=0.3,
                    default_region="RU")
    for number in (BRANCH, HEAD_OFFICE_DID):
        routed = await router.route(number, "call-1")
        p = routed.profile
        assert (p.crm.status, p.crm.record.client_id) == (SourceStatus.OK, "C-2001")  # type: ignore[union-attr]
        assert (p.case_holder, p.case_holder_source) == ("mgr1", "crm")
        first = routed.decision.route[0]
        assert (first.kind, first.target) == (StepKind.MANAGER, "mgr1")
        assert "abc.A" in [r.rule for r in routed.decision.reasons]
    await service.aclose()
