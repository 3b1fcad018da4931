"""Settings for an install of several Asterisk nodes (README "Scale-out"): which node this
Caseline serves, and Redis through Sentinel instead of one URL.

    node:
      id: msk1                 # this Caseline's Asterisk node (CASELINE_NODE_ID)
    redis:
      url: redis://:PASSWORD@/0   # with a sentinel: only the password and the db count
      sentinel:
        master: caseline       # the name the sentinels monitor
        addresses: ["10.0.0.5:26379", "10.0.0.6:26379", "10.0.0.7:26379"]
    presence:
      shared: true             # several nodes: who is registered where and on a call, in Redis
      ttl_s: 15                # a node silent this long (dead, or lost its Asterisk) stops counting

CASELINE_REDIS_SENTINELS ("host:port,host:port") and CASELINE_REDIS_MASTER set the sentinel
from the environment, like CASELINE_REDIS_URL sets the URL.
"""
from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

_ADDRESS_RE = re.compile(r"(?P<host>[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:]+\]):(?P<port>[0-9]{1,5})", re.ASCII)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_NODE_ID = r"^[a-z0-9][a-z0-9_-]{0,31}$"


class NodeSettings(_Strict):
    # in Redis keys and metrics labels: short and plain
    id: str = Field("node1", pattern=_NODE_ID)
    # the PJSIP trunk (an endpoint of this node's pjsip.conf) to each other node, by node id:
    # a holder registered there is rung through it (core/cross_node.py)
    trunks: dict[str, str] = Field(default_factory=dict, max_length=64)

    @field_validator("trunks")
    @classmethod
    def _trunk_names(cls, trunks: dict[str, str]) -> dict[str, str]:
        for node, endpoint in trunks.items():
            if re.fullmatch(_NODE_ID, node) is None:
                raise ValueError(f"{node!r} is not a node id (lowercase letters, digits, _ and -)")
            if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", endpoint) is None:
                raise ValueError(f"trunk of node {node!r}: {endpoint!r} is not a PJSIP endpoint name")
        return trunks


class PresenceSettings(_Strict):
    """Presence across nodes (stasis/shared_presence.py). Off by default: one node needs
    nothing but its own Asterisk's view, and then nothing changes for it."""

    shared: bool = False
    # the heartbeat's TTL, refreshed every ttl_s/3: how long a dead node's phones may still
    # look busy elsewhere. Short enough for that, long enough for a Redis failover (~5-10 s).
    ttl_s: float = Field(15.0, ge=1, le=300)


class SentinelSettings(_Strict):
    master: str = Field("caseline", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    addresses: list[str] = Field(min_length=1, max_length=16)

    @field_validator("addresses")
    @classmethod
    def _host_port(cls, addresses: list[str]) -> list[str]:
        for address in addresses:
            found = _ADDRESS_RE.fullmatch(address)
            if found is None or not 1 <= int(found["port"]) <= 65535:
                raise ValueError(f"{address!r} is not host:port (e.g. 10.0.0.5:26379)")
        return addresses

    def hosts(self) -> list[tuple[str, int]]:
        """[("10.0.0.5", 26379), ...]"""
        out = []
        for address in self.addresses:
            host, _, port = address.rpartition(":")
            out.append((host.strip("[]"), int(port)))
        return out


def sentinel_from_env(value: str, master: str | None, current: dict | None) -> dict:
    """CASELINE_REDIS_SENTINELS (and CASELINE_REDIS_MASTER) as the `redis.sentinel` data."""
    addresses = [a.strip() for a in value.split(",") if a.strip()]
    return {"master": master or (current or {}).get("master") or "caseline", "addresses": addresses}
