"""Notification service bootstrap: settings, store, channels, consumers, senders, routes."""

from __future__ import annotations

from services.notification import api, handlers
from services.notification.channels import HttpSmsGateway, SmtpEmailSender
from services.notification.consumers import register_consumers
from services.notification.settings import NotificationSettings
from services.notification.store import NOTIFICATIONS, NotificationStore
from shared.runtime import ServiceRuntime
from shared.topics import NOTIFICATION


def create_runtime(
    settings: NotificationSettings | None = None,
    *,
    email: handlers.EmailSender | None = None,
    sms: handlers.SmsSender | None = None,
) -> ServiceRuntime:
    """Wire the notification service: consumers, senders, reminder and announcement workers."""
    settings = settings or NotificationSettings()
    runtime = ServiceRuntime(
        "notification",
        settings,
        title="Mkutano notification",
        description="Bilingual email and SMS for registrations and resolutions, with a "
        "delivery log. Publishes notification.v1.",
    )
    store = NotificationStore(
        runtime.db, signal=runtime.signal, scan_interval_s=settings.scan_interval_s
    )
    if sms is None and settings.sms.gateway_url:
        sms = HttpSmsGateway(settings.sms)
    ctx = handlers.Context(
        store=store,
        settings=settings,
        email=email or SmtpEmailSender(settings.smtp),
        sms=sms,
        metrics=runtime.metrics,
        wake_relay=runtime.wake_relay,
    )
    runtime.app.state.context = ctx
    runtime.use_outbox([NOTIFICATIONS])
    runtime.publishes(NOTIFICATION)
    register_consumers(runtime, ctx)
    dispatcher = handlers.Dispatcher(ctx)
    runtime.add_worker("senders", dispatcher.run)
    runtime.add_worker("reminders", lambda stop: handlers.run_reminders(ctx, stop))
    runtime.add_worker("announcements", lambda stop: handlers.run_announcements(ctx, stop))
    runtime.app.include_router(api.router)
    runtime.on_startup(store.ensure_indexes)
    for channel in (ctx.email, ctx.sms):
        if channel is not None and hasattr(channel, "close"):
            runtime.on_shutdown(channel.close)
    return runtime
