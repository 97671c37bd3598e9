"""SQLite's group commits, written by a process of its own.

In one process the event loop and the SQLite thread share one interpreter lock, so under load they share
one core: while a commit's Python runs, no message is read, and the other way round. The server's file
database therefore hands each batch to a child process (``python -m bleeper.store.writer``) over a socket
pair: the loop sends the batch as one frame and goes on serving; the child writes and commits it and sends
back ids and sequence numbers. Both cores work. Everything else (reads, accounts, groups) stays on the
store's thread: those are rare, and WAL lets the two connections work side by side.

Frames are a 4-byte big-endian length and a :mod:`marshal` payload of plain tuples: both ends are this
Bleeper, started from the same interpreter, and marshal is the cheapest encoding Python has.

The child ignores SIGINT and SIGTERM (a Ctrl+C reaches the whole process group, but the server still has
its queue to commit) and stops when the server closes its end, or dies: it finishes the commit in hand
first, so a commit is never cut short by the server's death.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import marshal
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Sequence

from bleeper.chat.records import AuditEvent, NewMessage, StorageUnsure, StoredMessage, stored_from
from bleeper.store.base import Committed
from bleeper.store.model import StoreError

HEADER = struct.Struct(">I")
START_TIMEOUT = 30.0  # seconds for the child to start and open the database
STOP_TIMEOUT = 10.0  # seconds for the child to finish its last commit after the server closes its end

Waiting = tuple[Committed, Sequence[NewMessage]]
log = logging.getLogger("bleeper.store")


def frame(value: object) -> bytes:
    payload = marshal.dumps(value)  # type: ignore[arg-type]
    return HEADER.pack(len(payload)) + payload


def encode_batch(messages: Sequence[NewMessage], events: Sequence[AuditEvent]) -> bytes:
    return frame((
        [(m.sender, m.sender_key, m.to, m.conversation, m.text, m.created_ms, m.recipients, m.client_id, m.urgent,
          m.resend_of) for m in messages],
        [(e.at_ms, e.kind, e.actor, e.subject, e.detail) for e in events],
    ))  # fmt: skip


def decode_batch(payload: bytes) -> tuple[list[NewMessage], list[AuditEvent]]:
    messages, events = marshal.loads(payload)
    return [NewMessage(*m) for m in messages], [AuditEvent(*e) for e in events]


def encode_results(stored: Sequence[StoredMessage]) -> bytes:
    """A fresh message comes back as (id, seqs): the server still has the rest. A duplicate comes back
    whole, since it is the earlier message, whose text and time may differ from the resent one."""
    return frame(("ok", [
        (s.id, s.sender, s.to, s.conversation, s.text, s.created_ms, s.client_id, s.duplicate, s.seqs, s.urgent)
        if s.duplicate else (s.id, s.seqs)
        for s in stored
    ]))  # fmt: skip


def decode_results(answer: list[tuple[object, ...]], messages: Sequence[NewMessage]) -> list[StoredMessage]:
    return [
        stored_from(message, row[0], row[1]) if len(row) == 2 else StoredMessage(*row)  # type: ignore[arg-type]
        for message, row in zip(messages, answer, strict=True)
    ]


class WriterProcess(asyncio.Protocol):
    """The server's end: :meth:`write` sends a batch and returns its results once the child has committed it.
    Batches are answered in the order they were sent."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.stopped = ""  # why the child is gone, once it is
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiting: collections.deque[Waiting] = collections.deque()
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def start(cls, path: str, keep_fds: Sequence[int] = ()) -> WriterProcess:
        """Start a child writing to *path* (already created and migrated). *keep_fds* stay open in the child:
        the server's lock on the file, so that nobody takes the file over while the child still writes."""
        ours, theirs = socket.socketpair()
        try:
            command = [sys.executable, "-m", "bleeper.store.writer", str(theirs.fileno()), path]
            proc = await asyncio.to_thread(
                subprocess.Popen, command, stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(), *keep_fds)
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        writer = cls(proc)
        try:
            await asyncio.get_running_loop().create_unix_connection(lambda: writer, sock=ours)
            await asyncio.wait_for(asyncio.shield(writer._ready), START_TIMEOUT)
        except BaseException:
            if writer._transport is None:
                ours.close()  # so that the child sees the end of its input and exits
            await writer.close()
            raise
        return writer

    def submit(self, messages: Sequence[NewMessage], events: Sequence[AuditEvent], done: Committed) -> None:
        """Send a batch; *done* is called from the I/O callback that reads the answer (see Store.commit)."""
        if self.stopped or self._transport is None:
            done(None, WriterLost(f"the SQLite writer process has stopped ({self.stopped})"))
            return
        self._waiting.append((done, messages))
        self._transport.write(encode_batch(messages, events))

    async def write(self, messages: Sequence[NewMessage], events: Sequence[AuditEvent]) -> list[StoredMessage]:
        future: asyncio.Future[list[StoredMessage]] = asyncio.get_running_loop().create_future()

        def done(stored: list[StoredMessage] | None, error: BaseException | None) -> None:
            if not future.done():
                future.set_result(stored) if stored is not None else future.set_exception(error or WriterLost("lost"))

        self.submit(messages, events, done)
        return await future

    async def close(self) -> None:
        """Let the child finish what it was sent, then wait for it to exit."""
        if self._transport is not None:
            self._transport.close()
        try:
            await asyncio.to_thread(self.proc.wait, STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait)

    # asyncio.Protocol ------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        while len(buffer) - start >= HEADER.size:
            (size,) = HEADER.unpack_from(buffer, start)
            end = start + HEADER.size + size
            if len(buffer) < end:
                break
            self._answer(marshal.loads(buffer[start + HEADER.size : end]))
            start = end
        del buffer[:start]

    def _answer(self, answer: tuple[object, ...]) -> None:
        if answer[0] == "ready":
            self._ready.set_result(None)
            return
        if answer[0] == "failed":  # the child could not open the database
            self._ready.set_exception(StoreError(str(answer[1])))
            return
        done, messages = self._waiting.popleft()
        try:
            if answer[0] == "ok":
                done(decode_results(answer[1], messages), None)  # type: ignore[arg-type]
            else:
                done(None, SqliteFailure(str(answer[1])))
        except Exception:
            log.exception("answering a commit failed")

    def connection_lost(self, exc: Exception | None) -> None:
        code = self.proc.poll()
        self.stopped = f"exit status {code}" if code is not None else str(exc or "connection closed")
        if not self._ready.done():
            self._ready.set_exception(StoreError(f"the SQLite writer process did not start ({self.stopped})"))
        while self._waiting:
            done, _ = self._waiting.popleft()
            try:
                done(None, WriterLost(
                    f"the SQLite writer process stopped during a commit ({self.stopped}): its messages may or may "
                    "not be stored; resending them with the same ID is safe"
                ))  # fmt: skip
            except Exception:
                log.exception("answering a commit failed")


