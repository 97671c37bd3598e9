"""The state store: an HTTP key/value service with versions (``bleeper store serve``), a dictionary-like
proxy for it, and a chat that runs over it (``bleeper relay``)."""

from bleeper.statestore.proxy import ABSENT, AsyncStateStore, StateStore, StateStoreError

__all__ = ["ABSENT", "AsyncStateStore", "StateStore", "StateStoreError"]
