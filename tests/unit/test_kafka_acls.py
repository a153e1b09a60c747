"""deploy/kafka-acls.sh: on Apache Kafka, only registration writes the private notices and
only notification's consumer group reads them; subscribers get the public streams only.

Read from the script's dry run (the kafka-acls.sh commands it would run), so it needs no
broker. The embedded broker (tansu) has no ACLs; docs/operations.md says so.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from shared.topics import (
    PRIVATE_STREAMS,
    PUBLIC_STREAMS,
    REGISTRATION_NOTICES,
    RESOLUTIONS_NOTICES,
    all_topics,
)

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "kafka-acls.sh"
REGISTRATION = "User:mkutano-registration"
NOTIFICATION = "User:mkutano-notification"
RESOLUTIONS = "User:mkutano-resolutions"
PAYMENTS = "User:mkutano-payments"


def grants(*args: str) -> list[tuple[str, frozenset[str], str, str]]:
    """(principal, operations, resource kind, resource name) of each ACL the script adds."""
    done = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    out = []
    for line in done.stdout.splitlines():
        words = line.split()
        principal = words[words.index("--allow-principal") + 1]
        ops = frozenset(words[i + 1] for i, w in enumerate(words) if w == "--operation")
        if "--cluster" in words:
            kind, name = "cluster", ""
        else:
            kind = next(w for w in words if w in ("--topic", "--group")).removeprefix("--")
            name = words[words.index(f"--{kind}") + 1]
        out.append((principal, ops, kind, name))
    return out


def test_only_registration_writes_and_only_notification_reads_the_private_notices() -> None:
    acls = grants("apply")
    on_private = [(p, ops) for p, ops, kind, name in acls if name == REGISTRATION_NOTICES]
    assert {p for p, ops in on_private if "Write" in ops} == {REGISTRATION}
    # Payments too (issue 14): a GePG bill needs the payer's name, phone and email.
    assert {p for p, ops in on_private if "Read" in ops} == {NOTIFICATION, PAYMENTS}
    groups = {(p, name) for p, ops, kind, name in acls if kind == "group" and "Read" in ops}
    assert (NOTIFICATION, "notification") in groups
    assert [p for p, name in groups if name == "notification"] == [NOTIFICATION]


def test_only_resolutions_writes_and_only_notification_reads_the_focal_persons_notices() -> None:
    acls = grants("apply")
    on_private = [(p, ops) for p, ops, kind, name in acls if name == RESOLUTIONS_NOTICES]
    assert {p for p, ops in on_private if "Write" in ops} == {RESOLUTIONS}
    assert {p for p, ops in on_private if "Read" in ops} == {NOTIFICATION}


def test_only_payments_writes_and_only_notification_reads_the_payers_notices() -> None:
    acls = grants("apply")
    on_private = [(p, ops) for p, ops, kind, name in acls if name == "payments.notices.v1"]
    assert {p for p, ops in on_private if "Write" in ops} == {PAYMENTS}
    assert {p for p, ops in on_private if "Read" in ops} == {NOTIFICATION}
    groups = {(p, name) for p, ops, kind, name in acls if kind == "group" and "Read" in ops}
    assert [p for p, name in groups if name == "payments"] == [PAYMENTS]


def test_no_service_reads_a_dead_letter_topic_and_every_topic_has_its_writer() -> None:
    acls = grants("apply")
    assert not [a for a in acls if a[3].endswith(".dlq") and "Read" in a[1]]
    written = {name for _, ops, kind, name in acls if kind == "topic" and "Write" in ops}
    assert {t.name for t in all_topics()} <= written


def test_a_subscriber_gets_the_public_streams_in_its_own_group_and_nothing_else() -> None:
    acls = grants("subscriber", "User:tsms", "tsms")
    assert {p for p, *_ in acls} == {"User:tsms"}
    topics = {name for _, ops, kind, name in acls if kind == "topic"}
    assert topics == set(PUBLIC_STREAMS)
    assert not topics & set(PRIVATE_STREAMS)
    assert {(kind, name) for _, _, kind, name in acls if kind == "group"} == {("group", "tsms")}
    assert all(ops <= {"Read", "Describe"} for _, ops, _, _ in acls)


def test_the_script_refuses_a_wrong_call() -> None:
    done = subprocess.run(["bash", str(SCRIPT), "subscriber"], capture_output=True, timeout=30)
    assert done.returncode == 2
