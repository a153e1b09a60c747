"""``mkutano``: what operators used to do by hand.

    mkutano topics create [--replication-factor 3] [--retention-days 30]
    mkutano api-keys create --service all --roles organiser --label "TSMS"
    mkutano api-keys list|revoke ID|rotate ID --service registration
    mkutano resolutions import FILE.csv --conference CONF-ID [--dry-run]
    mkutano dlq replay --service notification|…|webhooks [--limit N] [--dry-run]
    mkutano seats recount --event EVENT-ID
    mkutano status [--service all]
    mkutano users create USERNAME --name "Amina Salim" --roles organiser [--totp]
    mkutano users list

API keys, resolutions, seats and status go through each service's own HTTP API with an
admin key (``--admin-key`` or ``MKUTANO_ADMIN_KEY``), never straight into a service's
database: each service owns its data, and its API applies the same rules and audit as
for any caller. Service URLs: ``--url registration=http://…`` or ``MKUTANO_<SERVICE>_URL``
(defaults: the dev ports 8001-8004 and 8006). Kafka: ``--bootstrap`` or ``KAFKA_BOOTSTRAP_SERVERS``.
Output is JSON lines on stdout (one per result); progress goes to stderr, counted in
records (CSV rows, dead letters), not in requests.

Exit codes (also in ``mkutano --help`` and docs/operations.md):

    0  done
    1  failed: the service answered with an error of its own (5xx), or a step failed
    2  usage: bad arguments or a missing setting (an admin key, a --url)
    3  unreachable: a service or Kafka did not answer (refused, timed out, 502/503/504)
    4  refused: the service said no (400, 401, 403, 409, 413, 415, 422, 429), or a dry
       run found problems
    5  not found: what was named does not exist (404, a topic, a file)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

# The services with an HTTP API of their own (the console, 8005, is a frontend: it has no
# API keys, no outbox and no consumer).
SERVICES = ("registration", "notification", "resolutions", "payments", "webhooks")
DEFAULT_PORTS = {
    "registration": 8001,
    "notification": 8002,
    "resolutions": 8003,
    "payments": 8004,
    "webhooks": 8006,
}
DLQ_HEADERS_PREFIX = "dlq_"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2  # argparse's own code for a bad command line
EXIT_UNREACHABLE = 3
EXIT_REFUSED = 4
EXIT_NOT_FOUND = 5
EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_FAILED: "failed: the service answered with an error of its own (5xx), or a step failed",
    EXIT_USAGE: "usage: bad arguments or a missing setting (an admin key, a --url)",
    EXIT_UNREACHABLE: "unreachable: a service or Kafka did not answer (refused, timed out, 502/503/504)",
    EXIT_REFUSED: "refused: the service said no (400, 401, 403, 409, 413, 415, 422, 429), or a dry run found problems",
    EXIT_NOT_FOUND: "not found: what was named does not exist (404, a topic, a file)",
}
UNAVAILABLE = (502, 503, 504)


class CliError(Exception):
    """A failure to report in one line, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def exit_code_for(status: int) -> int:
    """The exit code of an HTTP answer that is not the one wanted."""
    if status == 404:
        return EXIT_NOT_FOUND
    if status in UNAVAILABLE:
        return EXIT_UNREACHABLE
    if 400 <= status < 500:
        return EXIT_REFUSED
    return EXIT_FAILED


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("mkutano")
    except PackageNotFoundError:  # run from a checkout that was never installed
        import tomllib

        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        return tomllib.loads(pyproject.read_text())["project"]["version"]


def emit(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, sort_keys=True), flush=True)


def progress(done: int, total: int | None, what: str, unit: str = "records") -> None:
    """A progress line on stderr, counted in records (a terminal sees it update in place)."""
    end = "\r" if sys.stderr.isatty() else "\n"
    of = f"/{total}" if total is not None else ""
    print(f"{what}: {done}{of} {unit}", end=end, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- HTTP


def service_urls(overrides: list[str]) -> dict[str, str]:
    urls = {
        s: os.environ.get(f"MKUTANO_{s.upper()}_URL", f"http://127.0.0.1:{DEFAULT_PORTS[s]}")
        for s in SERVICES
    }
    for item in overrides:
        name, _, url = item.partition("=")
        if name not in SERVICES or not url:
            raise CliError(
                f"--url takes service=URL with a service of {SERVICES}: {item!r}", EXIT_USAGE
            )
        urls[name] = url.rstrip("/")
    return urls


def targets(service: str) -> list[str]:
    return list(SERVICES) if service == "all" else [service]


def admin_client(args: argparse.Namespace, service: str) -> httpx.AsyncClient:
    key = args.admin_key or os.environ.get("MKUTANO_ADMIN_KEY")
    if not key:
        raise CliError("an admin API key is needed: --admin-key or MKUTANO_ADMIN_KEY", EXIT_USAGE)
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
            f"{response.status_code} {detail}",
            exit_code_for(response.status_code),
        )
    return response.json()


