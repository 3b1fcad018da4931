"""A real softphone for the lab: Debian's baresip, headless, driven over its ctrl_tcp socket.

SIPp plays callers and phones well, but not the way a desk phone transfers (REFER, then
NOTIFY, then its own BYE) or sends RFC 4733 DTMF; baresip does. Each Softphone runs one
baresip process with its own config folder: it listens on a SIP address (a lab phone's, so
Asterisk's identify-by-address knows it) or registers with an account, sends a 440 Hz tone
as its voice, and reports call events, which `wait_event` waits for.

ctrl_tcp speaks netstrings of JSON: we send {"command": "dial", "params": "mgr3",
"token": "7"}; baresip answers {"response": true, "ok": true, "token": "7", ...} and sends
{"event": true, "type": "CALL_INCOMING", "peeruri": ..., "id": ...} as things happen.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .sipp import free_udp_port


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

MODULES = ("g711.so", "aufile.so", "account.so", "menu.so", "ctrl_tcp.so")
EVENT_TIMEOUT_S = 15.0


def write_tone_wav(path: Path, hz: int = 440, seconds: int = 60) -> Path:
    """An 8 kHz 16-bit mono WAV tone (ausine only does 48 kHz; aufile plays this as is)."""
    frames = b"".join(int(6000 * math.sin(2 * math.pi * hz * i / 8000)).to_bytes(2, "little", signed=True)
                      for i in range(8000))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames * seconds)
    return path


def available() -> bool:
    return shutil.which("baresip") is not None


def registering_account(user: str, registrar: str, password: str, regint: int = 60) -> str:
    """An accounts line that REGISTERs `user` at `registrar` ("ip:port") every `regint`
    seconds, answering the registrar's digest challenge with `password` (auth user = `user`).

    >>> registering_account("client", "127.0.5.1:5062", "s3cret")
    '<sip:client@127.0.5.1:5062>;auth_user=client;auth_pass=s3cret;regint=60'
    """
    return f"<sip:{user}@{registrar}>;auth_user={user};auth_pass={password};regint={regint}"


def netstring(payload: bytes) -> bytes:
    """>>> netstring(b'{"command":"hangup"}')
    b'20:{"command":"hangup"},'
    """
    return str(len(payload)).encode() + b":" + payload + b","


def split_netstrings(buffer: bytearray) -> list[bytes]:
    """Takes the complete netstrings off the front of `buffer`.

    >>> buf = bytearray(b'2:hi,3:abc,4:ab')
    >>> split_netstrings(buf), bytes(buf)
    ([b'hi', b'abc'], b'4:ab')
    """
    out = []
    while True:
        colon = buffer.find(b":")
        if colon <= 0:
            return out
        length = int(buffer[:colon])
        end = colon + 1 + length
        if len(buffer) < end + 1:
            return out
        out.append(bytes(buffer[colon + 1:end]))
        del buffer[:end + 1]


@dataclass(frozen=True)
class SipMessage:
    sent: bool  # by this phone (else received)
    first_line: str  # "REFER sip:... SIP/2.0" or "SIP/2.0 202 Accepted"
    headers: dict[str, str]
    body: str

    @property
    def method(self) -> str:
        """The request's method, or for a response the method its CSeq names."""
        if self.first_line.startswith("SIP/2.0"):
            return "".join(self.headers.get("CSeq", "").split()[1:2])
        return self.first_line.split(" ", 1)[0]

    @property
    def status(self) -> int | None:
        return int(self.first_line.split()[1]) if self.first_line.startswith("SIP/2.0") else None


TRACE_START, TRACE_END = "\x1b[36;1m#\n", "\x1b[;m"


def parse_sip_trace(text: str, me: str) -> list[SipMessage]:
    r"""Messages from baresip's `-s` trace, where each is printed between a colour escape and
    '#', a "UDP from -> to" line, and the colour reset; `me` is the phone's "ip:port".

    >>> trace = ("noise\x1b[36;1m#\nUDP 127.0.0.1:5060 -> 127.0.1.1:5201\nSIP/2.0 202 Accepted\r\n"
    ...          "CSeq: 35508 REFER\r\nContent-Length: 0\r\n\r\n\x1b[;m\n")
    >>> [m] = parse_sip_trace(trace, me="127.0.1.1:5201")
    >>> (m.sent, m.status, m.method)
    (False, 202, 'REFER')
    """
    messages = []
    for chunk in text.split(TRACE_START)[1:]:
        chunk = chunk.split(TRACE_END, 1)[0]
        route, _, message = chunk.partition("\n")
        head, _, body = message.partition("\r\n\r\n")
        first_line, *header_lines = head.split("\r\n")
        headers = dict(line.split(": ", 1) for line in header_lines if ": " in line)
        source = route.split(" ")[1] if route.count(" ") >= 2 else ""
        messages.append(SipMessage(sent=source == me, first_line=first_line.strip(),
                                   headers=headers, body=body.strip()))
    return messages


