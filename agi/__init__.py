"""FastAGI front: plain-dialplan sites get Caseline's decision as CASELINE_* channel variables."""
from agi.protocol import (
    AgiConnectionClosed,
    AgiDeadChannel,
    AgiError,
    AgiHangup,
    AgiInvalidCommand,
    AgiProtocolError,
    AgiResponse,
    AgiUsageError,
)
from agi.server import AgiServer, EndpointOf, Route

__all__ = [
    "AgiConnectionClosed", "AgiDeadChannel", "AgiError", "AgiHangup", "AgiInvalidCommand",
    "AgiProtocolError", "AgiResponse", "AgiServer", "AgiUsageError", "EndpointOf", "Route",
]
