"""FastAGI front: plain-dialplan and FreePBX sites get Caseline's whole route in one variable."""
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