# --------------------------------------------------------------------------- commands


def console_client(args: argparse.Namespace) -> httpx.AsyncClient:
    """The staff console's API (``--console-url`` or MKUTANO_CONSOLE_URL; dev: port 8005)."""
    key = args.admin_key or os.environ.get("MKUTANO_ADMIN_KEY")
    if not key:
        raise CliError("an admin API key is needed: --admin-key or MKUTANO_ADMIN_KEY", EXIT_USAGE)
    url = args.console_url or os.environ.get("MKUTANO_CONSOLE_URL", "http://127.0.0.1:8005")
    return httpx.AsyncClient(
        base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {key}"}, timeout=15
    )


def _new_password(args: argparse.Namespace) -> str:
    """From --password-file, else MKUTANO_USER_PASSWORD, else asked twice (never an
    argument: it would stay in the shell's history and the process list)."""
    if args.password_file:
        return Path(args.password_file).read_text(encoding="utf-8").strip()
    if os.environ.get("MKUTANO_USER_PASSWORD"):
        return os.environ["MKUTANO_USER_PASSWORD"]
    if not sys.stdin.isatty():
        raise CliError("a password is needed: --password-file or MKUTANO_USER_PASSWORD", EXIT_USAGE)
    import getpass

    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise CliError("the two passwords differ", EXIT_USAGE)
    return first


async def cmd_users(args: argparse.Namespace) -> int:
    """Local staff accounts of the console (argon2id; an optional TOTP second factor)."""
    async with console_client(args) as client:
        if args.action == "create":
            body = {
                "username": args.username,
                "name": args.name,
                "roles": args.roles,
                "password": _new_password(args),
                "language": args.language,
                "totp": args.totp,
            }
            emit(check(await client.post("/api/v1/users", json=body), 201))
        else:
            for account in check(await client.get("/api/v1/users"), 200):
                emit(account)
    return EXIT_OK


async def cmd_topics_create(args: argparse.Namespace) -> int:
    from shared.topics import align_topic_configs, all_topics, ensure_topics

    topics = all_topics(args.replication_factor, args.retention_days, args.private_retention_days)
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
    return EXIT_FAILED if any(v.startswith("failed") for v in configs.values()) else EXIT_OK


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
    except FileNotFoundError as exc:
        raise CliError(f"{path}: no such file", EXIT_NOT_FOUND) from exc
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from exc
    records = csv_records(content)
    what = f"{'check' if args.dry_run else 'import'} {path.name}"
    async with admin_client(args, "resolutions") as client:
        progress(0, records, what)
        r = await client.post(
            f"/api/v1/conferences/{args.conference}/resolutions/import",
            params={"dry_run": "true"} if args.dry_run else None,
            content=content,
            headers={"Content-Type": "text/csv; charset=utf-8"},
        )
    try:
        body = r.json()
    except ValueError:
        body = {"error": {"code": str(r.status_code), "message": r.text[:300]}}
    if r.status_code in (200, 201):
        done = body.get("rows") if args.dry_run else body.get("imported")
        progress(records if done is None else done, records, what)
        for problem in body.get("problems") or []:
            emit({"result": "problem", **problem})
        emit({"result": "checked" if args.dry_run else "imported", **body})
        return EXIT_OK if body.get("valid", True) else EXIT_REFUSED
    error = body.get("error", body)
    for problem in error.get("fields") or []:
        emit({"result": "problem", **problem})
    emit({"result": "refused", "status": r.status_code, "error": error.get("code")})
    return exit_code_for(r.status_code)


def csv_records(content: bytes) -> int | None:
    """Data rows of a CSV file (its header and blank lines not counted); None if unreadable."""
    try:
        rows = csv.reader(io.StringIO(content.decode("utf-8-sig")))
        return max(0, sum(1 for row in rows if any(cell.strip() for cell in row)) - 1)
    except (UnicodeDecodeError, csv.Error):
        return None


