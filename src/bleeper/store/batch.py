"""What one group commit writes, worked out in Python so each backend needs a handful of set-based statements.

A backend drives a :class:`Batch` through its steps inside one transaction:

1. look up :meth:`Batch.client_ids` and pass what earlier commits stored to :meth:`Batch.settle` (which sets
   aside resends: messages already stored, going to more recipients, which need inbox entries only);
2. read the last message id of each of :meth:`Batch.conversations` and reserve ids for the fresh messages;
3. write :meth:`Batch.message_rows` and :meth:`Batch.conversation_rows`;
4. add :meth:`Batch.recipient_counts` to the recipients' sequences and write :meth:`Batch.inbox_rows`;
5. continue the audit chain with :meth:`Batch.audit_rows` (one entry per stored message, and the batch's other
   events);
6. return :meth:`Batch.results`.

History follows ``previous_id`` links from ``conversations.last_id`` instead of an index on
``messages(conversation, id)``: with a hundred conversations busy, that index dirtied a page per
conversation in every commit and cost more than everything else in it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from bleeper.chat.records import AuditEvent, NewMessage, StoredMessage, stored_from
from bleeper.store.audit import AuditEntry, chain, message_record, record

MESSAGE_COLUMNS = "id, client_id, sender, sender_key, recipient, conversation, body, created_ms, previous_id, urgent"
AUDIT_COLUMNS = "id, at_ms, kind, actor, subject, detail, prev_hash, hash"
MessageRow = tuple[int, str | None, str, str | None, str, str, str, int, int | None, bool]


class Batch:
    def __init__(self, messages: Sequence[NewMessage], events: Sequence[AuditEvent] = ()) -> None:
        self.messages = list(messages)
        self.events = list(events)
        self.fresh: list[NewMessage] = []  # what this commit stores, in order
        self.resends: dict[int, NewMessage] = {}  # batch index -> a stored message going to more recipients
        self.ids: list[int] = []  # their ids, once reserved
        self._earlier: dict[int, StoredMessage] = {}  # batch index -> stored by an earlier commit
        self._repeats: dict[int, int] = {}  # batch index -> index in fresh of its twin earlier in this batch
        self._placed: dict[int, int] = {}  # batch index -> index in fresh
        self._last_ids: dict[str, int] = {}  # conversation -> its newest message id
        self._stored: list[StoredMessage] = []
        self._resent: dict[int, StoredMessage] = {}
        self._counts: list[tuple[str, int]] | None = None

    def client_ids(self) -> list[tuple[str | None, str]]:
        """(sender key, client id) of the messages that carry one, each once: look them up, then :meth:`settle`."""
        return list(dict.fromkeys((m.sender_key, m.client_id) for m in self.messages if m.client_id is not None))

    def settle(self, earlier: Mapping[tuple[str | None, str], StoredMessage]) -> None:
        """*earlier*: (sender key, client id) -> the message an earlier commit stored with that client id.
        Those, and repeats within this batch, are answered as duplicates; the rest are :attr:`fresh`."""
        firsts: dict[tuple[str | None, str], int] = {}
        for index, message in enumerate(self.messages):
            if message.resend_of is not None:
                self.resends[index] = message
                continue
            if message.client_id is not None:
                ident = (message.sender_key, message.client_id)
                if ident in earlier:
                    self._earlier[index] = dataclasses.replace(earlier[ident], duplicate=True)
                    continue
                if ident in firsts:
                    self._repeats[index] = firsts[ident]
                    continue
                firsts[ident] = len(self.fresh)
            self._placed[index] = len(self.fresh)
            self.fresh.append(message)

    def conversations(self) -> list[str]:
        return sorted({message.conversation for message in self.fresh})

    def message_rows(self, ids: Sequence[int], last_ids: Mapping[str, int]) -> list[MessageRow]:
        """Rows for :data:`MESSAGE_COLUMNS` with the reserved, increasing *ids*, each linked to the message
        before it in its conversation (*last_ids*: the newest id of each conversation before this commit)."""
        self.ids = list(ids)
        self._last_ids = dict(last_ids)
        rows: list[MessageRow] = []
        for msg_id, m in zip(self.ids, self.fresh, strict=True):
            previous = self._last_ids.get(m.conversation)
            self._last_ids[m.conversation] = msg_id
            rows.append((msg_id, m.client_id, m.sender, m.sender_key, m.to, m.conversation, m.text, m.created_ms,
                         previous, m.urgent))  # fmt: skip
        return rows

    def conversation_rows(self) -> list[tuple[str, int]]:
        """(conversation, newest id) to upsert; call after :meth:`message_rows`."""
        return sorted(self._last_ids.items())

    def recipient_counts(self) -> list[tuple[str, int]]:
        """How many new inbox entries each recipient gets, to add to its sequence (sorted, so concurrent
        writers lock rows in the same order)."""
        if self._counts is None:
            counts: dict[str, int] = {}
            for message in (*self.fresh, *self.resends.values()):
                for key in message.recipients:
                    counts[key] = counts.get(key, 0) + 1
            self._counts = sorted(counts.items())
        return self._counts

    def inbox_rows(self, last_seqs: Mapping[str, int]) -> list[tuple[str, int, int]]:
        """(account key, seq, message id) rows; *last_seqs* are the sequences after adding the counts."""
        counts = dict(self.recipient_counts())
        next_seq = {key: last_seqs[key] - count + 1 for key, count in counts.items()}
        rows: list[tuple[str, int, int]] = []
        self._stored = []
        self._resent = {}

        def enter(msg_id: int, message: NewMessage) -> StoredMessage:
            seqs = []
            for key in message.recipients:
                seq = next_seq[key]
                next_seq[key] = seq + 1
                seqs.append((key, seq))
                rows.append((key, seq, msg_id))
            return stored_from(message, msg_id, tuple(seqs))

        for msg_id, message in zip(self.ids, self.fresh, strict=True):
            self._stored.append(enter(msg_id, message))
        for index, message in self.resends.items():
            self._resent[index] = enter(message.resend_of or 0, message)
        return rows

    def audit_rows(self, last_id: int, last_hash: str) -> list[AuditEntry]:
        """The chain's next entries, after entry *last_id*: the batch's events, then one per stored message
        (metadata and a hash of the text, never the text). Call after :meth:`message_rows`."""
        records = [record(event) for event in self.events]
        for msg_id, m in zip(self.ids, self.fresh, strict=True):
            actor = m.sender_key if m.sender_key is not None else f"guest:{m.sender}"
            records.append(message_record(msg_id, m.created_ms, actor, m.to, m.text, len(m.recipients)))
        return chain(last_id, last_hash, records)

    def results(self) -> list[StoredMessage]:
        """One answer per submitted message, in order; call after :meth:`inbox_rows`."""
        out: list[StoredMessage] = []
        for index in range(len(self.messages)):
            if index in self._resent:
                out.append(self._resent[index])
            elif index in self._earlier:
                out.append(self._earlier[index])
            elif index in self._repeats:
                out.append(dataclasses.replace(self._stored[self._repeats[index]], duplicate=True))
            else:
                out.append(self._stored[self._placed[index]])
        return out