@dataclass
class Softphone:
    name: str
    workdir: Path
    listen: str  # "ip:port" baresip's SIP socket binds
    account: str  # accounts line, e.g. "<sip:mgr1@127.0.0.1>;regint=0"
    events: list[dict[str, Any]] = field(default_factory=list)
    _process: subprocess.Popen | None = None
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _pump: asyncio.Task | None = None
    _token: int = 0
    _answers: dict[str, asyncio.Future] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def folder(self) -> Path:
        return self.workdir / f"baresip-{self.name}"

    async def start(self) -> Softphone:
        ip = self.listen.rsplit(":", 1)[0]
        ctrl_port = free_tcp_port()
        rtp = free_udp_port(ip)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "config").write_text("\n".join([
            "poll_method epoll",
            f"sip_listen {self.listen}",
            f"audio_source aufile,{write_tone_wav(self.folder / 'voice.wav')}",  # its "voice"
            "audio_alert aufile,/dev/null",
            "module_path /usr/lib/baresip/modules",
            *(f"module {m}" for m in MODULES),
            f"ctrl_tcp_listen 127.0.0.1:{ctrl_port}",
            f"rtp_ports {rtp}-{rtp + 9}",
            "",
        ]))
        (self.folder / "accounts").write_text(self.account + ";answermode=manual;audio_codecs=PCMU\n")
        # -s: every SIP message into baresip.log too (tests read a REFER's answers there)
        log = (self.folder / "baresip.log").open("wb")
        self._process = subprocess.Popen(["baresip", "-f", str(self.folder), "-v", "-s"],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        log.close()
        for _ in range(100):  # its control socket is up once it reads its config
            try:
                self._reader, self._writer = await asyncio.open_connection("127.0.0.1", ctrl_port)
                break
            except OSError:
                if self._process.poll() is not None:
                    raise RuntimeError(f"baresip exited: {(self.folder / 'baresip.log').read_text()[-500:]}")
                await asyncio.sleep(0.05)
        else:
            raise RuntimeError("baresip's ctrl_tcp socket never opened")
        self._pump = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self._reader is not None
        buffer = bytearray()
        while chunk := await self._reader.read(65536):
            buffer += chunk
            for message in split_netstrings(buffer):
                data = json.loads(message)
                if data.get("response") and data.get("token") in self._answers:
                    self._answers.pop(data["token"]).set_result(data)
                elif data.get("event"):
                    self.events.append(data)
                    self._changed.set()

    async def command(self, command: str, params: str = "") -> dict[str, Any]:
        assert self._writer is not None
        self._token += 1
        token = str(self._token)
        answer = asyncio.get_running_loop().create_future()
        self._answers[token] = answer
        self._writer.write(netstring(json.dumps(
            {"command": command, "params": params, "token": token}).encode()))
        await self._writer.drain()
        return await asyncio.wait_for(answer, 5)

    async def wait_event(self, kind: str, match: Callable[[dict[str, Any]], bool] = lambda e: True,
                         timeout: float = EVENT_TIMEOUT_S) -> dict[str, Any]:
        """The first event of `kind` (e.g. CALL_INCOMING) that `match`es, old or new."""
        async def seen() -> dict[str, Any]:
            while True:
                for event in self.events:
                    if event.get("type") == kind and match(event):
                        return event
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(seen(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.name}: no {kind} within {timeout:g} s; "
                                 f"events: {[e.get('type') for e in self.events]}") from None

    async def registration(self) -> str:
        """This phone's registration as baresip's `reginfo` shows it: "OK" once the registrar
        accepted the REGISTER (an account from registering_account), "ERR" after a refusal,
        "zzz" before any answer. Its REGISTER_OK event may come before the control socket
        is connected, so this asks instead: poll it (tests.support.eventually)."""
        data = str((await self.command("reginfo")).get("data", ""))
        for line in re.sub(r"\x1b\[[0-9;]*m", "", data).splitlines():
            words = line.lstrip("> ").split()
            if len(words) >= 2 and words[0].startswith("sip:"):
                return words[1]
        return ""

    def sip_trace(self) -> str:
        """What baresip wrote so far, its SIP trace included (`-s`)."""
        # newline="": SIP's CRLFs stay as they are (they separate headers from the body)
        with (self.folder / "baresip.log").open(errors="replace", newline="") as f:
            return f.read()

    def sip_messages(self) -> list[SipMessage]:
        """The SIP trace, message by message, in the order baresip sent and received them."""
        return parse_sip_trace(self.sip_trace(), me=self.listen)

    def kinds(self) -> list[str]:
        return [str(e.get("type")) for e in self.events]

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
        if self._writer is not None:
            self._writer.close()
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)
            try:
                await asyncio.to_thread(self._process.wait, 5)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