class SqliteFailure(Exception):
    """SQLite refused a batch in the child; the store turns the text into advice (see sqlite.translate)."""


class WriterLost(StoreError, StorageUnsure):
    """The child is gone: it died with a batch in hand, or before one was sent."""


def serve(fd: int, path: str) -> int:
    """The child's loop: one transaction per batch received, in order, until the server goes away."""
    import sqlite3

    from bleeper.store.sqlite_commit import connect, write_batch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sock = socket.socket(fileno=fd)
    try:
        db = connect(path)
    except sqlite3.Error as exc:
        sock.sendall(frame(("failed", str(exc))))
        return 1
    incoming = sock.makefile("rb")
    with contextlib.closing(db), incoming, contextlib.suppress(ConnectionError):  # the server died: stop quietly
        sock.sendall(frame(("ready",)))
        while True:
            header = incoming.read(HEADER.size)
            size = HEADER.unpack(header)[0] if len(header) == HEADER.size else -1
            payload = incoming.read(size) if size > 0 else b""
            if len(payload) != size:
                break  # the server closed its end, or died
            messages, events = decode_batch(payload)
            try:
                answer = encode_results(write_batch(db, messages, events))
            except Exception as exc:  # the transaction was rolled back; the server must hear why
                answer = frame(("error", str(exc)))
            sock.sendall(answer)
    return 0


if __name__ == "__main__":
    sys.exit(serve(int(sys.argv[1]), sys.argv[2]))
