"""The docker kit for real: README "Try it with a softphone (Docker)", followed step by step.

A dockerd of the test's own (tests.support.docker.Engine: a private socket, its images kept in
~/.cache/caseline/docker for the next run) builds docker/'s images on a base made locally
from the lab's Debian sid root (no registry is reachable here; the Dockerfiles' default bases
are the public images), and `docker compose up` runs Asterisk, Redis and Caseline, every port
on 127.0.5.1 (CASELINE_BIND_IP and CASELINE_SOFTPHONE_IP in the kit's .env), beside the lab on
127.0.0.1. Real softphones (Debian's baresip, headless) REGISTER on 5062 with the accounts
and the password `sh new-env` wrote, and play the README's table row by row: the first call
rings the client's manager, whose phone answers; repeat, FastAGI, busy, an unknown caller; a
manager's call to a number rings the `client` softphone, and that number calling back goes
straight to the manager; a delivery today; a C client hears the intro and the IVR menu,
presses 2 (RFC 4733), and the call-back request it files rings the holder, then the `client`
softphone (CASELINE_CALLBACK_DIAL). Routing reloads live on `docker compose kill -s HUP
caseline`. `docker compose down` leaves nothing behind, and the engine stops. With CI=true
the test fails, never skips, when it cannot run.
"""
from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from labkit import baresip, sipp

from tests.conftest import need
from tests.support.ari_observer import AriObserver, observing_ari
from tests.support.docker import (
    COMPOSE,
    ENV_EXAMPLE,
    PROJECT,
    STACK_IP,
    DockerError,
    Engine,
    Stack,
    engine_missing,
    local_base,
    prepare_stack,
)
from tests.support.eventually import eventually

# About 80 s with nothing cached (the base's apt run, pip's downloads), 35 s warm, on a
# 2-CPU machine: the suite's default of 60 s per test is for calls, not for building images.
pytestmark = pytest.mark.timeout(1200)

# README's table (config/clients.yaml)
VIP_A = "+79161234567"  # C-1001, ABC A, manager mgr1
UNKNOWN = "+79990001123"  # no CRM record
CALLBACK = "79990001122"  # not in the CRM either: mgr3 calls it, then it calls back
DELIVERY = "+79031112233"  # C-1003, a delivery today
C_CLIENT = "+79260001122"  # C-1004, ABC C, manager mgr1: the intro, then the IVR menu
C_REASON = "ivr:main:2 (abc.C)"  # the request's reason: the IVR choice, and the rule
COMPANY_CALLER_ID = "+74950000000"  # routing.yaml company.caller_id: what a call-back shows the client
PHONES = {"client": "127.0.5.10", "mgr1": "127.0.5.11", "mgr3": "127.0.5.13", "sup1": "127.0.5.21",
          "op1": "127.0.5.31"}  # account -> the softphone's address
# `caseline calls`: the number, then class, service, priority, outcome, who answered, steps.
# A FastAGI call's entry is written from its CDR, so the log's order is not the calls' order.
DECISIONS = [
    (VIP_A, r"\snew\s+manager\s+prio\s+\d+\s+answered\s+mgr1\s+mgr1:answered"),  # first call
    (VIP_A, r"\srepeat\s+manager\s+prio\s+\d+\s+answered\s+mgr1\s+mgr1:answered"),  # repeat
    (VIP_A, r"\srepeat\s+manager\s+prio\s+\d+\s+answered\s+mgr1\s+mgr1:answered"),  # FastAGI
    (VIP_A, r"\srepeat\s+manager\s+prio\s+\d+\s+answered\s+sup1\s+mgr1:busy > sup1:answered"),  # busy
    (UNKNOWN, r"\snew\s+operator\s+prio\s+\d+\s+queue\s+op1\s+queue:operators"),
    (CALLBACK, r"\scallback\s+manager\s+prio\s+\d+\s+answered\s+mgr3\s+mgr3:answered"),
    (DELIVERY, r"\snew\s+manager\s+prio\s+\d+\s+answered\s+mgr3\s+mgr3:answered"),
    (C_CLIENT, (r"\snew\s+self_service\s+prio\s+\d+\s+callback\s+-\s+"
                r"playback:demo-thanks > ivr:main > ivr:main:2 > callback:\w+")),  # C defence
]
SUNDAY_NIGHT = "2026-12-06T03:00:00+03:00"  # closed by the shipped hours (Moscow time)


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    missing = engine_missing()
    if missing:
        need("the docker engine test", f"missing {', '.join(missing)} (scripts/setup-env installs them)")
    engine = Engine()
    try:
        await engine.start()
    except (OSError, DockerError, AssertionError) as e:
        await engine.stop()
        need("dockerd", f"{type(e).__name__}: {e}")
    try:
        yield engine
    finally:
        await engine.stop()


