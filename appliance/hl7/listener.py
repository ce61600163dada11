"""The MLLP listener: the ``hl7`` library's asyncio server in a thread of its own, with its own
event loop, for the addresses of ``hl7_allowed_addresses`` only.

Bounded (rule 9): a message is at most MAX_MESSAGE_BYTES (a larger one is read to its end and
discarded, then refused with an AR), at most MAX_CONNECTIONS at once, and a connection silent
for IDLE_SECONDS is closed (senders reconnect).  Messages are handled one at a time in the loop
thread: orders are small and rare, and the index has one writer anyway.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
from typing import Any

from hl7.mllp import InvalidBlockError, start_hl7_server
from hl7.mllp.streams import HL7StreamReader, HL7StreamWriter

from appliance.archive import Archive
from appliance.config import ConfigError
from appliance.hl7 import orders
from appliance.hl7.message import DATA_TYPE_ERROR, INTERNAL_ERROR, Refused, ack, decode, field

LOG = logging.getLogger("lightbox.hl7")

MAX_MESSAGE_BYTES = 1 << 20
MAX_CONNECTIONS = 8
IDLE_SECONDS = 300.0
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def allow_list(setting: str) -> list[Network]:
    """``hl7_allowed_addresses``: addresses and networks (CIDR), comma- or space-separated."""
    try:
        return [ipaddress.ip_network(entry, strict=False) for entry in setting.replace(",", " ").split()]
    except ValueError as exc:
        raise ConfigError(f"hl7_allowed_addresses: {exc}") from None


class Listener:
    def __init__(self, archive: Archive, sock: socket.socket, allowed: list[Network]) -> None:
        self.archive, self.sock, self.allowed = archive, sock, allowed
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()

    def run(self) -> None:
        """The thread's body: serve until ``stop``."""
        if not self.allowed:
            LOG.warning("hl7_refusing_all reason=hl7_allowed_addresses is empty")
        asyncio.run(self._serve())

    def stop(self) -> None:
        self._ready.wait(5)
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await start_hl7_server(self._connected, sock=self.sock, limit=MAX_MESSAGE_BYTES)
        self._ready.set()
        async with server:
            await self._stop.wait()

    def _permitted(self, host: str) -> bool:
        address = ipaddress.ip_address(host.split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.allowed)

    async def _connected(self, reader: HL7StreamReader, writer: HL7StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[0]
        if not self._permitted(peer):
            LOG.warning("hl7_refused peer=%s reason=not in hl7_allowed_addresses", peer)
            writer.transport.abort()
            return
        if self.connections >= MAX_CONNECTIONS:
            LOG.warning("hl7_refused peer=%s reason=%d connections already", peer, MAX_CONNECTIONS)
            writer.transport.abort()
            return
        self.connections += 1
        try:
            await self._converse(peer, reader, writer)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass  # idle, or the sender closed: it reconnects for its next message
        finally:
            self.connections -= 1
            writer.close()

    async def _converse(self, peer: str, reader: HL7StreamReader, writer: HL7StreamWriter) -> None:
        oversize = False  # a block too large whose end is still to come
        while True:
            try:
                block = await asyncio.wait_for(reader.readblock(), IDLE_SECONDS)
            except ValueError as exc:  # the library's limit: the buffer was dropped
                # asyncio says "Separator is not found, and chunk exceed the limit" while the
                # block's end is still to come, "Separator is found, ..." once it has passed.
                oversize = "not found" in str(exc)
                if not oversize:
                    await self._answer(writer, peer, None, "AR", DATA_TYPE_ERROR, _too_large())
                continue
            except InvalidBlockError:  # bytes outside a block: the tail of an oversize one, or noise
                reason = _too_large() if oversize else "not an MLLP block (no start byte)"
                oversize = False
                await self._answer(writer, peer, None, "AR", DATA_TYPE_ERROR, reason)
                continue
            await self._answer(writer, peer, *self._handle(block))

    def _handle(self, block: bytes) -> tuple[Any, str, str, str]:
        message = None
        try:
            message = decode(block)
            return message, "AA", "", orders.handle(self.archive, message)
        except Refused as refused:
            return message or refused.message, refused.ack, refused.code, refused.reason
        except Exception as exc:  # e.g. a locked or full database: the sender may resend
            LOG.exception("hl7_failed error=%s", type(exc).__name__)
            return message, "AE", INTERNAL_ERROR, "Lightbox could not record the message; send it again"

    async def _answer(self, writer: HL7StreamWriter, peer: str, message: Any, code: str, error: str,
                      text: str) -> None:  # fmt: skip
        kind = control = ""
        if message is not None:
            msh = message.segment("MSH")
            kind, control = f"{field(msh, 9, 1)}^{field(msh, 9, 2)}", field(msh, 10)
        if code == "AA":
            LOG.info("hl7_message peer=%s type=%s control=%s ack=AA", peer, kind, control)
        else:  # the reason is Lightbox's own text, never a value from the message
            LOG.info("hl7_message peer=%s type=%s control=%s ack=%s reason=%s", peer, kind, control, code, text)
        writer.writeblock(ack(message, code, text, error))
        await writer.drain()


def _too_large() -> str:
    return f"message larger than {MAX_MESSAGE_BYTES} bytes"
