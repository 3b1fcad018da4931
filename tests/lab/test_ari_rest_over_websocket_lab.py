"""ARI REST over the events websocket (issue 22) against the lab's real Asterisk 22: once the
events connection is up, requests travel as `RESTRequest` frames on it and their answers come
back as `RESTResponse`, errors keep their types, and a request awaited by the events consumer
itself (the resync after a reconnect does that) is answered."""
from __future__ import annotations

import secrets

import pytest

from ari_app.ari.http import CONNECTED, HttpAri
from ari_app.ari.interface import AriUnavailable, ChannelGone

pytestmark = pytest.mark.lab


class NoHttp:
    """Stands in for the HTTP session's `request`: any request over HTTP fails the test."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        raise AssertionError(f"a request went over HTTP: {args[:2]}")


def ari_for(lab, *, over_websocket: bool) -> HttpAri:
    app = f"caseline-ws-{secrets.token_hex(3)}"
    return HttpAri(lab.ari_url, "caseline", lab.secrets["CASELINE_ARI_PASSWORD"], app,
                   rest_over_websocket=over_websocket, event_types=("StasisStart",))


async def test_requests_travel_on_the_events_websocket_once_it_is_up(asterisk) -> None:
    async with ari_for(asterisk, over_websocket=True) as ari:
        info = await ari.asterisk_info()  # before the websocket: over HTTP
        assert info["system"]["version"].startswith("22.")
        events = ari.events()
        assert (await anext(events))["type"] == CONNECTED
        no_http = NoHttp()
        ari._session.request = no_http  # type: ignore[method-assign, union-attr]
        # awaited by the events consumer, between two events: answered by the reader task
        assert (await ari.application())["name"] == ari.app
        assert isinstance(await ari.channels(), list)
        with pytest.raises(ChannelGone):  # Asterisk's 404 keeps its type over the websocket
            await ari.hangup(f"no-such-channel-{secrets.token_hex(3)}")
        assert no_http.calls == 0
        await events.aclose()
        with pytest.raises(AssertionError, match="over HTTP"):  # websocket closed: HTTP again
            await ari.channels()


async def test_without_the_option_every_request_is_http(asterisk) -> None:
    async with ari_for(asterisk, over_websocket=False) as ari:
        events = ari.events()
        assert (await anext(events))["type"] == CONNECTED
        no_http = NoHttp()
        ari._session.request = no_http  # type: ignore[method-assign, union-attr]
        with pytest.raises(AssertionError, match="over HTTP"):
            await ari.channels()
        assert no_http.calls == 1
        await events.aclose()