@pytest.fixture
async def stack(engine: Engine, tmp_path: Path) -> AsyncIterator[Stack]:
    started = time.monotonic()
    base = await local_base(engine, tmp_path)
    timings = {"base image": time.monotonic() - started}
    stack = await prepare_stack(engine, tmp_path, base)
    stack.timings.update(timings)
    await stack.down()  # a killed run's containers, which the engine would start again
    try:
        step = time.monotonic()
        await stack.compose("build", timeout=900)
        stack.timings["compose build"] = time.monotonic() - step
        yield stack
    finally:
        logs = await engine.run(*stack.argv("logs", "--no-color", "--timestamps"), timeout=60)
        (tmp_path / "compose.log").write_text(logs.stdout + logs.stderr)
        await stack.down()
        await engine.run("image", "prune", "--force")  # the images a rebuild replaced
        await engine.run("builder", "prune", "--force", "--filter", "until=168h")  # a week unused


async def start_phone(name: str, stack: Stack, workdir: Path, ip: str) -> baresip.Softphone:
    """A softphone set up as README's "Softphone accounts" says: server <host>:5062 over UDP,
    user and auth user the account's name, password CASELINE_PHONE_PASSWORD of the .env."""
    account = baresip.registering_account(name, f"{STACK_IP}:5062", stack.env["CASELINE_PHONE_PASSWORD"])
    return await baresip.Softphone(name, workdir, f"{ip}:{sipp.free_udp_port(ip)}", account).start()


def route(explained: dict[str, Any]) -> list[str]:
    return [f"{step['kind']}:{step['target']}" for step in explained["decision"]["route"]]


async def call(caller: baresip.Softphone, dialled: str, callee: baresip.Softphone, *,
               rejected_by: baresip.Softphone | None = None) -> dict[str, Any]:
    """`caller` dials; `rejected_by` rings first and rejects; `callee` rings and answers;
    both sides are up, then the caller hangs up. The callee's CALL_INCOMING event."""
    for phone in (caller, callee, rejected_by):
        if phone is not None:
            phone.events.clear()
    await caller.command("dial", dialled)
    if rejected_by is not None:
        await rejected_by.wait_event("CALL_INCOMING", timeout=20)
        await rejected_by.command("hangup")
    ringing = await callee.wait_event("CALL_INCOMING", timeout=30)
    await callee.command("accept")
    await caller.wait_event("CALL_ESTABLISHED")
    await callee.wait_event("CALL_ESTABLISHED")
    await caller.command("hangup")
    await callee.wait_event("CALL_CLOSED")
    await caller.wait_event("CALL_CLOSED")
    return ringing


async def callback_requests(stack: Stack) -> list[dict[str, Any]]:
    return (await stack.ops("/callbacks"))["callbacks"]


