"""SIPp processes as the lab's callers and phones; what happened is read from SIPp's own logs."""
from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import scenarios

ASTERISK = "127.0.0.1:5060"
CALLER_IP = "127.0.0.2"  # identified by Asterisk as the trunk
CLIENT_PHONE = ("127.0.0.2", 5300)  # answers our managers' calls to clients

# name -> (loopback address, port); must match config/asterisk/pjsip.conf
PHONES = {
    "mgr1": ("127.0.1.1", 5201), "mgr2": ("127.0.1.2", 5202), "mgr3": ("127.0.1.3", 5203),
    "op1": ("127.0.1.11", 5211), "op2": ("127.0.1.12", 5212), "sup1": ("127.0.1.21", 5221),
}


def free_udp_port(ip: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def udp_bound(ip: str, port: int) -> bool:
    """Is a UDP socket bound to ip:port? (/proc/net/udp: little-endian hex address.)"""
    wanted = f"{socket.inet_aton(ip)[::-1].hex().upper()}:{port:04X}"
    with open("/proc/net/udp") as table:
        return any(line.split()[1] == wanted for line in table.readlines()[1:])


def read_events(log: Path) -> list[tuple[str, str]]:
    """Lines "<number> <event>" from a SIPp -trace_logs file."""
    if not log.exists():
        return []
    events = []
    for line in log.read_text(errors="replace").splitlines():
        parts = line.strip().rsplit(" ", 1)
        if len(parts) == 2 and parts[1] and not line.startswith(("----", "20")):
            events.append((parts[0], parts[1]))
    return events


@dataclass
class Phone:
    """One SIPp UAS on a phone's address: answers, answers late, is busy, or never answers."""

    name: str
    workdir: Path
    behaviour: str = "answer"  # answer | busy | noanswer | transfer>EXTEN (talk, then REFER)
    # | attended>EXTEN (talk, call EXTEN, talk, then REFER with Replaces)
    answer_after_ms: int = 0  # for transfer: how long it talks before transferring
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.workdir / f"phone-{self.name}.log"

    def scenario(self) -> str:
        if self.behaviour == "busy":
            return scenarios.phone_busy()
        if self.behaviour == "noanswer":
            return scenarios.phone_never_answers()
        if self.behaviour.startswith("attended>"):  # attended>EXTEN:talk_ms (consult 2 s)
            return scenarios.phone_attended_transfers(self.behaviour.partition(">")[2],
                                                      talk_ms=self.answer_after_ms or 1000)
        if self.behaviour.startswith("transfer>"):
            return scenarios.phone_transfers(self.behaviour.partition(">")[2],
                                             talk_ms=self.answer_after_ms or 1000)
        return scenarios.phone_answers(self.answer_after_ms)

    def start(self, ip: str | None = None, port: int | None = None) -> Phone:
        ip, port = (ip, port) if ip else PHONES[self.name]
        self.address = (ip, port)
        xml = self.workdir / f"phone-{self.name}.xml"
        xml.write_text(self.scenario())
        self.process = subprocess.Popen(
            # -aa: SIPp answers NOTIFY/INFO/OPTIONS/UPDATE itself (a transfer's NOTIFYs)
            ["sipp", "-sf", str(xml), "-i", ip, "-p", str(port), "-mi", ip, "-aa",
             "-nostdin", "-trace_logs", "-log_file", str(self.log), "-trace_err",
             "-error_file", str(self.workdir / f"phone-{self.name}.errors"),
             # CASELINE_SIPP_TRACE=1: every SIP message in phone-NAME.messages (debugging)
             *(["-trace_msg", "-message_file", str(self.workdir / f"phone-{self.name}.messages")]
               if os.environ.get("CASELINE_SIPP_TRACE") else [])],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd=self.workdir, start_new_session=True)
        return self.wait_ready()

    def wait_ready(self, timeout: float = 5) -> Phone:
        """Until SIPp has bound its UDP port (seen in /proc/net/udp, without touching it)."""
        ip, port = self.address
        deadline = time.monotonic() + timeout
        while not udp_bound(ip, port):
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"SIPp phone {self.name} exited: see {self.workdir}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"SIPp phone {self.name} did not bind {ip}:{port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def events(self) -> list[tuple[str, str]]:
        return read_events(self.log)

    def calls_from(self, number: str) -> list[str]:
        """The events this phone logged for calls showing `number` as caller ID."""
        return [event for caller, event in self.events() if caller == number]


@dataclass
class CallerRun:
    """A SIPp UAC run placing one call per caller number; finished when `wait()` returns."""

    workdir: Path
    name: str
    process: asyncio.subprocess.Process

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    async def wait(self, timeout: float = 60) -> list[tuple[str, str]]:
        async with asyncio.timeout(timeout):
            await self.process.wait()
        return read_events(self.log)

    def events(self) -> list[tuple[str, str]]:
        return read_events(self.log)


_runs = 0
_running: list[CallerRun] = []


async def stop_callers() -> None:
    """Stop every caller run still going (a test that failed before waiting for it)."""
    while _running:
        run = _running.pop()
        if run.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.process.pid, signal.SIGKILL)
            await run.process.wait()


def _pcmu(sample: int) -> int:
    """G.711 mu-law encoding of one 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(magnitude.bit_length() - 8, 0)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | exponent << 4 | mantissa) & 0xFF


def write_tone(path: Path, hz: int = 440, seconds: float = 1.0) -> Path:
    """A raw 8 kHz PCMU tone for SIPp's rtp_stream (whole periods, so it loops cleanly)."""
    samples = int(8000 * seconds)
    path.write_bytes(bytes(_pcmu(int(8000 * math.sin(2 * math.pi * hz * i / 8000)))
                           for i in range(samples)))
    return path


async def place_calls(workdir: Path, numbers: Iterable[str], *, hold_ms: int = 2000,
                      rate: float = 10, cancel_after_ring_ms: int | None = None,
                      service: str = "100", timeout_s: int = 60,
                      from_phone: str | None = None,
                      dtmf: tuple[str, int] | tuple[str, int, int] | None = None,
                      display_name: str = "Client", speaks: bool = False,
                      target: str = ASTERISK) -> CallerRun:
    """Start SIPp calling from each number (one call each); returns at once.

    `dtmf=("0", 7000)` presses 0 seven seconds after the answer (SIP INFO).
    `from_phone="mgr2"` places the calls from that lab phone's address instead of the trunk's
    (Asterisk identifies the phone by address): a manager calling `service`, a client number.
    `speaks=True`: the caller sends audio (a tone) once answered, e.g. to leave a voicemail.
    `target`: the Asterisk to call (host:port), e.g. a node of the scale-out lab.
    """
    global _runs
    _runs += 1
    source_ip = PHONES[from_phone][0] if from_phone else CALLER_IP
    name = f"caller-{_runs}"
    numbers = list(numbers)
    inf = workdir / f"{name}.csv"
    # -inf CSV: SEQUENTIAL, ';' separated; numbers with ';' are not representable here.
    # the caller's SIP display name (From: "display_name" <sip:number@...>); no ';' in it
    inf.write_text("SEQUENTIAL\n" + "".join(f"{n};{display_name}\n" for n in numbers))
    xml = workdir / f"{name}.xml"
    if cancel_after_ring_ms is not None:
        xml.write_text(scenarios.early_hangup_caller(cancel_after_ring_ms))
    elif dtmf is not None:  # (digits, ms after answer[, ms between digits])
        xml.write_text(scenarios.ivr_caller(dtmf[0], dtmf[1], hold_ms, *dtmf[2:]))
    else:
        audio = str(write_tone(workdir / "tone.pcmu")) if speaks else None
        xml.write_text(scenarios.caller(hold_ms, audio))
    process = await asyncio.create_subprocess_exec(
        "sipp", target, "-sf", str(xml), "-inf", str(inf), "-s", service,
        "-i", source_ip, "-p", str(free_udp_port(source_ip)), "-mi", source_ip,
        "-m", str(len(numbers)), "-r", str(rate), "-rp", "1000", "-l", "1000", "-nostdin",
        "-timeout", f"{timeout_s}s", "-timeout_error",
        "-trace_logs", "-log_file", str(workdir / f"{name}.log"),
        "-trace_err", "-error_file", str(workdir / f"{name}.errors"),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, cwd=workdir, start_new_session=True)
    run = CallerRun(workdir, name, process)
    _running.append(run)
    return run


async def wait_for_event(source, number: str, event: str, timeout: float = 15) -> None:
    """Poll a phone's or caller's SIPp log until (number, event) appears."""
    deadline = time.monotonic() + timeout
    while (number, event) not in source.events():
        if time.monotonic() > deadline:
            raise AssertionError(f"{number} {event} not seen in {source.log}: {source.events()}")
        await asyncio.sleep(0.05)
