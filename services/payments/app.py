"""Payments service bootstrap: settings, keys, GePG gateway, store, consumers, workers."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import Counter, Gauge

from services.payments import api, handlers
from services.payments.adapters import GepgV1Gateway
from services.payments.consumers import register_consumers
from services.payments.domain import Bill, Reconciliation
from services.payments.gepgxml import generate_dev_keys
from services.payments.ports import Gateway
from services.payments.settings import DEV_KEYS_DIR, PaymentsSettings
from services.payments.store import BILLS, RECONCILIATIONS, SUBMIT, MongoPaymentsStore
from services.payments.workers import (
    Submitter,
    run_expiry,
    run_gepg_cancellations,
    run_reconciliation,
)
from shared.runtime import ServiceRuntime
from shared.topics import PAYMENTS, PAYMENTS_NOTICES

DISCREPANCY_KINDS = ("unknown_payment", "missing_at_gepg", "amount_mismatch")


def ensure_dev_keys(settings: PaymentsSettings) -> None:
    """Dev and test: both keypairs under .data/gepg/ on first start (the simulator uses
    the same directory). Production names its own files and generates nothing."""
    if settings.core.env == "production":
        return
    key, cert = Path(settings.gepg_key_file), Path(settings.gepg_certificate_file)
    if not key.exists() and key.parent.as_posix().endswith(DEV_KEYS_DIR):
        generate_dev_keys(key.parent, key.stem)
    if not cert.exists() and cert.parent.as_posix().endswith(DEV_KEYS_DIR):
        generate_dev_keys(cert.parent, cert.stem)


def create_runtime(
    settings: PaymentsSettings | None = None, *, gateway: Gateway | None = None
) -> ServiceRuntime:
    settings = settings or PaymentsSettings()
    runtime = ServiceRuntime(
        "payments",
        settings,
        title="Mkutano payments",
        description="Participation fees through GePG: bills, control numbers, payments, "
        "receipts, proforma invoices and the daily reconciliation. Publishes payments.v1 "
        "and the payers' notices for the notification service (payments.notices.v1); "
        "consumes registration.notices.v1 and registration.v1.",
        non_json_paths=[api.CALLBACK_PATH],
        error_statuses=api.ERROR_STATUSES,
    )
    ensure_dev_keys(settings)
    store = MongoPaymentsStore(runtime.db, signal=runtime.signal)
    gepg = gateway or GepgV1Gateway(settings)
    ctx = handlers.Context(store=store, gateway=gepg, settings=settings)

    registry = runtime.metrics.registry
    discrepancies = Gauge(
        "mkutano_payments_reconciliation_discrepancies",
        "Discrepancies found by the latest completed reconciliation, by kind",
        ["kind"],
        registry=registry,
    )
    payments = Counter(
        "mkutano_payments_received_total",
        "Payments recorded, by flag (none, overpaid, after_expiry, after_cancellation)",
        ["flag"],
        registry=registry,
    )

    def reconciled(rec: Reconciliation) -> None:
        for kind in DISCREPANCY_KINDS:
            discrepancies.labels(kind).set(sum(d.kind == kind for d in rec.discrepancies))

    def paid(_bill: Bill, flags: list[str]) -> None:
        for flag in flags or ["none"]:
            payments.labels(flag).inc()

    for kind in DISCREPANCY_KINDS:
        discrepancies.labels(kind).set(0)
    ctx.on_reconciled = reconciled
    ctx.on_payment = paid
    runtime.app.state.context = ctx
    runtime.use_outbox([BILLS, RECONCILIATIONS])
    runtime.publishes(PAYMENTS)
    # Private: the payers' contact details, for the notification service only.
    runtime.publishes(PAYMENTS_NOTICES)
    register_consumers(runtime, ctx)
    submitter = Submitter(ctx)
    runtime.signal.listen(submitter.hint, work=SUBMIT)
    runtime.add_worker("submitter", submitter.run)
    runtime.add_worker("expiry", lambda stop: run_expiry(ctx, stop))
    runtime.add_worker("gepg-cancellations", lambda stop: run_gepg_cancellations(ctx, stop))
    runtime.add_worker("reconciliation", lambda stop: run_reconciliation(ctx, stop))
    runtime.app.include_router(api.router)

    @runtime.on_startup
    async def prepare() -> None:
        await store.ensure_indexes()
        latest = [r for r in await store.list_reconciliations(limit=5) if r.status == "completed"]
        if latest:
            reconciled(latest[0])

    if hasattr(gepg, "close"):
        runtime.on_shutdown(gepg.close)
    return runtime
