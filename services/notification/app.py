"""Notification service bootstrap: settings, store, channels, consumers, senders, routes."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

from services.notification import api, handlers, messages, workers
from services.notification.channels import HttpSmsGateway, SmtpEmailSender
from services.notification.consumers import register_consumers
from services.notification.dispatcher import Dispatcher
from services.notification.ports import NOTIFICATIONS, EmailSender, SmsSender
from services.notification.settings import NotificationSettings
from services.notification.store import MongoNotificationStore
from shared.runtime import ServiceRuntime
from shared.topics import NOTIFICATION


def render_pool(settings: NotificationSettings) -> ProcessPoolExecutor | None:
    """The processes rendering emails (``NOTIFICATION_RENDER_WORKERS``; by default the
    cores beyond two), or None: rendered in the event loop. Started by ``spawn``: a fork of a process running an event loop and threads
    is not safe. Each keeps its own cache of QR tickets (``messages.qr_png``)."""
    workers = render_workers(settings)
    if workers <= 0:
        return None
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def render_workers(settings: NotificationSettings) -> int:
    """The setting, else the cores beyond two: on two cores shared with MongoDB and Kafka
    a render process costs more (pickling the message back, the processes competing)
    than it frees in the event loop (bench/FINDINGS.md, issue 19)."""
    if settings.render_workers is None:
        return max(0, (os.cpu_count() or 1) - 2)
    return settings.render_workers


def create_runtime(
    settings: NotificationSettings | None = None,
    *,
    email: EmailSender | None = None,
    sms: SmsSender | None = None,
) -> ServiceRuntime:
    """Wire the notification service: consumers, senders, reminder and announcement workers."""
    settings = settings or NotificationSettings()
    runtime = ServiceRuntime(
        "notification",
        settings,
        title="Mkutano notification",
        description="Bilingual email and SMS for registrations and resolutions, with a "
        "delivery log. Publishes notification.v1.",
        error_statuses=api.ERROR_STATUSES,
    )
    store = MongoNotificationStore(runtime.db, signal=runtime.signal)
    if sms is None and settings.sms.gateway_url:
        sms = HttpSmsGateway(settings.sms)
    ctx = handlers.Context(
        store=store,
        settings=settings,
        email=email or SmtpEmailSender(settings.smtp),
        sms=sms,
        metrics=runtime.metrics,
        render_pool=render_pool(settings),
    )
    runtime.app.state.context = ctx
    runtime.use_outbox([NOTIFICATIONS])
    runtime.publishes(NOTIFICATION)
    register_consumers(runtime, ctx)
    # The senders and the announcement worker listen on the one write signal.
    runtime.add_worker("senders", Dispatcher(ctx, runtime.signal).run)
    runtime.add_worker("reminders", workers.ReminderWorker(ctx, runtime.signal).run)
    runtime.add_worker("announcements", workers.AnnouncementWorker(ctx, runtime.signal).run)
    runtime.app.include_router(api.router)
    runtime.on_startup(store.ensure_indexes)
    if ctx.render_pool is not None:
        pool = ctx.render_pool

        async def start_rendering() -> None:
            # Spawned and warm (templates, segno, icalendar imported) while the consumer
            # joins its group, not when the first email is due. Not awaited.
            for _ in range(render_workers(settings)):
                pool.submit(messages.warm_up)

        runtime.on_startup(start_rendering)

        async def stop_rendering() -> None:
            pool.shutdown(wait=False, cancel_futures=True)

        runtime.on_shutdown(stop_rendering)
    for channel in (ctx.email, ctx.sms):
        if channel is not None and hasattr(channel, "close"):
            runtime.on_shutdown(channel.close)
    return runtime
