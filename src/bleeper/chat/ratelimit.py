"""Token-bucket rate limiting that tells a busy client apart from a flood."""

from __future__ import annotations

ALLOWED = 0
LIMITED = 1
FLOOD = 2


class TokenBucket:
    """``burst`` commands at once, refilled at ``rate`` per second.

    When the bucket is empty a command is refused (the client is told to slow down). A client that keeps
    sending anyway drives the bucket into debt; at ``-burst`` it is a flood and should be disconnected.
    A rate of 0 turns limiting off.
    """

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> int:
        if not self.rate:
            return ALLOWED
        tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return ALLOWED
        tokens -= 1.0
        self.tokens = tokens
        return FLOOD if tokens <= -self.burst else LIMITED
