"""Clients for Bleeper: the async library (:class:`ChatClient`), the terminal UI and the plain line mode."""

from bleeper.client.errors import (
    BleeperError,
    CommandError,
    ConnectionClosed,
    InvalidName,
    LoginFailed,
    NameTaken,
    NotConnected,
    RateLimited,
)
from bleeper.client.events import ClientEvent, Connected, Disconnected, Event, GroupInfo, Message, Person, Sent
from bleeper.client.library import ChatClient

__all__ = [
    "BleeperError",
    "ChatClient",
    "ClientEvent",
    "CommandError",
    "Connected",
    "ConnectionClosed",
    "Disconnected",
    "Event",
    "GroupInfo",
    "InvalidName",
    "LoginFailed",
    "Message",
    "NameTaken",
    "NotConnected",
    "Person",
    "RateLimited",
    "Sent",
]
