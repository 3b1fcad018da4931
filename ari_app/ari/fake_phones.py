"""What the in-memory Asterisk (fake_asterisk.py) holds: channels, bridges, and phones.

Phones behave as Asterisk 22 with chan_pjsip reports them to an ARI app that creates a leg
(/channels/create) and dials it (/channels/{id}/dial); see res/ari/resource_channels.c,
res/stasis/control.c, main/bridge_channel.c and channels/chan_pjsip.c:

- the leg's Dial events carry `peer` (the leg) and no `caller`, with dialstatus "" (dialling),
  RINGING and ANSWER only: chan_pjsip queues no BUSY frame for a SIP 486, and ARI's dial
  timeout is a hang-up with cause 19. Any other end of a leg is its StasisEnd, then
  ChannelDestroyed with a Q.850 cause (17 busy, 19 no answer, 34 congestion, ...).
  Dial NOANSWER / CHANUNAVAIL come from app_dial, never from an ARI dial.
- /channels/create on a PJSIP endpoint without a reachable contact answers 500
  "Allocation failed": ast_request fails before any channel exists.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ari_app.ari.fake_asterisk import FakeAsterisk

ASTERISK_ID = "52:54:00:ca:5e:11"
TIMESTAMP = "2025-03-12T11:00:00.000+0300"  # the fake has no clock: one time for everything

# Q.850 cause -> Asterisk's cause_txt
CAUSES = {1: "Unallocated (unassigned) number", 16: "Normal Clearing", 17: "User busy",
          19: "No answer", 20: "Subscriber absent", 21: "Call Rejected",
          34: "Circuit/channel congestion"}
# DELETE /channels/{id}?reason= -> cause
HANGUP_REASONS = {"normal": 16, "busy": 17, "no_answer": 19, "congestion": 34}


@dataclass
class Channel:
    id: str
    name: str  # "PJSIP/mgr1-00000003"
    endpoint: str  # "PJSIP/mgr1"
    number: str = ""
    state: str = "Down"
    context: str = "default"
    app_data: str = ""  # "caseline,inbound", "caseline,leg,<call>"
    in_app: bool = False  # in our Stasis app: controllable; StasisEnd when it leaves
    subscribed: bool = False  # our app receives its events
    bridge: str | None = None
    music: bool = False
    variables: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "state": self.state, "protocol_id": "",
            "caller": {"name": "", "number": self.number}, "connected": {"name": "", "number": ""},
            "accountcode": "",
            "dialplan": {"context": self.context, "exten": "s", "priority": 1,
                         "app_name": "Stasis" if self.in_app else "", "app_data": self.app_data},
            "creationtime": TIMESTAMP, "language": "en",
        }


@dataclass
class Bridge:
    id: str
    channels: list[str] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "technology": "simple_bridge", "bridge_type": "mixing",
                "bridge_class": "stasis", "creator": "Stasis", "name": self.id,
                "channels": list(self.channels), "creationtime": TIMESTAMP, "video_mode": "talker"}


class Phone:
    """How the phone on one endpoint takes a call from Caseline. Setters chain.

    The fake has no clock: a phone's answer comes as soon as Caseline dials it, except with
    `keeps_ringing`, which waits for the test (`picks_up`, `ring_times_out`, `hang_up`).
    """

    def __init__(self, world: FakeAsterisk, endpoint: str) -> None:
        self.world = world
        self.endpoint = endpoint
        self.reaction = "answers"
        self.after_s = 0.0
        self.cause = 0
        self.online = True
        self.create_error: tuple[int, str] | None = None
        self.vanish = False

    def answers(self, after: float = 0) -> Phone:
        """Picks up after `after` seconds of ringing; not before the dial timeout: no answer."""
        self.reaction, self.after_s = "answers", after
        return self

    def busy(self) -> Phone:
        """SIP 486 Busy Here: the leg ends with cause 17."""
        return self._ends(17)

    def no_answer(self) -> Phone:
        """Rings until the dial timeout, when Asterisk hangs the leg up with cause 19."""
        self.reaction = "no_answer"
        return self

    def unavailable(self, cause: int = 34) -> Phone:
        """Refuses the INVITE: 503 -> cause 34 by default (404 -> 1, 603 -> 21)."""
        return self._ends(cause)

    def keeps_ringing(self) -> Phone:
        self.reaction = "rings"
        return self

    def unregistered(self) -> Phone:
        """No contact: /channels/create answers 500 "Allocation failed", as Asterisk does."""
        self.online = False
        self.world.endpoint_changed(self.endpoint)
        return self.rejects_create(500, "Allocation failed")

    def registers(self) -> Phone:
        """A contact again: the endpoint comes online and can be dialled."""
        self.online, self.create_error = True, None
        self.world.endpoint_changed(self.endpoint)
        return self

    def rejects_create(self, status: int = 404, message: str = "Channel not found") -> Phone:
        self.create_error = (status, message)
        return self

    def vanishes(self) -> Phone:
        """The leg is created, then destroyed before it enters Stasis (no StasisStart)."""
        self.vanish = True
        return self

    def on_a_call(self, number: str = "+79990001199") -> Phone:
        """On a call of their own: a channel on the endpoint that is not in our app."""
        self.world.existing_channel(self.endpoint, number=number, app_args=None)
        return self

    def _ends(self, cause: int) -> Phone:
        self.reaction, self.cause = "ends", cause
        return self

    def dialled(self, leg: Channel, timeout_s: int) -> None:
        """What Asterisk reports once a dial of this phone is accepted."""
        w = self.world
        w.dial_event(leg, "")
        if self.reaction == "ends":
            w.destroy(leg, self.cause)
            return
        w.starts_ringing(leg)
        if self.reaction == "answers" and self.after_s < timeout_s:
            w.picks_up(leg.id)
        elif self.reaction != "rings":
            w.ring_times_out(leg.id)
