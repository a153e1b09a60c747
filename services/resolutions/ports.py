"""The resolutions service's ports: what its use cases need of storage, and nothing more.

``store.MongoResolutionsStore`` implements ``ResolutionsStore`` on MongoDB;
``tests/unit/fakes/resolutions.FakeResolutionsStore`` implements it in memory. Saving an
aggregate writes its change and the events it recorded in one atomic write,
revision-checked, and reports the write to the service's write signal.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from services.resolutions.domain import Conference, EvidenceFile, Reminder, Resolution


class ConcurrentChange(Exception):
    """The aggregate's stored revision moved since it was read (say, the relay wrote):
    read it again and decide again."""


class AlreadyTaken(Exception):
    """A uniqueness rule refused the write: the conference id, or the resolution number
    in its conference, is taken."""


class WriteFailed(Exception):
    """The database could not complete a write (not a rule of the domain)."""


@runtime_checkable
class ResolutionsStore(Protocol):
    # ------------------------------------------------------------------ conferences
    async def get_conference(self, conference_id: str) -> Conference | None: ...

    async def list_conferences(self) -> list[Conference]:
        """Every conference, newest first."""
        ...

    async def insert_conference(self, conference: Conference) -> None:
        """Raises ``AlreadyTaken`` if the id is."""
        ...

    async def save_conference(self, conference: Conference) -> None:
        """Raises ``ConcurrentChange`` if it changed since it was read."""
        ...

    # ------------------------------------------------------------------ resolutions
    async def get_resolution(self, resolution_id: str) -> Resolution | None:
        """A visible resolution (not one of an import still being written)."""
        ...

    async def list_resolutions(self, conference_id: str) -> list[Resolution]:
        """A conference's visible resolutions, by number."""
        ...

    async def resolution_numbers(self, conference_id: str) -> set[int]:
        """Every number taken in a conference, including by an import in progress."""
        ...

    async def insert_resolution(self, resolution: Resolution) -> None:
        """The new resolution and its events; ``AlreadyTaken`` if its number is."""
        ...

    async def save_resolution(self, resolution: Resolution) -> None:
        """The change and its events in one write; ``ConcurrentChange`` if it moved on."""
        ...

    # ------------------------------------------------------------------ imports
    async def insert_import(
        self, resolutions: Sequence[Resolution], *, import_id: str, started_at: datetime
    ) -> None:
        """All of ``resolutions`` or none: hidden, events held back, until every one is
        in; then shown and released together. If a write fails part-way, what the
        import wrote is removed and ``AlreadyTaken`` (a number was taken meanwhile) or
        ``WriteFailed`` is raised."""
        ...

    async def sweep_unfinished_imports(self, started_before: datetime) -> int:
        """Remove what imports started before then wrote and never finished; how many."""
        ...

    # ------------------------------------------------------------------ chasing
    async def insert_reminder(self, reminder: Reminder) -> None:
        """The reminder and its notice in one write; ``AlreadyTaken`` if its rule's key
        fired before (each rule fires once per resolution and date)."""
        ...


@runtime_checkable
class EvidenceStore(Protocol):
    """Evidence files, content-addressed: a file is kept once under its SHA-256."""

    async def put(self, file: EvidenceFile) -> None:
        """Keep the file under its hash (a file kept already is kept once)."""
        ...

    async def get(self, sha256: str) -> EvidenceFile | None:
        """The file kept under this hash, if any."""
        ...
