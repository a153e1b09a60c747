"""The stack fixtures themselves: each server does its job, and survives what fault tests do.

These run against whichever servers the session picked (embedded, containers or external);
the restart checks need the embedded ones and skip otherwise.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import httpx
import pymongo
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from deploy import embedded
from shared.topics import TopicSpec, all_topics, ensure_topics
from tests.stack import (
    RUN_ID,
    KafkaServer,
    MongoServer,
    SmsCapture,
    SmtpCapture,
    wait_until,
)

# ----------------------------------------------------------------------------- Kafka


async def test_kafka_round_trip_keeps_key_value_and_headers(kafka: KafkaServer) -> None:
    topic = f"test.roundtrip.{RUN_ID}.{uuid.uuid4().hex[:6]}"
    await ensure_topics(kafka.bootstrap, [TopicSpec(topic, 1)])
    headers = [("ce_id", b"evt-1"), ("ce_type", b"tz.go.ega.test.Pinged.v1")]

    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap,
        acks="all",
        enable_idempotence=kafka.enable_idempotence,
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, b'{"hello":"mkutano"}', key=b"reg-1", headers=headers)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        # Assigned, not subscribed: no group join, so the test stays fast on tansu.
        consumer.assign([TopicPartition(topic, 0)])
        record = await asyncio.wait_for(consumer.getone(), timeout=15)
    finally:
        await consumer.stop()

    assert record.key == b"reg-1"
    assert record.value == b'{"hello":"mkutano"}'
    assert list(record.headers) == headers


async def test_kafka_has_every_platform_topic_with_its_partition_count(
    kafka: KafkaServer,
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([t.name for t in all_topics()])
    finally:
        await admin.close()
    partitions = {t["topic"]: len(t["partitions"]) for t in described}
    assert partitions == {t.name: t.partitions for t in all_topics()}


async def test_embedded_kafka_restart_recreates_the_topics(tmp_path: Path) -> None:
    # Its own broker: restarting the session's one would disturb the running platform.
    port = embedded.free_port()
    proc = embedded.tansu(port, log_path=tmp_path / "kafka.log")
    await asyncio.to_thread(proc.start)
    server = KafkaServer("embedded", f"127.0.0.1:{port}", process=proc)
    try:
        await ensure_topics(server.bootstrap)
        server.kill()
        assert not proc.alive
        await server.restart()
        admin = AIOKafkaAdminClient(bootstrap_servers=server.bootstrap)
        await admin.start()
        try:
            assert set(await admin.list_topics()) >= {t.name for t in all_topics()}
        finally:
            await admin.close()
    finally:
        server.close()
    assert not proc.alive


# ----------------------------------------------------------------------------- MongoDB


def _client(mongo: MongoServer) -> pymongo.MongoClient:
    return pymongo.MongoClient(mongo.url, serverSelectionTimeoutMS=5000)


async def test_mongo_answers_ping(mongo: MongoServer) -> None:
    client = _client(mongo)
    try:
        assert client.admin.command("ping")["ok"] == 1
    finally:
        client.close()


async def test_mongo_keeps_data_across_kill_and_restart(mongo: MongoServer) -> None:
    if mongo.kind != "embedded":
        pytest.skip(f"restart needs the embedded MongoDB (this run: {mongo.kind})")
    db_name = f"stacktest_t{RUN_ID}"
    doc_id = uuid.uuid4().hex
    client = _client(mongo)
    try:
        client[db_name].things.insert_one({"_id": doc_id, "name": "Azimio 1"})
    finally:
        client.close()

    mongo.kill()  # a crash, not a clean shutdown
    await mongo.restart()

    client = _client(mongo)
    try:
        assert client[db_name].things.find_one({"_id": doc_id}) == {
            "_id": doc_id,
            "name": "Azimio 1",
        }
    finally:
        client.close()


# ----------------------------------------------------------------------------- SMTP capture


def _email(subject: str, to: str, cc: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Mkutano <no-reply@mkutano.ega.go.tz>"
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg.set_content("Karibu kwenye Mkutano wa Mwaka wa Serikali Mtandao.")
    return msg


async def test_smtp_capture_stores_each_message_as_eml(smtp: SmtpCapture) -> None:
    subject = f"Usajili umethibitishwa – {uuid.uuid4().hex[:8]}"  # non-ASCII on purpose
    msg = _email(subject, "Asha Mwita <asha@example.go.tz>", cc="juma@example.go.tz")
    await aiosmtplib.send(
        msg,
        hostname=smtp.host,
        port=smtp.port,
        recipients=["asha@example.go.tz", "juma@example.go.tz", "audit@example.go.tz"],
        timeout=10,
    )

    [stored] = await smtp.wait_for(lambda m: m["Subject"] == subject)
    assert stored["To"] == "Asha Mwita <asha@example.go.tz>"
    assert stored["Cc"] == "juma@example.go.tz"
    # The envelope shows Bcc recipients too.
    assert stored["X-Envelope-To"] == "asha@example.go.tz, juma@example.go.tz, audit@example.go.tz"
    assert "Karibu" in stored.get_content()
    assert not list(smtp.directory.glob(".*.tmp")), "temporary files must be renamed"


async def test_smtp_capture_refuses_while_stopped_and_works_after_start(
    smtp: SmtpCapture,
) -> None:
    await smtp.stop()
    try:
        with pytest.raises((aiosmtplib.SMTPConnectError, aiosmtplib.SMTPConnectTimeoutError)):
            await aiosmtplib.send(
                _email("lost", "x@example.go.tz"), hostname=smtp.host, port=smtp.port, timeout=5
            )
    finally:
        await smtp.start()

    subject = f"after restart {uuid.uuid4().hex[:8]}"
    await aiosmtplib.send(
        _email(subject, "x@example.go.tz"), hostname=smtp.host, port=smtp.port, timeout=10
    )
    [stored] = await smtp.wait_for(lambda m: m["Subject"] == subject)
    assert stored["To"] == "x@example.go.tz"
    assert not [m for m in smtp.messages() if m["Subject"] == "lost"]


# ----------------------------------------------------------------------------- SMS capture


async def test_sms_capture_accepts_and_stores_a_message(sms: SmsCapture) -> None:
    text = f"Usajili wako umethibitishwa {uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            sms.url, json={"to": "+255712345678", "sender": "eGA", "text": text}
        )
        bad = await client.post(sms.url, json={"to": "+255712345678"})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "accepted"
    assert bad.status_code == 400

    [stored] = await sms.wait_for(lambda m: m["text"] == text)
    assert stored["id"] == body["id"]
    assert stored["to"] == "+255712345678"
    assert stored["sender"] == "eGA"


async def test_sms_capture_checks_the_bearer_token(tmp_path: Path) -> None:
    gateway = SmsCapture(tmp_path, token="s3cret")
    await gateway.start()
    try:
        payload = {"to": "+255700000000", "sender": "eGA", "text": "Habari"}
        async with httpx.AsyncClient(timeout=10) as client:
            refused = await client.post(gateway.url, json=payload)
            wrong = await client.post(
                gateway.url, json=payload, headers={"Authorization": "Bearer nope"}
            )
            accepted = await client.post(
                gateway.url, json=payload, headers={"Authorization": "Bearer s3cret"}
            )
        assert (refused.status_code, wrong.status_code, accepted.status_code) == (401, 401, 202)
        assert [m["text"] for m in gateway.messages()] == ["Habari"]
    finally:
        await gateway.stop()
    assert gateway.process.returncode == 0


# ----------------------------------------------------------------------------- processes


async def test_process_stop_escalates_to_sigkill_within_the_bound(tmp_path: Path) -> None:
    # A child that ignores SIGTERM must still be gone after the bounded wait.
    proc = embedded.Process(
        "stubborn",
        [
            "python3",
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('re' + 'ady', flush=True); time.sleep(60)",
        ],
        log_path=tmp_path / "stubborn.log",
        ready=lambda: "ready" in (tmp_path / "stubborn.log").read_text(),
        stop_timeout=0.5,
    )
    await asyncio.to_thread(proc.start)
    code = await asyncio.to_thread(proc.stop)
    assert code == -signal.SIGKILL
    assert not proc.alive


async def test_wait_until_returns_the_value_or_fails_with_the_message() -> None:
    calls = []

    def third_time() -> int | None:
        calls.append(1)
        return len(calls) if len(calls) >= 3 else None

    assert await wait_until(third_time, timeout=5, interval=0.01) == 3
    with pytest.raises(AssertionError, match="never true"):
        await wait_until(lambda: False, timeout=0.2, interval=0.05, message="never true")