def replay_headers(headers: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The original record's headers: the dead-letter annotations removed."""
    return [(k, v) for k, v in headers if not k.startswith(DLQ_HEADERS_PREFIX)]


async def cmd_dlq_replay(args: argparse.Namespace) -> int:
    """Republish dead-lettered records to their original topic, key and headers.

    A consumer group (``mkutano-dlq-replay-<service>``) remembers what was replayed, so a
    second run replays only newer dead letters. Consumers deduplicate on ``ce_id``.
    """
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.errors import KafkaConnectionError

    from shared.topics import dead_letter_topic

    topic = dead_letter_topic(args.service)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=f"mkutano-dlq-replay-{args.service}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
    try:
        await consumer.start()
        await producer.start()
    except KafkaConnectionError as exc:
        for client in (producer, consumer):
            with contextlib.suppress(Exception):
                await client.stop()
        raise CliError(
            f"Kafka at {args.bootstrap} does not answer: {exc}", EXIT_UNREACHABLE
        ) from exc
    replayed = 0
    try:
        await consumer.topics()  # fetch metadata: partitions_for_topic reads the cache
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        if not partitions:
            raise CliError(f"topic {topic} not found", EXIT_NOT_FOUND)
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
            raise CliError("this registration service has no seat recount endpoint", EXIT_NOT_FOUND)
        result = check(await client.post(paths[0].replace("{event_id}", args.event)), 200)
        emit({"event_id": args.event, **result})
    return 0


async def cmd_status(args: argparse.Namespace) -> int:
    """One line per service, whether it answers or not; exit code of the first that failed."""
    code = EXIT_OK
    for service in targets(args.service):
        row: dict[str, Any] = {"service": service, "url": service_urls(args.url)[service]}
        try:
            async with admin_client(args, service) as client:
                ready = await client.get("/health/ready")
                try:
                    row["ready"] = ready.json().get("status") == "ok"
                    row["checks"] = ready.json().get("checks")
                except ValueError:
                    row["ready"] = False
                row.update(check(await client.get("/api/v1/admin/status"), 200))
                row["reachable"] = True
        except CliError as exc:
            if exc.code == EXIT_USAGE:
                raise
            row.update(reachable=exc.code != EXIT_UNREACHABLE, error=str(exc))
            code = code or exc.code
        except (httpx.HTTPError, OSError) as exc:
            row.update(reachable=False, ready=False, error=f"{type(exc).__name__}: {exc}")
            code = code or EXIT_UNREACHABLE
        emit(row)
    return code


# --------------------------------------------------------------------------- parser


def _epilog() -> str:
    return "exit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())


class _Parser(argparse.ArgumentParser):
    """Every (sub)command shows the exit codes under its help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault("epilog", _epilog())
        super().__init__(*args, **kwargs)


def _command(sub: Any, name: str, text: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=text, description=text)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mkutano", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"mkutano {version()}")
    p.add_argument(
        "--admin-key",
        help="admin API key of the services (default: $MKUTANO_ADMIN_KEY)",
    )
    p.add_argument(
        "--url",
        action="append",
        default=[],
        metavar="SERVICE=URL",
        help="a service's base URL, repeatable (default: $MKUTANO_<SERVICE>_URL, else "
        "http://127.0.0.1:8001-8004 and 8006)",
    )
    p.add_argument(
        "--bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS, else %(default)s)",
    )
    sub = p.add_subparsers(dest="group", required=True, metavar="COMMAND")

    topics = _command(sub, "topics", "Kafka topics").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create = _command(topics, "create", "create the missing topics; give every topic its retention")
    create.add_argument(
        "--replication-factor",
        type=int,
        default=1,
        help="replicas of each new topic (default: %(default)s; 3 in production)",
    )
    create.add_argument(
        "--retention-days",
        type=float,
        default=float(os.environ.get("KAFKA_TOPIC_RETENTION_DAYS", "30")),
        help="records older than this are deleted, they carry personal data "
        "(default: $KAFKA_TOPIC_RETENTION_DAYS, else 30)",
    )
    create.add_argument(
        "--private-retention-days",
        type=float,
        default=float(os.environ.get("KAFKA_PRIVATE_TOPIC_RETENTION_DAYS", "7")),
        help="the same for the private streams registration.notices.v1 and "
        "resolutions.notices.v1, which carry contact details and tickets; capped at --retention-days "
        "(default: $KAFKA_PRIVATE_TOPIC_RETENTION_DAYS, else 7)",
    )
    create.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the broker (default: %(default)s)",
    )
    create.set_defaults(run=cmd_topics_create)

    keys = _command(sub, "api-keys", "API keys of one or all services")
    kact = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    kc = _command(kact, "create", "create a key on each service; its secret is shown once")
    kc.add_argument(
        "--roles",
        nargs="+",
        required=True,
        help="one or more of admin, organiser, registrar, coordinator, auditor",
    )
    kc.add_argument("--label", required=True, help="who holds the key, e.g. TSMS")
    kc.add_argument(
        "--scopes", nargs="*", help="conference ids the key is limited to (default: all)"
    )
    kl = _command(kact, "list", "list the keys (never their secrets)")
    kr = _command(kact, "revoke", "revoke a key at once")
    kt = _command(kact, "rotate", "give a key a new secret; the old one stops working at once")
    for k in (kr, kt):
        k.add_argument("key_id", help="the key's id (from api-keys list)")
    for k in (kc, kl, kr, kt):
        k.add_argument(
            "--service",
            choices=(*SERVICES, "all"),
            default="all",
            help="which service's keys (default: %(default)s)",
        )
        k.set_defaults(run=cmd_api_keys)

    res = _command(sub, "resolutions", "conference resolutions").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    imp = _command(
        res, "import", "create a conference's resolutions from a CSV file (all-or-nothing)"
    )
    imp.add_argument("file", help="the CSV file (columns: see docs/resolutions.md)")
    imp.add_argument("--conference", required=True, help="the conference's id")
    imp.add_argument("--dry-run", action="store_true", help="report problems, write nothing")
    imp.set_defaults(run=cmd_resolutions_import)

    dlq = _command(sub, "dlq", "dead-letter topics").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    rep = _command(dlq, "replay", "republish dead letters to their original topic")
    # Every consuming service has a dead-letter topic.
    rep.add_argument(
        "--service",
        choices=SERVICES,
        required=True,
        help="whose dead-letter topic",
    )
    rep.add_argument("--limit", type=int, help="replay at most this many records")
    rep.add_argument(
        "--dry-run", action="store_true", help="list what would be replayed, publish nothing"
    )
    rep.set_defaults(run=cmd_dlq_replay)

    seats = _command(sub, "seats", "event seats").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    rc = _command(seats, "recount", "recount an event's seats and repair the counter")
    rc.add_argument("--event", required=True, help="the event's id")
    rc.set_defaults(run=cmd_seats_recount)

    users = _command(sub, "users", "the staff console's local accounts").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    uc = _command(users, "create", "create a staff account (the password is asked, not shown)")
    uc.add_argument("username", help="lower-case letters, digits, . _ @ -")
    uc.add_argument("--name", required=True, help="the person's name, as the console shows it")
    uc.add_argument(
        "--roles",
        nargs="+",
        required=True,
        choices=("admin", "organiser", "registrar", "coordinator", "auditor"),
        help="one or more roles",
    )
    uc.add_argument(
        "--language", choices=("sw", "en"), default="sw", help="the console's language for them"
    )
    uc.add_argument(
        "--totp", action="store_true", help="turn on a TOTP second factor (its URI is shown once)"
    )
    uc.add_argument("--password-file", help="read the password from this file")
    ul = _command(users, "list", "list the staff accounts")
    for u in (uc, ul):
        u.add_argument(
            "--console-url", help="the console (default: $MKUTANO_CONSOLE_URL, else :8005)"
        )
        u.set_defaults(run=cmd_users)

    st = _command(
        sub, "status", "readiness, outbox backlog and consumer lag of each service, up or down"
    )
    st.add_argument(
        "--service",
        choices=(*SERVICES, "all"),
        default="all",
        help="which service (default: %(default)s)",
    )
    st.set_defaults(run=cmd_status)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mkutano`` command; returns the exit code."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return asyncio.run(args.run(args))
    except CliError as exc:
        print(f"mkutano: {exc}", file=sys.stderr)
        return exc.code
    except (httpx.HTTPError, OSError) as exc:
        print(f"mkutano: cannot reach the service: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except Exception as exc:  # Kafka unreachable and the like: one line, not a traceback
        from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

        if isinstance(exc, KafkaConnectionError | KafkaTimeoutError | TimeoutError):
            print(f"mkutano: cannot reach Kafka: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_UNREACHABLE
        raise


if __name__ == "__main__":
    sys.exit(main())
