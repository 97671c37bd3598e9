"""``bleeper chat --plain``: a line-mode client.

On a terminal it uses prompt_toolkit, so a message that arrives while you type is printed above your line and
the line is redrawn intact. When standard input is not a terminal it reads lines, sends them, prints what
happens to standard output and, at the end of input, quits and waits for the server's confirmation: usable in
pipes and scripts.
"""

from __future__ import annotations

import asyncio
import os
import ssl as ssl_module
import sys
from collections.abc import Callable, Sequence

from bleeper.client.errors import BleeperError, CommandError, ConnectionClosed, NameTaken, NotConnected, RateLimited
from bleeper.client.input import (
    EVERYONE,
    LOCAL_COMMANDS,
    Nothing,
    QuitChat,
    SendText,
    ServerCommand,
    ShowHelp,
    Switch,
    conversation_label,
    interpret,
)
from bleeper.client.library import ChatClient
from bleeper.client.render import Line, event_line, own_line, plain
from bleeper.protocol.commands import Say, Tell, parse_command
from bleeper.protocol.incoming import format_command
from bleeper.protocol.text import clean_text

Print = Callable[[str], None]
Show = Callable[["str | Line"], None]


async def run_plain(
    host: str,
    port: int,
    name: str | None,
    *,
    interactive: bool | None = None,
    client: ChatClient | None = None,
    login: bool = False,
    ssl: ssl_module.SSLContext | None = None,
    servers: Sequence[tuple[str, int]] = (),
) -> int:
    """Run the line-mode client until the user quits or input ends; returns the exit status.

    With *login*, *name* is an account: the password is asked for without echo on a terminal, or taken from
    ``BLEEPER_PASSWORD`` when input is a pipe.
    """
    interactive = sys.stdin.isatty() if interactive is None else interactive
    client = client or ChatClient(host, port, ssl=ssl, servers=servers)
    try:
        await client.connect()
    except BleeperError as exc:
        print(f"bleeper chat: {exc}", file=sys.stderr)
        return 1
    if login:
        if not name and interactive:
            from prompt_toolkit import PromptSession

            name = (await PromptSession[str]().prompt_async("account: ")).strip()
        if not name:
            print("bleeper chat: --login needs --name (the account)", file=sys.stderr)
            await client.close()
            return 2
        password = os.environ.get("BLEEPER_PASSWORD")
        if password is None and interactive:
            from prompt_toolkit import PromptSession

            password = await PromptSession[str]().prompt_async(f"password for {name}: ", is_password=True)
        if not password:
            print("bleeper chat: no password: type it, or set BLEEPER_PASSWORD for scripts", file=sys.stderr)
            await client.close()
            return 2
        try:
            await client.login(name, password)
        except BleeperError as exc:
            print(f"bleeper chat: {exc}", file=sys.stderr)
            await client.close()
            return 1
    if interactive:
        return await _interactive(client, name)
    if not name:
        print("bleeper chat: --name is required when input is not a terminal", file=sys.stderr)
        await client.close()
        return 2
    return await _piped(client, name)


async def _print_events(client: ChatClient, out: Print) -> None:
    async for event in client.events():
        line = event_line(event, client.name)
        if line is not None:
            out(plain(line))


