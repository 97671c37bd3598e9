"""The terminal side of ``bleeper relay``: prompt_toolkit on a terminal, plain lines in pipes.

On a terminal, messages that arrive while you type are printed above your line and the line is redrawn intact
(as in ``bleeper chat --plain``); the prompt says whose turn it is. When standard input is not a terminal, each
line read is sent, everything shown goes to standard output, and at the end of input the relay waits until
what was queued has gone, then leaves.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

from bleeper.statestore.proxy import AsyncStateStore, StateStoreError
from bleeper.statestore.relay import FreeRelay, Relay, RelayError, TurnsRelay

HELP = "* type a message and press Enter; /quit (or Ctrl-D) leaves"


async def run_relay(url: str, room: str, name: str, mode: str, *, lease: float = 10.0, history: int = 10,
                    interactive: bool | None = None) -> int:  # fmt: skip
    """Run ``bleeper relay`` until the user leaves or input ends; returns the exit status."""
    interactive = sys.stdin.isatty() if interactive is None else interactive

    def show(text: str) -> None:
        print(text, flush=True)

    async with AsyncStateStore(url) as store:
        try:
            relay: Relay = (TurnsRelay(store, room, name, show, lease=lease) if mode == "turns"
                            else FreeRelay(store, room, name, show, history=history))  # fmt: skip
            if interactive:
                return await _interactive(relay)
            await relay.join()
            return await _piped(relay)
        except (RelayError, StateStoreError) as exc:
            print(f"bleeper relay: {exc}", file=sys.stderr)
            return 1


async def _until_failed(relay: Relay, work: asyncio.Future[Any]) -> str | None:
    """Wait for *work*; if the relay fails first, cancel it and return the reason."""
    done, _ = await asyncio.wait((work, relay.failed), return_when=asyncio.FIRST_COMPLETED)
    if work in done:
        return None
    work.cancel()
    return relay.failed.result()


def _stdin_lines() -> asyncio.Queue[str | None]:
    """Lines of standard input from a daemon thread (None at the end), so a blocked read never holds up exit."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read, name="relay-stdin", daemon=True).start()
    return lines


async def _piped(relay: Relay) -> int:
    lines = _stdin_lines()
    while True:
        line = await lines.get()
        if line is None:
            break
        text = line.rstrip("\r\n")
        if text.strip():
            failure = await _until_failed(relay, asyncio.ensure_future(relay.send(text)))
            if failure:
                return _failed(relay, failure)
    failure = await _until_failed(relay, asyncio.ensure_future(relay.finish()))
    if failure:
        return _failed(relay, failure)
    await relay.leave()
    return 0


def _failed(relay: Relay, reason: str) -> int:
    print(f"bleeper relay: {reason}", file=sys.stderr)
    return 1


async def _interactive(relay: Relay) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.patch_stdout import patch_stdout

    session: PromptSession[str] = PromptSession(erase_when_done=True)
    relay.on_change = session.app.invalidate
    with patch_stdout():
        await relay.join()
        print(HELP, flush=True)
        while True:
            prompt = asyncio.ensure_future(session.prompt_async(lambda: relay.prompt))
            try:
                failure = await _until_failed(relay, prompt)
                line = None if failure else prompt.result()
            except (EOFError, KeyboardInterrupt):
                break
            if failure:
                return _failed(relay, failure)
            text = (line or "").strip()
            if text in ("/quit", "/q", "/exit"):
                break
            if text in ("/help", "/?"):
                print(HELP, flush=True)
            elif text.startswith("/") and not text.startswith("//"):
                print(f"* unknown command {text.split()[0]}; start a message with // to send it as is", flush=True)
            elif text:
                await relay.send(text[1:] if text.startswith("//") else text)
        await relay.leave()
    return 0
