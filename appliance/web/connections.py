"""The web server's connections, bounded for a hostile LAN.

waitress accepts at most ``connection_limit`` connections and closes one only after
``channel_timeout`` idle seconds (renewable by a byte): 100 idle connections from one peer kept
the web UI, ``/healthz`` included, from answering anyone.  Here each address may hold at most
``PER_ADDRESS`` connections, and when the server nears its limit the connection idle longest
gives way to the newcomer, so a browser or the health check always gets in.  An HTTPS
connection still in its TLS handshake counts as idle (``tls``).
"""

from __future__ import annotations

from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer

CONNECTION_LIMIT = 256  # waitress's default is 100; a descriptor each, well within the service's
PER_ADDRESS = 32  # a browser opens six per host; a few browsers behind one NAT, with room
HEADROOM = 16  # below the limit, the idle longest are closed to make room


class GuardedChannel(HTTPChannel):
    """waitress's channel, making room for itself as it is accepted."""

    def __init__(self, server: BaseWSGIServer, sock: Any, addr: Any, adj: Any, map: Any = None) -> None:
        super().__init__(server, sock, addr, adj, map)
        make_room(server, self)


def _idle(channels: list[Any]) -> list[Any]:
    """Channels serving no request, the least recently active first."""
    return sorted((c for c in channels if not c.requests and not c.will_close), key=lambda c: c.last_activity)


def make_room(server: BaseWSGIServer, newcomer: HTTPChannel) -> None:
    # Every port's channels (HTTP and HTTPS share waitress's map): one budget for them all.
    channels = (c for c in server._map.values() if isinstance(c, HTTPChannel))
    others = [c for c in channels if c is not newcomer and not c.will_close]
    same_address = [c for c in others if c.addr and newcomer.addr and c.addr[0] == newcomer.addr[0]]
    if len(same_address) >= PER_ADDRESS:
        idle = _idle(same_address)
        (idle[0] if idle else newcomer).will_close = True  # closed at the loop's next turn
    elif len(server._map) >= server.adj.connection_limit - HEADROOM and (idle := _idle(others)):
        idle[0].will_close = True


def guard(server: Any, parser_class: type[HTTPRequestParser] = HTTPRequestParser) -> None:
    """Give every listening socket of ``server`` (waitress.create_server's answer) the guarded
    channel, reading requests with ``parser_class`` (``bodylimits.routed_parser``)."""
    channel = type("Channel", (GuardedChannel,), {"parser_class": parser_class})
    dispatchers = server.map if hasattr(server, "map") else server._map
    for dispatcher in list(dispatchers.values()):
        if isinstance(dispatcher, BaseWSGIServer):
            dispatcher.channel_class = channel
