"""An in-memory ``ResolutionsStore`` (services/resolutions/ports.py) for unit tests.

It keeps copies of the aggregates (never the caller's objects, as a database would), a
revision per aggregate (a save of a stale one raises ``ConcurrentChange``), the unique
numbers per conference, and the events saved, in order, in ``outbox``. Imports are
all-or-nothing as in MongoDB: hidden while written, removed if a write fails part-way.
Knobs let a test provoke what is hard to provoke for real: ``before_write`` runs once,
before the next write (a rival coordinator), ``relay_wrote`` moves a revision (the outbox
relay), ``import_dies_after`` / ``import_fails_after`` stop an import part-way.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from services.resolutions.domain import Conference, EvidenceFile, Reminder, Resolution
from services.resolutions.ports import AlreadyTaken, ConcurrentChange, WriteFailed
from shared.envelope import OutboxMessage, wrap
from shared.outbox import WriteSignal
from shared.topics import RESOLUTIONS as RESOLUTIONS_TOPIC
from shared.topics import RESOLUTIONS_NOTICES

SERVICE = "resolutions"
COLLECTION = "resolutions"


class ProcessDied(Exception):
    """The process stopped mid-import (``import_dies_after``): nothing cleaned up."""


class FakeResolutionsStore:
    def __init__(self, *, signal: WriteSignal | None = None) -> None:
        self.signal = signal or WriteSignal()
        self.conferences: dict[str, Conference] = {}
        self.resolutions: dict[str, Resolution] = {}
        # resolution id -> (import id, started at) while its import is being written
        self.importing: dict[str, tuple[str, datetime]] = {}
        self.outbox: list[OutboxMessage] = []
        self.reminders: dict[str, Reminder] = {}
        self.signalled: list[tuple[str, str]] = []
        self.signal.listen(lambda collection, doc_id: self.signalled.append((collection, doc_id)))
        self.before_write: Callable[[str, str], Awaitable[None]] | None = None
        self.import_dies_after: int | None = None
        self.import_fails_after: int | None = None

    # ------------------------------------------------------------------ test helpers

    def relay_wrote(self, resolution_id: str) -> None:
        """What the relay does after publishing: the revision moves, the version not."""
        self.resolutions[resolution_id].rev += 1

    def events(
        self, resolution_id: str | None = None, *, topic: str = RESOLUTIONS_TOPIC
    ) -> list[OutboxMessage]:
        """The saved events (of one resolution) on one stream, in order: the public one
        unless told."""
        return [
            m
            for m in self.outbox
            if m.topic == topic and (resolution_id is None or m.key == resolution_id)
        ]

    def notices(self, resolution_id: str | None = None) -> list[OutboxMessage]:
        """The saved notices (resolutions.notices.v1) of one resolution, in order."""
        return self.events(resolution_id, topic=RESOLUTIONS_NOTICES)

    async def _before(self, op: str, key: str) -> None:
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None  # once
            await hook(op, key)

    def _visible(self, resolution_id: str) -> bool:
        return resolution_id not in self.importing

    def _number_taken(self, resolution: Resolution) -> bool:
        return any(
            r.conference_id == resolution.conference_id
            and r.number == resolution.number
            and r.id != resolution.id
            for r in self.resolutions.values()
        )

    def _publish(self, resolution: Resolution) -> list[OutboxMessage]:
        return [wrap(e, SERVICE) for e in resolution.take_events()]

    # ------------------------------------------------------------------ conferences

    async def get_conference(self, conference_id: str) -> Conference | None:
        found = self.conferences.get(conference_id)
        return copy.deepcopy(found) if found else None

    async def list_conferences(self) -> list[Conference]:
        ordered = sorted(self.conferences.values(), key=lambda c: c.starts_on, reverse=True)
        return [copy.deepcopy(c) for c in ordered]

    async def insert_conference(self, conference: Conference) -> None:
        await self._before("insert_conference", conference.id)
        if conference.id in self.conferences:
            raise AlreadyTaken(conference.id)
        conference.rev = 1
        self.conferences[conference.id] = copy.deepcopy(conference)

    async def save_conference(self, conference: Conference) -> None:
        await self._before("save_conference", conference.id)
        stored = self.conferences.get(conference.id)
        if stored is None or stored.rev != conference.rev:
            raise ConcurrentChange(conference.id)
        conference.rev += 1
        self.conferences[conference.id] = copy.deepcopy(conference)

    # ------------------------------------------------------------------ resolutions

    async def get_resolution(self, resolution_id: str) -> Resolution | None:
        found = self.resolutions.get(resolution_id)
        if found is None or not self._visible(resolution_id):
            return None
        return copy.deepcopy(found)

    async def list_resolutions(self, conference_id: str) -> list[Resolution]:
        found = [
            r
            for r in self.resolutions.values()
            if r.conference_id == conference_id and self._visible(r.id)
        ]
        return [copy.deepcopy(r) for r in sorted(found, key=lambda r: r.number)]

    async def resolution_numbers(self, conference_id: str) -> set[int]:
        return {r.number for r in self.resolutions.values() if r.conference_id == conference_id}

    async def insert_resolution(self, resolution: Resolution) -> None:
        await self._before("insert_resolution", resolution.id)
        if resolution.id in self.resolutions or self._number_taken(resolution):
            raise AlreadyTaken(resolution.id)
        messages = self._publish(resolution)
        resolution.rev = 1
        self.resolutions[resolution.id] = copy.deepcopy(resolution)
        self.outbox += messages
        if messages:
            self.signal.written(COLLECTION, resolution.id)

    async def save_resolution(self, resolution: Resolution) -> None:
        await self._before("save_resolution", resolution.id)
        stored = self.resolutions.get(resolution.id)
        if stored is None or stored.rev != resolution.rev:
            raise ConcurrentChange(resolution.id)
        messages = self._publish(resolution)
        resolution.rev += 1
        self.resolutions[resolution.id] = copy.deepcopy(resolution)
        self.outbox += messages
        if messages:
            self.signal.written(COLLECTION, resolution.id)

    # ------------------------------------------------------------------ imports

    async def insert_import(
        self, resolutions: Sequence[Resolution], *, import_id: str, started_at: datetime
    ) -> None:
        await self._before("insert_import", import_id)
        held: list[tuple[Resolution, list[OutboxMessage]]] = []
        for count, resolution in enumerate(resolutions):
            if self.import_dies_after is not None and count == self.import_dies_after:
                raise ProcessDied(import_id)  # nothing cleans up
            failed = self.import_fails_after is not None and count == self.import_fails_after
            if failed or self._number_taken(resolution):
                for r, _ in held:  # what this import wrote goes; nothing was published
                    del self.resolutions[r.id]
                    del self.importing[r.id]
                raise WriteFailed(import_id) if failed else AlreadyTaken(import_id)
            messages = self._publish(resolution)
            resolution.rev = 1
            self.resolutions[resolution.id] = copy.deepcopy(resolution)
            self.importing[resolution.id] = (import_id, started_at)
            held.append((resolution, messages))
        for resolution, messages in held:  # shown and released together
            del self.importing[resolution.id]
            resolution.rev += 1
            self.resolutions[resolution.id].rev = resolution.rev
            self.outbox += messages
            self.signal.written(COLLECTION, resolution.id)

    async def sweep_unfinished_imports(self, started_before: datetime) -> int:
        stale = [rid for rid, (_, at) in self.importing.items() if at < started_before]
        for rid in stale:
            del self.importing[rid]
            del self.resolutions[rid]
        return len(stale)

    # ------------------------------------------------------------------ chasing

    async def insert_reminder(self, reminder: Reminder) -> None:
        await self._before("insert_reminder", reminder.id)
        if reminder.id in self.reminders:
            raise AlreadyTaken(reminder.id)
        messages = [wrap(e, SERVICE) for e in reminder.take_events()]
        reminder.rev = 1
        self.reminders[reminder.id] = copy.deepcopy(reminder)
        self.outbox += messages
        if messages:
            self.signal.written("reminders", reminder.id)


class FakeEvidenceStore:
    """An in-memory ``EvidenceStore``: files by content hash."""

    def __init__(self) -> None:
        self.files: dict[str, EvidenceFile] = {}
        self.puts = 0

    async def put(self, file: EvidenceFile) -> None:
        self.puts += 1
        self.files.setdefault(file.sha256, file)

    async def get(self, sha256: str) -> EvidenceFile | None:
        return self.files.get(sha256)