def playback_of(sound: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: (event.get("playback") or {}).get("media_uri") == f"sound:{sound}"


async def c_client_asks_for_a_call_back(stack: Stack, client: baresip.Softphone) -> dict[str, Any]:
    """README's C row: `client` dials *79260001122; Caseline answers and plays the intro
    (rule abc.C: c_info, demo-thanks), then the menu (demo-instruct), during which the client
    presses 2 (RFC 4733); the confirmation (thanks) plays and Caseline hangs up. An ARI
    observer (all channels and bridges) sees each playback start, so the 2 goes during the menu, not
    after a guessed sleep. The request filed: its listing on the ops API."""
    client.events.clear()
    ari: AriObserver
    async with observing_ari(f"http://{STACK_IP}:8088", stack.env["CASELINE_ARI_PASSWORD"]) as ari:
        await client.command("dial", f"*{C_CLIENT[1:]}")
        await client.wait_event("CALL_ESTABLISHED")
        await ari.wait("PlaybackStarted", playback_of("demo-thanks"), timeout=15)  # the intro
        await ari.wait("PlaybackStarted", playback_of("demo-instruct"), timeout=15)  # the menu
        await client.command("sndcode", "2")  # RFC 4733 telephone-event, as the SDP offered
        await ari.wait("PlaybackStarted", playback_of("queue-thankyou"), timeout=10)  # callback:thanks
    await client.wait_event("CALL_CLOSED", timeout=15)

    async def filed() -> dict[str, Any]:
        found = [c for c in await callback_requests(stack) if c["reason"] == C_REASON]
        assert len(found) == 1, found
        return found[0]

    request = await eventually(filed, timeout=10, interval=0.2, message="the IVR call files a call-back request")
    assert (request["holder"], request["number"][-4:]) == ("mgr1", C_CLIENT[-4:]), request
    return request


async def test_the_kit_runs_the_readme_walkthrough_with_real_softphones(stack: Stack, tmp_path: Path) -> None:
    timings = stack.timings
    step = time.monotonic()
    for profile in ([], ["--profile", "crm"]):  # the kit's compose file, as the client reads it
        await stack.compose(*profile, "config", "--quiet")
    assert (await stack.engine.run("compose", "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE),
                                   "config", "--quiet", cwd=PROJECT)).returncode == 0

    # README: docker compose up -d --build; docker compose ps: all three healthy
    await stack.compose("up", "--detach", timeout=300)

    async def all_healthy() -> None:
        services = await stack.services()
        assert services == {"asterisk": "healthy", "redis": "healthy", "caseline": "healthy"}, services

    await eventually(all_healthy, timeout=120, interval=0.5)
    timings["up, healthy"] = time.monotonic() - step
    caseline_id = (await stack.compose("ps", "--quiet", "caseline")).stdout.strip()
    started_at = (await stack.engine.run("inspect", "--format", "{{.State.StartedAt}}", caseline_id)).stdout

    # README: set `hours: enabled: false` in config/routing.yaml, then
    # `docker compose kill -s HUP caseline` reloads the routing config live
    step = time.monotonic()
    explain = f"/explain?number={quote(VIP_A)}&at={quote(SUNDAY_NIGHT)}"
    assert route(await stack.ops(explain)) == ["playback:vm-nobodyavail", "voicemail:1000@default"]
    stack.change_routing(hours__enabled=False)
    await stack.compose("kill", "-s", "HUP", "caseline")

    async def reloaded() -> None:
        assert route(await stack.ops(explain))[0] == "manager:mgr1"

    await eventually(reloaded, timeout=15, interval=0.2, message="the HUP reload answers Sunday night with mgr1")
    assert (await stack.engine.run("inspect", "--format", "{{.State.StartedAt}}", caseline_id)).stdout == started_at, \
        "reloaded in place, not restarted"
    timings["HUP reload"] = time.monotonic() - step

    # README "Softphone accounts": register at least client, mgr1, mgr3, sup1 and op1
    step = time.monotonic()
    phones: dict[str, baresip.Softphone] = {}
    try:
        for name, ip in PHONES.items():
            phones[name] = await start_phone(name, stack, tmp_path, ip)
        for phone in phones.values():
            async def registered(phone: baresip.Softphone = phone) -> bool:
                return await phone.registration() == "OK"

            await eventually(registered, timeout=15, interval=0.2, message=f"{phone.name} registers on 5062")
        contacts = await stack.asterisk_cli("pjsip show contacts")  # README: which softphones are registered
        for name, ip in PHONES.items():  # (the column cuts the port short)
            assert re.search(rf"Contact:\s+{name}/sip:{name}[^@\s]*@{re.escape(ip)}:.*\sAvail\s", contacts), contacts
        timings["softphones registered"] = time.monotonic() - step
        client, mgr1, mgr3, sup1, op1 = (phones[name] for name in PHONES)
        await eventually(stack.routes_new_calls, timeout=30, interval=0.5)

        async def holds(number: str, cls: str, owner: str) -> None:
            """Caseline learned the last call (Asterisk's CDR over AMI): class and holder now."""
            explained = await stack.ops(f"/explain?number={quote(number)}")
            assert (explained["class"], explained["owner"]) == (cls, owner), explained

        # "first call": client dials *79161234567 (C-1001, ABC A): mgr1 rings
        step = time.monotonic()
        ringing = await call(client, f"*{VIP_A[1:]}", mgr1)
        assert ringing["peeruri"].startswith(f"sip:{VIP_A[1:]}@"), "mgr1 sees the client's number"
        # "repeat": dial *79161234567 again: class repeat, back to whoever answered (mgr1)
        await eventually(holds, VIP_A, "repeat", "mgr1", timeout=20, interval=0.2)
        await call(client, f"*{VIP_A[1:]}", mgr1)
        # "FastAGI": **79161234567, the same decision through dialplan/caseline-agi.conf
        await call(client, f"**{VIP_A[1:]}", mgr1)
        # "busy": mgr1 rejects; A clients use the vip chain: sup1 rings
        await call(client, f"*{VIP_A[1:]}", sup1, rejected_by=mgr1)
        # "unknown caller": *79990001123, no CRM record: the operators' queue (op1)
        await call(client, f"*{UNKNOWN[1:]}", op1)
        timings["first call, repeat, FastAGI, busy, unknown"] = time.monotonic() - step

        # "callback": mgr3 dials 79990001122; client rings, showing mgr3 (and the number)
        step = time.monotonic()
        ringing = await call(mgr3, CALLBACK, client)
        assert ringing["peerdisplayname"] == "mgr3" and ringing["peeruri"].startswith(f"sip:{CALLBACK}@"), ringing
        invites = [m for m in client.sip_messages() if not m.sent and m.first_line.startswith("INVITE ")]
        assert invites[-1].first_line.startswith("INVITE sip:client"), \
            f"the client's own contact, not sip:{CALLBACK}@ (a softphone answers that with 404)"
        await eventually(holds, f"+{CALLBACK}", "callback", "mgr3", timeout=20, interval=0.2)
        explained = await stack.caseline("explain", f"+{CALLBACK}")  # README: "Watching decisions"
        assert re.search(r"^History: callback \((after_talk|missed)\), owner mgr3", explained, re.MULTILINE), explained
        # ...then client dials *79990001122: class callback, mgr3 rings directly
        await call(client, f"*{CALLBACK}", mgr3)
        # "business context": *79031112233 (C-1003, delivery today): mgr3 (logistics) rings
        await call(client, f"*{DELIVERY[1:]}", mgr3)
        timings["callback, business context"] = time.monotonic() - step

        # "C defence": client dials *79260001122 (C-1004, ABC C): the intro, the IVR menu; 2
        step = time.monotonic()
        mgr1.events.clear()  # mgr1 may ring as soon as the request is filed
        request = await c_client_asks_for_a_call_back(stack, client)
        client.events.clear()  # the IVR call's; the client rings only once mgr1 answers
        listed = await stack.caseline("callbacks")  # README: `caseline callbacks` lists the request
        assert re.search(rf"\s{request['id']}\s+(open|dialling)\s.*\sholder mgr1\s.*{re.escape(C_REASON)}$",
                         listed, re.MULTILINE), listed
        # hours are open (the HUP step): the dialler rings the holder, mgr1, showing the client...
        ringing = await mgr1.wait_event("CALL_INCOMING", timeout=20)  # its next poll (callbacks.poll_s)
        assert ringing["peerdisplayname"] == "Callback" and ringing["peeruri"].startswith(f"sip:{C_CLIENT}@"), ringing
        await mgr1.command("accept")
        await mgr1.wait_event("CALL_ESTABLISHED")
        # ...then the client, on the `client` softphone, showing the company's number
        ringing = await client.wait_event("CALL_INCOMING", timeout=15)
        assert ringing["peeruri"].startswith(f"sip:{COMPANY_CALLER_ID}@"), ringing
        invites = [m for m in client.sip_messages() if not m.sent and m.first_line.startswith("INVITE ")]
        assert invites[-1].first_line.startswith("INVITE sip:client"), \
            "CASELINE_CALLBACK_DIAL (PJSIP/client): the client's own contact, not sip:79260001122@"
        await client.command("accept")
        await client.wait_event("CALL_ESTABLISHED")
        await client.command("hangup")
        await mgr1.wait_event("CALL_CLOSED")

        async def done() -> None:
            [found] = [c for c in await callback_requests(stack) if c["id"] == request["id"]]
            assert (found["status"], found["result"], found["person"]) == ("done", "answered", "mgr1"), found

        await eventually(done, timeout=15, interval=0.2, message="the call-back request is done")
        timings["C defence: IVR, call-back"] = time.monotonic() - step
    finally:
        for phone in phones.values():
            await phone.stop()

    # README "Watching decisions": caseline calls lists each call's decision and outcome
    async def decided() -> str:
        calls = await stack.caseline("calls")
        lines = [line for line in calls.splitlines() if line.strip()]
        assert len(lines) == len(DECISIONS), calls
        for number, expected in DECISIONS:  # each call's line, once
            line = next((line for line in lines if f"***{number[-4:]}" in line and re.search(expected, line)), None)
            assert line is not None, f"no line for {number} like {expected!r}:\n{calls}"
            lines.remove(line)
        return calls

    print("caseline calls:\n" + await eventually(decided, timeout=20, interval=0.5))

    # README: docker compose down; nothing of the kit is left running
    step = time.monotonic()
    await stack.down()
    assert await stack.leftovers() == []
    timings["down"] = time.monotonic() - step
    print("timings (s):", {name: round(seconds, 1) for name, seconds in timings.items()})
