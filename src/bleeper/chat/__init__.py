"""The chat domain: sessions, names, groups, routing. Pure logic: no sockets, no asyncio, no database.

One module per feature (see :mod:`bleeper.chat.hub` for the list); the hub talks to the outside world only
through :class:`~bleeper.chat.session.Peer`, the :class:`~bleeper.chat.backend.Backend`, each session's
:class:`~bleeper.protocol.codec.Codec`, and the two seams a cluster replaces
(:class:`~bleeper.chat.registry.Registry`, :class:`~bleeper.chat.delivery.Delivery`), so the same rules run
under the TCP server, the WebSocket adapter and the unit tests.
"""

from bleeper.chat.hub import Hub, HubLimits
from bleeper.chat.session import Peer, Session

__all__ = ["Hub", "HubLimits", "Peer", "Session"]
