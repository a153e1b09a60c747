"""``mkutano``: what operators used to do by hand.

    mkutano topics create [--replication-factor 3] [--retention-days 30]
    mkutano api-keys create --service all --roles organiser --label "TSMS"
    mkutano api-keys list|revoke ID|rotate ID --service registration
    mkutano resolutions import FILE.csv --conference CONF-ID [--dry-run]
    mkutano dlq replay --service notification|…|webhooks [--limit N] [--dry-run]
    mkutano seats recount --event EVENT-ID
    mkutano status [--service all]

API keys, resolutions, seats and status go through each service's own HTTP API with an
admin key (``--admin-key`` or ``MKUTANO_ADMIN_KEY``), never straight into a service's
database: each service owns its data, and its API applies the same rules and audit as
for any caller. Service URLs: ``--url registration=http://…`` or ``MKUTANO_<SERVICE>_URL``
(defaults: the dev ports 8001-8003). Kafka: ``--bootstrap`` or ``KAFKA_BOOTSTRAP_SERVERS``.
Output is JSON lines on stdout (one per result); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

SERVICES = ("registration", "notification", "resolutions")
DEFAULT_PORTS = {"registration": 8001, "notification": 8002, "resolutions": 8003}
DLQ_HEADERS_PREFIX = "dlq_"


class CliError(Exception):
    """A failure to report in one line, with exit code 1."""


def emit(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, sort_keys=True), flush=True)


def progress(done: int, total: int | None, what: str) -> None:
    """A progress line on stderr (a terminal sees it update in place)."""
    end = "\r" if sys.stderr.isatty() else "\n"
    of = f"/{total}" if total is not None else ""
    print(f"{what}: {done}{of}", end=end, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- HTTP


def service_urls(overrides: list[str]) -> dict[str, str]:
    urls = {
        s: os.environ.get(f"MKUTANO_{s.upper()}_URL", f"http://127.0.0.1:{DEFAULT_PORTS[s]}")
        for s in SERVICES
    }
    for item in overrides:
        name, _, url = item.partition("=")
        if name not in SERVICES or not url:
            raise CliError(f"--url takes service=URL with a service of {SERVICES}: {item!r}")
        urls[name] = url.rstrip("/")
    return urls


def targets(service: str) -> list[str]:
    return list(SERVICES) if service == "all" else [service]


def admin_client(args: argparse.Namespace, service: str) -> httpx.AsyncClient:
    key = args.admin_key or os.environ.get("MKUTANO_ADMIN_KEY")
    if not key:
        raise CliError("an admin API key is needed: --admin-key or MKUTANO_ADMIN_KEY")
    return httpx.AsyncClient(
        base_url=service_urls(args.url)[service],
        headers={"Authorization": f"Bearer {key}"},
        timeout=15,
    )


def check(response: httpx.Response, *ok: int) -> Any:
    if response.status_code not in ok:
        try:
            error = response.json()["error"]
            detail = f"{error['code']}: {error['message']}"
            if error.get("fields"):
                detail += " " + ", ".join(f"{f['field']} ({f['reason']})" for f in error["fields"])
        except Exception:
            detail = response.text[:300]
        raise CliError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {detail}"
        )
    return response.json()


# --------------------------------------------------------------------------- commands


async def cmd_topics_create(args: argparse.Namespace) -> int:
    from shared.topics import align_topic_configs, all_topics, ensure_topics

    topics = all_topics(args.replication_factor, args.retention_days)
    created = await ensure_topics(args.bootstrap, topics, timeout_s=args.timeout)
    configs = await align_topic_configs(args.bootstrap, topics)
    for t in topics:
        emit(
            {
                "topic": t.name,
                "partitions": t.partitions,
                "created": t.name in created,
                "retention_ms": t.retention_ms,
                "retention": configs[t.name],
            }
        )
    return 1 if any(v.startswith("failed") for v in configs.values()) else 0


async def cmd_api_keys(args: argparse.Namespace) -> int:
    base = "/api/v1/admin/api-keys"
    for service in targets(args.service):
        async with admin_client(args, service) as client:
            if args.action == "create":
                body = {"label": args.label, "roles": args.roles, "scopes": args.scopes or []}
                made = check(await client.post(base, json=body), 201)
                emit({"service": service, **made})
            elif args.action == "list":
                for item in check(await client.get(base), 200)["items"]:
                    emit({"service": service, **item})
            else:
                done = check(await client.post(f"{base}/{args.key_id}/{args.action}"), 200)
                emit({"service": service, **done})
    return 0


async def cmd_resolutions_import(args: argparse.Namespace) -> int:
    """Send the CSV file to the service's import: validated whole, written all-or-nothing.

    ``--dry-run`` reports every row's problems and writes nothing.
    """
    path = Path(args.file)
    try:
        content = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from exc
    async with admin_client(args, "resolutions") as client:
        progress(0, 1, f"import {path.name}")
        r = await client.post(
            f"/api/v1/conferences/{args.conference}/resolutions/import",
            params={"dry_run": "true"} if args.dry_run else None,
            content=content,
            headers={"Content-Type": "text/csv; charset=utf-8"},
        )
        progress(1, 1, f"import {path.name}")
    try:
        body = r.json()
    except ValueError:
        body = {"error": {"code": str(r.status_code), "message": r.text[:300]}}
    if r.status_code in (200, 201):
        for problem in body.get("problems") or []:
            emit({"result": "problem", **problem})
        emit({"result": "checked" if args.dry_run else "imported", **body})
        return 0 if body.get("valid", True) else 1
    error = body.get("error", body)
    for problem in error.get("fields") or []:
        emit({"result": "problem", **problem})
    emit({"result": "refused", "status": r.status_code, "error": error.get("code")})
    return 1


def replay_headers(headers: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The original record's headers: the dead-letter annotations removed."""
    return [(k, v) for k, v in headers if not k.startswith(DLQ_HEADERS_PREFIX)]


