"""The resolutions service's MongoDB: conferences and resolutions. The ONLY module here
that touches MongoDB.

A resolution document holds its actions, its timeline and its versions, so a change,
its timeline entry, its version record and its events are one atomic write (outbox
inside). Documents of an import still being written carry ``importing`` (the import
id) and are hidden from every read until the whole file is in.

``MongoResolutionsStore`` implements ``ports.ResolutionsStore``: it turns documents into
aggregates and back, saves an aggregate's change with ``wrap()`` of the events it
recorded, revision-checked, reports every write that leaves events behind to the
service's write signal, and translates pymongo's errors into the port's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import date, datetime
from typing import Any

from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from services.resolutions.domain import (
    Action,
    Conference,
    EvidenceFile,
    PendingUpdate,
    Reminder,
    ReportingRules,
    Resolution,
    TimelineEntry,
    VersionRecord,
)
from services.resolutions.ports import AlreadyTaken, ConcurrentChange, WriteFailed
from shared import outbox
from shared.contracts.resolutions import FocalPerson
from shared.envelope import wrap
from shared.logging import get_logger
from shared.outbox import ConcurrentUpdate, WriteSignal, ensure_outbox_indexes, new_document
from shared.timeutil import epoch

SERVICE = "resolutions"
CONFERENCES = "conferences"
RESOLUTIONS = "resolutions"
# One document per rule that fired (its key is the id), with the notice it sent.
REMINDERS = "reminders"
# The GridFS bucket of evidence files (evidence.files, evidence.chunks), by content hash.
EVIDENCE_BUCKET = "evidence"
# Matches a missing field too: documents written outside an import have none.
VISIBLE: dict[str, Any] = {"importing": None}
# An import's documents hold their events back (a relay lease far in the future) until
# the whole file is in.
IMPORT_HOLD_S = 10 * 365 * 24 * 3600.0

log = get_logger("resolutions")


class MongoResolutionsStore:
    def __init__(self, db: AsyncDatabase, *, signal: WriteSignal | None = None) -> None:
        # Reported after each write that leaves events to publish (the relay listens).
        self.signal = signal or WriteSignal()
        self.db = db
        self.conferences = db[CONFERENCES]
        self.resolutions = db[RESOLUTIONS]
        self.reminders = db[REMINDERS]

    async def ensure_indexes(self) -> None:
        await self.resolutions.create_index(
            [("conference_id", ASCENDING), ("number", ASCENDING)], unique=True
        )
        await self.resolutions.create_index([("importing", ASCENDING)])
        await ensure_outbox_indexes(self.resolutions)
        await ensure_outbox_indexes(self.reminders)

    # ------------------------------------------------------------------ conferences

    async def get_conference(self, conference_id: str) -> Conference | None:
        doc = await self.conferences.find_one({"_id": conference_id})
        return None if doc is None else _conference(doc)

    async def list_conferences(self) -> list[Conference]:
        docs = await self.conferences.find({}, sort=[("starts_on", -1)]).to_list()
        return [_conference(d) for d in docs]

    async def insert_conference(self, conference: Conference) -> None:
        doc = {"_id": conference.id, **_conference_fields(conference), "rev": 1}
        try:
            await self.conferences.insert_one(doc)
        except DuplicateKeyError as exc:
            raise AlreadyTaken(conference.id) from exc
        conference.rev = 1

    async def save_conference(self, conference: Conference) -> None:
        # Conferences written before revisions existed have none (rev 0): by id alone.
        flt: dict[str, Any] = {"_id": conference.id}
        if conference.rev:
            flt["rev"] = conference.rev
        result = await self.conferences.update_one(
            flt, {"$set": _conference_fields(conference), "$inc": {"rev": 1}}
        )
        if result.matched_count != 1:
            raise ConcurrentChange(conference.id)
        conference.rev += 1

    # ------------------------------------------------------------------ resolutions

    async def get_resolution(self, resolution_id: str) -> Resolution | None:
        doc = await self.resolutions.find_one({"_id": resolution_id, **VISIBLE})
        return None if doc is None else _resolution(doc)

    async def list_resolutions(self, conference_id: str) -> list[Resolution]:
        docs = await self.resolutions.find(
            {"conference_id": conference_id, **VISIBLE}, sort=[("number", ASCENDING)]
        ).to_list()
        return [_resolution(d) for d in docs]

    async def resolution_numbers(self, conference_id: str) -> set[int]:
        docs = await self.resolutions.find(
            {"conference_id": conference_id}, {"number": 1}
        ).to_list()
        return {d["number"] for d in docs}

    async def insert_resolution(self, resolution: Resolution) -> None:
        doc = _new_resolution_document(resolution)
        try:
            await outbox.insert(self.resolutions, doc, signal=self.signal)
        except DuplicateKeyError as exc:
            raise AlreadyTaken(f"{resolution.conference_id}/{resolution.number}") from exc
        resolution.rev = doc["rev"]

    async def save_resolution(self, resolution: Resolution) -> None:
        # The outbox is appended to, not rewritten: read what it holds at this revision.
        current = await self.resolutions.find_one({"_id": resolution.id})
        if current is None or current.get("rev") != resolution.rev:
            raise ConcurrentChange(resolution.id)
        messages = [wrap(e, SERVICE) for e in resolution.take_events()]
        try:
            await outbox.save(
                self.resolutions,
                current,
                _resolution_fields(resolution),
                messages,
                signal=self.signal,
            )
        except ConcurrentUpdate as exc:
            raise ConcurrentChange(resolution.id) from exc
        resolution.rev += 1

    # ------------------------------------------------------------------ chasing

    async def insert_reminder(self, reminder: Reminder) -> None:
        messages = [wrap(e, SERVICE) for e in reminder.take_events()]
        doc = new_document(
            {
                "_id": reminder.id,
                "conference_id": reminder.conference_id,
                "resolution_id": reminder.resolution_id,
                "rule": reminder.rule,
                "at": reminder.at,
            },
            messages,
        )
        try:
            await outbox.insert(self.reminders, doc, signal=self.signal)
        except DuplicateKeyError as exc:
            raise AlreadyTaken(reminder.id) from exc
        reminder.rev = doc["rev"]

    # ------------------------------------------------------------------ imports

    async def insert_import(
        self, resolutions: Sequence[Resolution], *, import_id: str, started_at: datetime
    ) -> None:
        """One ordered ``insert_many`` of documents tagged with the import id and with their
        events held back; if it fails part-way, what this import inserted is deleted. Only
        when every row is in are the documents shown and their events released, in one
        ``update_many``."""
        hold = epoch() + IMPORT_HOLD_S
        docs = []
        for resolution in resolutions:
            doc = _new_resolution_document(resolution)
            doc.update(
                importing=import_id,
                import_started=started_at.timestamp(),
                outbox_lease_until=hold,
            )
            docs.append(doc)
        try:
            await self.resolutions.insert_many(docs, ordered=True)
        except PyMongoError as exc:
            await self.resolutions.delete_many({"importing": import_id})
            log.warning("import_rolled_back", import_id=import_id, error=type(exc).__name__)
            if _is_duplicate(exc):
                raise AlreadyTaken(import_id) from exc
            raise WriteFailed(import_id) from exc
        await self.resolutions.update_many(
            {"importing": import_id},
            {"$set": {"importing": None, "outbox_lease_until": 0.0}, "$inc": {"rev": 1}},
        )
        for resolution, doc in zip(resolutions, docs, strict=True):
            resolution.rev = doc["rev"] + 1
            self.signal.written(RESOLUTIONS, doc["_id"])

    async def sweep_unfinished_imports(self, started_before: datetime) -> int:
        result = await self.resolutions.delete_many(
            {"importing": {"$ne": None}, "import_started": {"$lt": started_before.timestamp()}}
        )
        return result.deleted_count


def _is_duplicate(exc: PyMongoError) -> bool:
    if isinstance(exc, DuplicateKeyError):
        return True
    if isinstance(exc, BulkWriteError):
        return any(e.get("code") == 11000 for e in exc.details.get("writeErrors", []))
    return False


# --------------------------------------------------------------------------- documents


def _conference_fields(conference: Conference) -> dict[str, Any]:
    fields_ = {
        "name_sw": conference.name_sw,
        "name_en": conference.name_en,
        "starts_on": conference.starts_on.isoformat(),
        "ends_on": conference.ends_on.isoformat(),
        "venue": conference.venue,
        "created_at": conference.created_at,
        "reporting": conference.reporting.model_dump(mode="json"),
    }
    if conference.updated_at is not None:
        fields_["updated_at"] = conference.updated_at
    return fields_


def _conference(doc: dict[str, Any]) -> Conference:
    return Conference(
        id=doc["_id"],
        name_sw=doc["name_sw"],
        name_en=doc["name_en"],
        starts_on=date.fromisoformat(doc["starts_on"]),
        ends_on=date.fromisoformat(doc["ends_on"]),
        venue=doc["venue"],
        created_at=doc.get("created_at") or "",
        updated_at=doc.get("updated_at"),
        reporting=ReportingRules(**(doc.get("reporting") or {})),
        rev=int(doc.get("rev") or 0),
    )


def _version_record(record: VersionRecord) -> dict[str, Any]:
    out = asdict(record)
    if out["origin"] is None:
        del out["origin"]  # as before: only imports and reverts name an origin
    return out


def _resolution_fields(resolution: Resolution) -> dict[str, Any]:
    """Everything of the aggregate but its id, as stored (JSON types)."""
    return {
        "conference_id": resolution.conference_id,
        "number": resolution.number,
        **resolution.details(),
        "status": resolution.status,
        "progress": resolution.progress,
        "actions": [asdict(a) for a in resolution.actions],
        "version": resolution.version,
        "timeline": [asdict(e) for e in resolution.timeline],
        "versions": [_version_record(v) for v in resolution.versions],
        "created_at": resolution.created_at,
        "updated_at": resolution.updated_at,
        "pending": [asdict(p) for p in resolution.pending],
    }


def _new_resolution_document(resolution: Resolution) -> dict[str, Any]:
    messages = [wrap(e, SERVICE) for e in resolution.take_events()]
    return new_document({"_id": resolution.id, **_resolution_fields(resolution)}, messages)


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _resolution(doc: dict[str, Any]) -> Resolution:
    target = doc.get("target_date")
    return Resolution(
        id=doc["_id"],
        conference_id=doc["conference_id"],
        number=doc["number"],
        title_sw=doc["title_sw"],
        title_en=doc["title_en"],
        description_sw=doc.get("description_sw") or "",
        description_en=doc.get("description_en") or "",
        lead_institution=doc["lead_institution"],
        supporting_institutions=list(doc.get("supporting_institutions") or []),
        target_date=date.fromisoformat(target) if target else None,
        status=doc["status"],
        progress=doc["progress"],
        weight=doc.get("weight", 1),
        focal_persons=[FocalPerson(**fp) for fp in doc.get("focal_persons") or []],
        actions=[Action(**_known(Action, a)) for a in doc.get("actions") or []],
        version=doc["version"],
        timeline=[TimelineEntry(**_known(TimelineEntry, e)) for e in doc.get("timeline") or []],
        versions=[VersionRecord(**_known(VersionRecord, v)) for v in doc.get("versions") or []],
        created_at=doc.get("created_at") or "",
        updated_at=doc.get("updated_at") or "",
        pending=[PendingUpdate(**_known(PendingUpdate, p)) for p in doc.get("pending") or []],
        rev=int(doc.get("rev") or 0),
    )


# --------------------------------------------------------------------------- evidence


class GridFSEvidenceStore:
    """Evidence files in the service's own MongoDB, in a GridFS bucket: the file's id is
    its SHA-256, so a file is kept once however often it is cited; its media type (as
    checked from its content) in the metadata. See docs/resolutions.md for why GridFS."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.files = db[f"{EVIDENCE_BUCKET}.files"]
        self.bucket = AsyncGridFSBucket(db, bucket_name=EVIDENCE_BUCKET)

    async def put(self, file: EvidenceFile) -> None:
        if await self.files.find_one({"_id": file.sha256}, {"_id": 1}) is not None:
            return  # content-addressed: the same bytes are kept already
        try:
            await self.bucket.upload_from_stream_with_id(
                file.sha256,
                file.sha256,
                file.data,
                metadata={"media_type": file.media_type},
            )
        except PyMongoError:
            # Two uploads of the same bytes at once: the other one's is as good.
            if await self.files.find_one({"_id": file.sha256}, {"_id": 1}) is None:
                raise

    async def get(self, sha256: str) -> EvidenceFile | None:
        try:
            stream = await self.bucket.open_download_stream(sha256)
        except NoFile:
            return None
        data = await stream.read()
        metadata = stream.metadata or {}
        return EvidenceFile(
            sha256=sha256,
            name=sha256,
            media_type=metadata.get("media_type") or "application/octet-stream",
            size=len(data),
            data=data,
        )
