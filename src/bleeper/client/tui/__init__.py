"""The full-screen terminal client (Textual)."""

from bleeper.client.tui.app import ChatApp

__all__ = ["ChatApp"]
