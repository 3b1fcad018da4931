"""Redis through Sentinel (issue 23 item 1): the master a real Sentinel names, from
caseline.yaml's `redis.sentinel` or the environment; a node id for this Caseline."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio.sentinel import MasterNotFoundError

from ari_app.config.files import ConfigError
from ari_app.config.settings import RedisSettings, load_settings
from ari_app.history.connect import redis_for
from labkit.redis_server import RedisServer, SentinelServer, RedisUnavailable
from tests.conftest import need


@pytest.fixture
def master_and_sentinel() -> Iterator[tuple[RedisServer, SentinelServer]]:
    try:
        master = RedisServer.start()
    except RedisUnavailable as e:
        need("Redis", str(e))
    try:
        sentinel = SentinelServer.watching(master)
    except RedisUnavailable as e:
        master.stop()
        need("Redis Sentinel", str(e))
    try:
        yield master, sentinel
    finally:
        sentinel.stop()
        master.stop()


async def test_the_client_reaches_the_master_the_sentinel_names(master_and_sentinel) -> None:
    master, sentinel = master_and_sentinel
    settings = RedisSettings.model_validate({
        "url": "redis://127.0.0.1:1/3",  # its host is ignored, its db is not
        "sentinel": {"master": "caseline", "addresses": [f"127.0.0.1:{sentinel.port}"]}})
    client = redis_for(settings)
    try:
        await client.set("caseline:test", "via sentinel")
        info = await client.connection_pool.get_master_address()
        assert info == ("127.0.0.1", master.port)
        assert (await client.client_info())["db"] == 3
    finally:
        await client.aclose()
    plain = redis_for(RedisSettings(url=f"redis://127.0.0.1:{master.port}/3"))
    try:
        assert await plain.get("caseline:test") == b"via sentinel"
    finally:
        await plain.aclose()


async def test_a_master_name_the_sentinel_does_not_know_is_a_clear_error(master_and_sentinel) -> None:
    _, sentinel = master_and_sentinel
    settings = RedisSettings.model_validate(
        {"sentinel": {"master": "other", "addresses": [f"127.0.0.1:{sentinel.port}"]}})
    client = redis_for(settings)
    try:
        with pytest.raises(MasterNotFoundError, match="other"):
            await client.ping()
    finally:
        await client.aclose()


def test_the_environment_sets_the_sentinels_the_master_and_the_node(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, {"CASELINE_REDIS_SENTINELS": "10.0.0.5:26379, 10.0.0.6:26379",
                                        "CASELINE_REDIS_MASTER": "pbx", "CASELINE_NODE_ID": "msk2"})
    assert settings.redis.sentinel is not None
    assert settings.redis.sentinel.hosts() == [("10.0.0.5", 26379), ("10.0.0.6", 26379)]
    assert (settings.redis.sentinel.master, settings.node.id) == ("pbx", "msk2")
    assert load_settings(tmp_path, {}).redis.sentinel is None  # one URL, as before


def test_a_bad_sentinel_address_names_the_file_the_line_and_the_key(tmp_path: Path) -> None:
    (tmp_path / "caseline.yaml").write_text(
        "redis:\n  sentinel:\n    master: caseline\n    addresses: [\"10.0.0.5\"]\n")
    with pytest.raises(ConfigError) as failed:
        load_settings(tmp_path, {})
    shown = str(failed.value)
    assert "caseline.yaml" in shown and "addresses" in shown and "host:port" in shown
    assert ":4" in shown or "line 4" in shown
