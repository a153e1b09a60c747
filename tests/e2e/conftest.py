"""Private stacks shared by e2e modules (see ``PrivateStack`` in tests/stack.py).

Some modules need services of their own beside the session's ``platform``: their own
databases, consumer groups and mail/SMS captures (a notification of their own, a console
trusted by the services, payments with the GePG simulator). Where several modules need
the same stack, it is started once, side by side, for all of them, and stopped after the
last of them (each module's fixture calls ``release_after_last_user`` in its teardown).
Each module still makes its own events, users and institutions.

- ``console_stack``: registration, notification, resolutions and the console, the
  services trusting the console's JWKS (``deploy.embedded.console_env``); payments does
  not run (its port is reserved), so the dashboard says its figures are unavailable. An
  OpenID Connect provider (``deploy.embedded.oidc_provider``, at ``.oidc_url``) with the
  console registered as its client.
  Used by test_console_coordinators.py and test_console_flows.py.
- ``pay_stack``: registration, notification and payments with the GePG simulator (short
  scan and retry intervals). Used by test_payments_flows.py and test_payments_group_bill.py.

A module uses one through its own module fixture, e.g.::

    @pytest.fixture(scope="module")
    async def stack(console_stack, request):
        yield console_stack
        await release_after_last_user(request, "console_stack", console_stack)

and points ``smtp``/``sms`` at ``console_stack.smtp``/``.sms`` (the session's
notification sends its own copies to the session's captures, never to these).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import httpx
import pytest

from deploy import embedded
from services.payments.gepgxml import generate_dev_keys
from tests.stack import (
    KafkaServer,
    MongoServer,
    PrivateStack,
    ServiceFactory,
    ServiceHandle,
    SmsCapture,
    SmtpCapture,
    gepg_simulator,
    unique_suffix,
    wait_until,
)


async def _captures(workdir: Path) -> tuple[SmtpCapture, SmsCapture]:
    smtp, sms = SmtpCapture(workdir), SmsCapture(workdir)
    await asyncio.gather(smtp.start(), sms.start())
    return smtp, sms


async def _consumers_assigned(handle: ServiceHandle, admin: dict[str, str]) -> bool:
    async with httpx.AsyncClient(base_url=handle.url, timeout=10) as client:
        r = await client.get("/api/v1/admin/status", headers=admin)
    groups = r.json()["consumers"]
    return bool(groups) and all(
        isinstance(g["partitions"], list) and g["partitions"] for g in groups
    )


@pytest.fixture(scope="package")
async def console_stack(
    kafka: KafkaServer, mongo: MongoServer, admin_key: str, stack_dir: Path
) -> AsyncIterator[PrivateStack]:
    """Registration, notification, resolutions and the console, for the console modules."""
    work = stack_dir / f"console-{secrets.token_hex(3)}"
    smtp, sms = await _captures(work)
    factory = ServiceFactory(
        kafka=kafka, mongo=mongo, smtp=smtp, sms=sms, admin_key=admin_key, workdir=work
    )
    ports = {name: embedded.free_port() for name in embedded.SERVICES}
    # Payments' port is reserved and left unanswered (see the docstring).
    trust = embedded.console_env(ports)
    suffix = unique_suffix()
    # The identity provider (a real OpenID Connect server): the console is a client
    # registered with its callback, so the provider checks the secret and redirect URI.
    oidc_port = embedded.free_port()
    oidc = embedded.oidc_provider(oidc_port, log_path=work / "oidc.log", require_registration=True)
    stack = PrivateStack(
        factory, {}, extras={"oidc": oidc}, oidc_url=f"http://127.0.0.1:{oidc_port}"
    )
    try:
        await asyncio.to_thread(oidc.start)
        async with httpx.AsyncClient(timeout=10) as client:
            registered = await client.post(
                f"http://127.0.0.1:{oidc_port}/oauth2/clients",
                json={
                    "redirect_uris": [f"http://127.0.0.1:{ports['console']}/sign-in/oidc/callback"]
                },
            )
        registered.raise_for_status()
        client_of_console = registered.json()
        registration, notification, resolutions, console = await factory.start_many(
            ("registration", {"port": ports["registration"], "db_suffix": suffix, **trust}),
            (
                "notification",
                {
                    "port": ports["notification"],
                    "db_suffix": suffix,
                    "NOTIFICATION_CONSUMER_GROUP": f"notification{suffix}",
                    "NOTIFICATION_ANNOUNCEMENT_RATE_PER_S": "200",
                    **trust,
                },
            ),
            ("resolutions", {"port": ports["resolutions"], "db_suffix": suffix, **trust}),
            (
                "console",
                {
                    "port": ports["console"],
                    "db_suffix": suffix,
                    "CONSOLE_DASHBOARD_REFRESH_S": "2",
                    **trust,
                    **embedded.oidc_env(
                        oidc_port,
                        client_id=client_of_console["client_id"],
                        client_secret=client_of_console["client_secret"],
                    ),
                },
            ),
        )
        stack.services.update(
            registration=registration,
            notification=notification,
            resolutions=resolutions,
            console=console,
        )
        await wait_until(
            lambda: _consumers_assigned(notification, stack.admin),
            timeout=120,
            interval=0.5,
            message="notification's consumers have their partitions",
        )
        yield stack
    finally:
        await stack.close()
        smtp.process.stop()
        sms.process.stop()


@pytest.fixture(scope="package")
async def pay_stack(
    kafka: KafkaServer, mongo: MongoServer, admin_key: str, stack_dir: Path
) -> AsyncIterator[PrivateStack]:
    """Registration, notification, payments and the GePG simulator, for the payments modules."""
    work = stack_dir / f"payments-{secrets.token_hex(3)}"
    keys = work / "gepg"
    await asyncio.gather(*(asyncio.to_thread(generate_dev_keys, keys, s) for s in ("sp", "gepg")))
    smtp, sms = await _captures(work)
    factory = ServiceFactory(
        kafka=kafka, mongo=mongo, smtp=smtp, sms=sms, admin_key=admin_key, workdir=work
    )
    payments_port, gepg_port = embedded.free_port(), embedded.free_port()
    suffix = unique_suffix()
    group = f"-{secrets.token_hex(3)}"
    stack = PrivateStack(factory, {}, gepg_url=f"http://127.0.0.1:{gepg_port}")
    try:
        callback = f"http://127.0.0.1:{payments_port}/api/v1/gepg/callback"
        gepg = gepg_simulator(keys, gepg_port, callback, work / "gepg.log")
        stack.extras["gepg"] = gepg
        # return_exceptions: every start finishes before a failure is raised (none orphaned).
        outcomes = await asyncio.gather(
            asyncio.to_thread(gepg.start),
            factory.start_many(
                (
                    "registration",
                    {
                        "db_suffix": suffix,
                        "REGISTRATION_PAYMENTS_CONSUMER_GROUP": f"registration{group}",
                    },
                ),
                (
                    "notification",
                    {"db_suffix": suffix, "NOTIFICATION_CONSUMER_GROUP": f"notification{group}"},
                ),
                (
                    "payments",
                    {
                        "port": payments_port,
                        "db_suffix": suffix,
                        "PAYMENTS_CONSUMER_GROUP": f"payments{group}",
                        "PAYMENTS_SCAN_INTERVAL_S": "0.2",
                        "PAYMENTS_SUBMIT_RETRY_BASE_S": "0.5",
                        "PAYMENTS_SUBMIT_RETRY_MAX_S": "2",
                        **embedded.gepg_env(keys, gepg_port),
                    },
                ),
            ),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        registration, notification, payments = cast(list[ServiceHandle], outcomes[1])
        stack.services.update(
            registration=registration, notification=notification, payments=payments
        )
        yield stack
    finally:
        await stack.close()
        smtp.process.stop()
        sms.process.stop()