async def perform(client: ChatClient, action: object, current: str, out: Show) -> tuple[str, bool]:
    """Carry out one typed action, showing the outcome through *out* (plain strings are notices).
    Returns the new current conversation and whether to stop."""
    if isinstance(action, Nothing):
        if action.problem:
            out(f"* {action.problem}")
        return current, False
    if isinstance(action, Switch):
        out(f"* now talking to {conversation_label(action.target)}")
        return action.target, False
    if isinstance(action, ShowHelp):
        if action.topic is None:
            out("* lines you type go to the current conversation; commands start with /")
            for usage in LOCAL_COMMANDS.values():
                out(f"*   {usage}")
            out("* any server command works too, for example /tell bob hi, /join #icu, /who. The server's list:")
            for item in await client.help():
                out(f"*   /{item}")
        else:
            for item in await client.help(action.topic):
                out(f"*   {item}")
        return current, False
    if isinstance(action, QuitChat):
        reply = await client.quit(action.reason)
        out(f"* {reply.code} {clean_text(reply.text)}")
        return current, True
    if isinstance(action, SendText):
        while True:
            try:
                sent = await (
                    client.say(action.text) if action.target == EVERYONE else client.tell(action.target, action.text)
                )
            except RateLimited:
                await asyncio.sleep(1.0)
                continue
            except CommandError as exc:
                out(f"* not sent: {exc}")
                return current, False
            out(own_line(sent, client.name or "you", action.target, action.text))
            return current, False
    if isinstance(action, ServerCommand):
        command = parse_command(action.line)
        if isinstance(command, Say | Tell):  # /say and /tell: shown like any message you send
            target = EVERYONE if isinstance(command, Say) else format_command(command).split(" ")[1]
            return await perform(client, SendText(target, command.text), current, out)
        reply = await client.command(action.line)
        for item in reply.items:
            out(f"  {clean_text(item)}")
        out(f"* {reply.code} {clean_text(reply.text)}")
        return current, False
    raise TypeError(action)


async def _piped(client: ChatClient, name: str) -> int:
    def out(text: str | Line) -> None:
        print(text if isinstance(text, str) else plain(text), flush=True)

    try:
        if client.name is None:
            await client.register(name)
    except NameTaken as taken:
        print(f"bleeper chat: {name} is taken; using {taken.suggestion}", file=sys.stderr)
        await client.register(taken.suggestion)
    printer = asyncio.ensure_future(_print_events(client, out))
    current = EVERYONE
    stopped = False
    try:
        while not stopped:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                break
            try:
                current, stopped = await perform(client, interpret(line, current), current, out)
            except (ConnectionClosed, NotConnected) as exc:
                print(f"bleeper chat: not sent ({exc}): {line.strip()[:60]}", file=sys.stderr)
        if not stopped:
            reply = await client.quit()
            out(f"* {reply.code} {clean_text(reply.text)}")
    except BleeperError as exc:
        print(f"bleeper chat: {exc}", file=sys.stderr)
        return 1
    finally:
        client._shutdown("input ended")
        await asyncio.wait_for(printer, 5)
    return 0


async def _interactive(client: ChatClient, name: str | None) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.patch_stdout import patch_stdout

    session: PromptSession[str] = PromptSession()

    def out(text: str | Line) -> None:
        print(text if isinstance(text, str) else plain(text), flush=True)

    with patch_stdout():
        default = name or ""
        while client.name is None:
            if not default:
                try:
                    default = (await session.prompt_async("your name: ")).strip()
                except (EOFError, KeyboardInterrupt):
                    await client.close()
                    return 0
                if not default:
                    continue
            try:
                await client.register(default)
            except NameTaken as taken:
                out(f"* {default} is taken; press Enter for {taken.suggestion} or type another name")
                default = (await session.prompt_async("your name: ", default=taken.suggestion)).strip()
            except CommandError as exc:
                out(f"* {exc.reply.text}")
                default = ""
        out(f"* you are {client.name}; type /help for commands, /quit to leave")
        printer = asyncio.ensure_future(_print_events(client, out))
        current = EVERYONE
        stopped = False
        while not stopped:
            try:
                prompt = f"{conversation_label(current)}> "
                line = await session.prompt_async(prompt)
                action: object = interpret(line, current)
            except (EOFError, KeyboardInterrupt):
                action = QuitChat("")
            try:
                current, stopped = await perform(client, action, current, out)
            except ConnectionClosed as exc:
                out(f"* not sent: {exc}; the client is reconnecting")
            except BleeperError as exc:
                out(f"* {exc}")
        await asyncio.wait_for(printer, 5)
    return 0
