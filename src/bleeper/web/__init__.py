"""The web client: static files and the Starlette application that serves them beside the chat server."""

from bleeper.web.app import WebOptions, create_app

__all__ = ["WebOptions", "create_app"]
