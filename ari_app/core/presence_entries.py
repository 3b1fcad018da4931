"""Presence across nodes, the pure part: one endpoint as a node reports it, and what the
entries of the live nodes say together (README "Scale-out", issue 23 item 2).

Each node publishes, per endpoint its Asterisk knows, one short value "<state>|<channels>":
ARI's endpoint state ("online", "offline", "unknown") and how many channels are on it
there. A person is busy if any live node has a channel on their endpoint; they are
reachable on a node where their endpoint is online. stasis/shared_presence.py keeps these
values in Redis; this module only reads and writes the values.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ONLINE = "online"


@dataclass(frozen=True)
class Entry:
    state: str  # ARI's endpoint state: online, offline, unknown
    channels: int  # channels on the endpoint on that node: ringing or talking

    @property
    def online(self) -> bool:
        return self.state == ONLINE

    def value(self) -> str:
        """The stored form.

        >>> Entry("online", 2).value()
        'online|2'
        """
        return f"{self.state}|{self.channels}"


def entry_of(endpoint: Mapping[str, Any]) -> tuple[str, Entry] | None:
    """(endpoint id, entry) of an ARI Endpoint (GET /endpoints, EndpointStateChange's
    `endpoint`); None for a malformed one.

    >>> entry_of({"technology": "PJSIP", "resource": "mgr1", "state": "online",
    ...           "channel_ids": ["1718.5"]})
    ('PJSIP/mgr1', Entry(state='online', channels=1))
    >>> entry_of({"technology": "PJSIP", "resource": "mgr2", "state": "offline"})
    ('PJSIP/mgr2', Entry(state='offline', channels=0))
    >>> entry_of({"technology": "PJSIP"}) is None
    True
    """
    tech, resource = endpoint.get("technology"), endpoint.get("resource")
    if not isinstance(tech, str) or not isinstance(resource, str) or not tech or not resource:
        return None
    state = endpoint.get("state")
    channels = endpoint.get("channel_ids")
    return f"{tech}/{resource}", Entry(state if isinstance(state, str) and state else "unknown",
                                       len(channels) if isinstance(channels, list) else 0)


def parse(value: str | bytes | None) -> Entry | None:
    """A stored value back; None if absent or not ours (never raises: it comes from Redis).

    >>> parse(b"online|1")
    Entry(state='online', channels=1)
    >>> parse("offline|0").online
    False
    >>> parse(None), parse("garbage"), parse("online|-1")
    (None, None, None)
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not value:
        return None
    state, sep, count = value.partition("|")
    if not sep or not state or not count.isdigit():
        return None
    return Entry(state, int(count))


def busy_anywhere(entries: Iterable[Entry | None]) -> bool:
    """On a call on some node: a channel on the endpoint there (an unregistered phone with a
    channel still counts: the channel is what makes them busy).

    >>> busy_anywhere([Entry("online", 0), None, Entry("offline", 1)])
    True
    >>> busy_anywhere([Entry("online", 0), None])
    False
    """
    return any(e is not None and e.channels > 0 for e in entries)


def locate(entries: Mapping[str, Entry | None], local: str) -> tuple[str | None, bool]:
    """(node, online): a node where the endpoint is online, this node first (a local call
    needs no trunk), then the others by id; else the node that knows it, offline; else
    (None, False).

    >>> locate({"a": Entry("offline", 0), "b": Entry("online", 0)}, local="a")
    ('b', True)
    >>> locate({"b": Entry("online", 0), "a": Entry("online", 1)}, local="a")
    ('a', True)
    >>> locate({"c": Entry("offline", 0), "b": None}, local="a")
    ('c', False)
    >>> locate({}, local="a")
    (None, False)
    """
    order = sorted(entries, key=lambda node: (node != local, node))
    known = [node for node in order if entries[node] is not None]
    for node in known:
        entry = entries[node]
        if entry is not None and entry.online:
            return node, True
    return (known[0], False) if known else (None, False)
