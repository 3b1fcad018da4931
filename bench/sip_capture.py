"""Post-dial delay read from the wire: tcpdump on loopback, then a small pcap reader.

SIPp's own response-time trace moves in 4 ms steps on this kernel, too coarse for targets
of a few milliseconds. tcpdump timestamps every packet in microseconds; PDD per call is the
first INVITE's time to the first 180/183/200 that answers it (same Call-ID, CSeq INVITE).

A pcap file is a 24-byte global header, then per packet a 16-byte record header
(seconds, microseconds, captured length, original length) and the bytes. On `lo` the link
type is Ethernet (1): 14 bytes, then IPv4, then UDP (8 bytes), then the SIP text:

    INVITE sip:100@127.0.0.1:5060 SIP/2.0
    Call-ID: 1-4242@127.0.0.2
    CSeq: 1 INVITE
    ...
    SIP/2.0 180 Ringing
    Call-ID: 1-4242@127.0.0.2
    CSeq: 1 INVITE
"""
from __future__ import annotations

import re
import select
import signal
import struct
import subprocess
import time
from pathlib import Path

ETHERNET, LINUX_SLL, RAW_IP = 1, 113, 101
_CALL_ID = re.compile(rb"^(?:Call-ID|i)\s*:\s*(\S+)", re.IGNORECASE | re.MULTILINE)
_CSEQ_INVITE = re.compile(rb"^CSeq\s*:\s*\d+\s+INVITE\b", re.IGNORECASE | re.MULTILINE)
_FIRST_RESPONSES = (b"SIP/2.0 180", b"SIP/2.0 183", b"SIP/2.0 200")


class Capture:
    """tcpdump writing the SIP packets between the callers and Asterisk to a pcap file."""

    def __init__(self, path: Path, caller_ip: str, sip_port: int = 5060) -> None:
        self.path = path
        self.process = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-n", "-s", "0", "-B", "65536", "-U", "-w", str(path),
             f"udp and host {caller_ip} and port {sip_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # tcpdump says "listening on lo, ..." once its filter is in place; packets before
        # that are not captured, so calls must not start earlier.
        self._said = ""
        ready, _, _ = select.select([self.process.stderr], [], [], 5)
        if ready:
            self._said = self.process.stderr.readline()  # type: ignore[union-attr]
        if "listening on" not in self._said:
            self.process.kill()
            raise RuntimeError(f"tcpdump did not start: {self._said.strip() or 'no output in 5 s'}")

    def stop(self) -> dict[str, int]:
        """Stop tcpdump; its own packet counters (captured, dropped by the kernel).

        tcpdump reads the kernel's capture buffer when a block fills or after its 1 s
        timeout; stopped earlier, it would lose the last calls' packets."""
        time.sleep(1.5)
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=10)
        counts = {}
        for key, pattern in (("captured", r"(\d+) packets captured"),
                             ("dropped", r"(\d+) packets dropped by kernel")):
            m = re.search(pattern, err or "")
            counts[key] = int(m.group(1)) if m else -1
        return counts


def packets(path: Path):
    """(timestamp in seconds, UDP payload) for every IPv4/UDP packet of a pcap file."""
    data = path.read_bytes()
    if len(data) < 24:
        return
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    link_len = {ETHERNET: 14, LINUX_SLL: 16, RAW_IP: 0}.get(linktype)
    if link_len is None:
        raise ValueError(f"{path}: link type {linktype} not supported")
    offset = 24
    record = struct.Struct(endian + "IIII")
    while offset + 16 <= len(data):
        sec, frac, captured, _ = record.unpack_from(data, offset)
        frame = data[offset + 16: offset + 16 + captured]
        offset += 16 + captured
        ip = frame[link_len:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:  # IPv4, UDP
            continue
        udp = ip[(ip[0] & 0x0F) * 4:]
        yield sec + frac / (1e9 if nano else 1e6), udp[8:]


def post_dial_delays(path: Path) -> list[float]:
    """Milliseconds from each call's first INVITE to the first 180/183/200 answering it."""
    invited: dict[bytes, float] = {}
    delays: dict[bytes, float] = {}
    for at, payload in packets(path):
        m = _CALL_ID.search(payload)
        if m is None:
            continue
        call_id = m.group(1)
        if payload.startswith(b"INVITE "):
            invited.setdefault(call_id, at)  # retransmissions keep the first time
        elif (payload.startswith(_FIRST_RESPONSES) and call_id in invited
              and call_id not in delays and _CSEQ_INVITE.search(payload)):
            delays[call_id] = (at - invited[call_id]) * 1000
    return list(delays.values())
