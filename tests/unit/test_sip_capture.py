"""The benchmark's pcap reader: post-dial delay from packets built byte for byte."""
from __future__ import annotations

import struct
from pathlib import Path

from bench.sip_capture import packets, post_dial_delays


def _frame(payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", 40000, 5060, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     bytes([127, 0, 0, 2]), bytes([127, 0, 0, 1]))
    return b"\x00" * 12 + b"\x08\x00" + ip + udp  # Ethernet header on lo: zero MACs, IPv4


def _pcap(path: Path, records: list[tuple[float, bytes]]) -> Path:
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for at, payload in records:
        frame = _frame(payload)
        out += struct.pack("<IIII", int(at), round((at % 1) * 1e6), len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))
    return path


def _sip(first_line: str, call_id: str, cseq: str) -> bytes:
    return f"{first_line}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n".encode()


def test_delay_is_first_invite_to_first_ringing_or_answer(tmp_path: Path) -> None:
    pcap = _pcap(tmp_path / "a.pcap", [
        (100.000000, _sip("INVITE sip:100@127.0.0.1 SIP/2.0", "a", "1 INVITE")),
        (100.000900, _sip("SIP/2.0 100 Trying", "a", "1 INVITE")),
        (100.500000, _sip("INVITE sip:100@127.0.0.1 SIP/2.0", "a", "1 INVITE")),  # retransmitted
        (100.512250, _sip("SIP/2.0 180 Ringing", "a", "1 INVITE")),
        (100.600000, _sip("SIP/2.0 200 OK", "a", "1 INVITE")),
        (200.000000, _sip("INVITE sip:100@127.0.0.1 SIP/2.0", "b", "1 INVITE")),
        (200.003000, _sip("SIP/2.0 183 Session Progress", "b", "1 INVITE")),
        (300.000000, _sip("INVITE sip:100@127.0.0.1 SIP/2.0", "c", "1 INVITE")),
        (300.100000, _sip("SIP/2.0 200 OK", "c", "2 BYE")),  # not an answer to the INVITE
        (300.200000, _sip("SIP/2.0 486 Busy Here", "c", "1 INVITE")),
    ])
    delays = sorted(round(d, 3) for d in post_dial_delays(pcap))
    assert delays == [3.0, 512.25]


def test_packets_skip_what_is_not_ipv4_udp(tmp_path: Path) -> None:
    pcap = _pcap(tmp_path / "b.pcap", [(1.5, b"hello")])
    data = bytearray(pcap.read_bytes())
    data[24 + 16 + 14 + 9] = 6  # the IP protocol byte: TCP
    pcap.write_bytes(bytes(data))
    assert list(packets(pcap)) == []
    assert list(packets(_pcap(tmp_path / "c.pcap", [(1.5, b"hello")]))) == [(1.5, b"hello")]