async def cmd_dlq_replay(args: argparse.Namespace) -> int:
    """Republish dead-lettered records to their original topic, key and headers.

    A consumer group (``mkutano-dlq-replay-<service>``) remembers what was replayed, so a
    second run replays only newer dead letters. Consumers deduplicate on ``ce_id``.
    """
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    from shared.topics import dead_letter_topic

    topic = dead_letter_topic(args.service)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=f"mkutano-dlq-replay-{args.service}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    replayed = 0
    try:
        await consumer.topics()  # fetch metadata: partitions_for_topic reads the cache
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        if not partitions:
            raise CliError(f"topic {topic} not found")
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)

        async def remaining() -> int:
            return sum([ends[tp] - await consumer.position(tp) for tp in partitions])

        total = await remaining()
        progress(0, total, f"replay {topic}")
        while await remaining() > 0:
            if args.limit is not None and replayed >= args.limit:
                break
            batch = await consumer.getmany(*partitions, timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    if args.limit is not None and replayed >= args.limit:
                        break
                    headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
                    original = headers.get("dlq_original_topic")
                    if not original:
                        emit({"offset": record.offset, "result": "skipped", "reason": "no origin"})
                        continue
                    if not args.dry_run:
                        await producer.send_and_wait(
                            original,
                            value=record.value,
                            key=record.key,
                            headers=replay_headers(record.headers or ()),
                        )
                        await consumer.commit({tp: record.offset + 1})
                    replayed += 1
                    emit(
                        {
                            "dlq_offset": record.offset,
                            "to": original,
                            "ce_id": headers.get("ce_id"),
                            "ce_type": headers.get("ce_type"),
                            "reason": headers.get("dlq_reason"),
                            "result": "would_replay" if args.dry_run else "replayed",
                        }
                    )
                    progress(replayed, total, f"replay {topic}")
            if args.dry_run and not batch:
                break
    finally:
        await producer.stop()
        await consumer.stop()
    return 0


async def cmd_seats_recount(args: argparse.Namespace) -> int:
    async with admin_client(args, "registration") as client:
        spec = check(await client.get("/openapi.json"), 200)
        paths = [
            p
            for p, ops in spec["paths"].items()
            if "{event_id}" in p and ("reconcile" in p or "recount" in p) and "post" in ops
        ]
        if not paths:
            raise CliError("this registration service has no seat recount endpoint")
        result = check(await client.post(paths[0].replace("{event_id}", args.event)), 200)
        emit({"event_id": args.event, **result})
    return 0


async def cmd_status(args: argparse.Namespace) -> int:
    for service in targets(args.service):
        async with admin_client(args, service) as client:
            emit(check(await client.get("/api/v1/admin/status"), 200))
    return 0


# --------------------------------------------------------------------------- parser


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mkutano", description=__doc__.split("\n\n")[0])
    p.add_argument("--admin-key", help="admin API key (default: $MKUTANO_ADMIN_KEY)")
    p.add_argument("--url", action="append", default=[], metavar="SERVICE=URL")
    p.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    sub = p.add_subparsers(dest="group", required=True)

    topics = sub.add_parser("topics", help="Kafka topics").add_subparsers(
        dest="action", required=True
    )
    create = topics.add_parser(
        "create", help="create the missing topics; give every topic its retention"
    )
    create.add_argument("--replication-factor", type=int, default=1)
    create.add_argument(
        "--retention-days",
        type=float,
        default=float(os.environ.get("KAFKA_TOPIC_RETENTION_DAYS", "30")),
        help="records older than this are deleted (they carry personal data)",
    )
    create.add_argument("--timeout", type=float, default=60.0)
    create.set_defaults(run=cmd_topics_create)

    keys = sub.add_parser("api-keys", help="API keys of one or all services")
    kact = keys.add_subparsers(dest="action", required=True)
    kc = kact.add_parser("create")
    kc.add_argument("--roles", nargs="+", required=True)
    kc.add_argument("--label", required=True)
    kc.add_argument("--scopes", nargs="*")
    kl = kact.add_parser("list")
    for name in ("revoke", "rotate"):
        k = kact.add_parser(name)
        k.add_argument("key_id")
    for k in (kc, kl, *[kact.choices[n] for n in ("revoke", "rotate")]):
        k.add_argument("--service", choices=(*SERVICES, "all"), default="all")
        k.set_defaults(run=cmd_api_keys)

    res = sub.add_parser("resolutions").add_subparsers(dest="action", required=True)
    imp = res.add_parser(
        "import", help="create a conference's resolutions from a CSV file (all-or-nothing)"
    )
    imp.add_argument("file")
    imp.add_argument("--conference", required=True)
    imp.add_argument("--dry-run", action="store_true", help="report problems, write nothing")
    imp.set_defaults(run=cmd_resolutions_import)

    dlq = sub.add_parser("dlq").add_subparsers(dest="action", required=True)
    rep = dlq.add_parser("replay", help="republish dead letters to their original topic")
    # Every consuming service has a dead-letter topic, webhooks too (it has no admin
    # commands here: its API is its own, docs/webhooks.md).
    rep.add_argument("--service", choices=(*SERVICES, "webhooks"), required=True)
    rep.add_argument("--limit", type=int)
    rep.add_argument("--dry-run", action="store_true")
    rep.set_defaults(run=cmd_dlq_replay)

    seats = sub.add_parser("seats").add_subparsers(dest="action", required=True)
    rc = seats.add_parser("recount", help="recount an event's seats and repair the counter")
    rc.add_argument("--event", required=True)
    rc.set_defaults(run=cmd_seats_recount)

    st = sub.add_parser("status", help="outbox backlog and consumer lag")
    st.add_argument("--service", choices=(*SERVICES, "all"), default="all")
    st.set_defaults(run=cmd_status)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mkutano`` command; returns the exit code."""
    args = parser().parse_args(argv)
    try:
        return asyncio.run(args.run(args))
    except CliError as exc:
        print(f"mkutano: {exc}", file=sys.stderr)
        return 1
    except (httpx.HTTPError, OSError) as exc:
        print(f"mkutano: cannot reach the service: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
