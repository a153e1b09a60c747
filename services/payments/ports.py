"""What the payments use cases need from the outside: the store and the gateway (GePG).

The gateway is a port so that GePG version 2 (or ZanMalipo) can be added beside the
version-1 XML adapter without touching a use case.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from services.payments.domain import Bill, KnownPayment, Reconciliation, ReportedPayment


class PaymentsStore(Protocol):
    """The service's database (``store.MongoPaymentsStore``; ``tests/unit/fakes/payments.py``).

    ``save_*`` is revision-checked: False (nothing written) if the document moved on.
    """

    async def insert_bill(self, bill: Bill) -> bool:
        """Insert a new bill with its events; False if a bill with its id exists."""
        ...

    async def get_bill(self, bill_id: str) -> Bill | None: ...
    async def save_bill(self, bill: Bill) -> bool: ...
    async def bill_by_control_number(self, control_number: str) -> Bill | None: ...
    async def bills_of_registration(self, registration_id: str) -> list[Bill]: ...
    async def bills_to_submit(self, *, now: float, limit: int) -> list[str]:
        """Ids of bills in ``submitting`` whose next submission is due."""
        ...

    async def open_bills_due(self, *, until: datetime, limit: int) -> list[str]:
        """Ids of open bills expiring at or before ``until`` (to expire or remind)."""
        ...

    async def bills_to_cancel_at_gepg(self, *, limit: int) -> list[str]: ...
    async def list_bills(
        self,
        *,
        event_id: str | None = None,
        status: str | None = None,
        category: str | None = None,
        institution_code: str | None = None,
        flagged: bool | None = None,
        limit: int = 1000,
    ) -> list[Bill]: ...
    async def payments_on(self, day: date) -> list[KnownPayment]:
        """Every payment made on ``day`` (Tanzanian local date), of every bill."""
        ...

    async def next_invoice_number(self, year: int, bill_id: str) -> int:
        """The next invoice number of ``year`` for ``bill_id``: sequential, no gaps (a
        counter document, incremented on a condition; the same bill asking again after
        a crash gets the number it was given)."""
        ...

    async def get_reconciliation(self, reconciliation_id: str) -> Reconciliation | None: ...
    async def reconciliation_by_request(self, request_id: int) -> Reconciliation | None: ...
    async def put_reconciliation(self, reconciliation: Reconciliation) -> bool:
        """Insert (rev 0) or save (revision-checked) a reconciliation."""
        ...

    async def list_reconciliations(self, limit: int = 60) -> list[Reconciliation]: ...


@dataclass(frozen=True)
class GatewayAnswer:
    """GePG's synchronous answer: accepted (7101), or a code; ``retry`` when worth
    trying again later (no answer, 5xx, "try later")."""

    accepted: bool
    code: str
    retry: bool = False


@dataclass(frozen=True)
class ControlNumberCallback:
    bill_id: str
    control_number: str | None
    code: str


@dataclass(frozen=True)
class PaymentCallback:
    payment: ReportedPayment


@dataclass(frozen=True)
class ReconciliationCallback:
    request_id: int
    code: str
    payments: list[ReportedPayment]


Callback = ControlNumberCallback | PaymentCallback | ReconciliationCallback


class CallbackRefused(Exception):
    """A callback that cannot be read; ``code`` is what the ack carries (7303 for a bad
    signature, 7242 for a malformed message), ``kind`` which ack element answers it."""

    def __init__(self, code: str, reason: str, kind: str | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.kind = kind


class Gateway(Protocol):
    """GePG: bills go out, callbacks come in (each verified before it is read)."""

    name: str

    async def submit_bill(self, bill: Bill) -> GatewayAnswer: ...
    async def cancel_bill(self, bill: Bill) -> GatewayAnswer: ...
    async def request_reconciliation(self, day: date, request_id: int) -> GatewayAnswer: ...
    def read_callback(self, body: bytes) -> Callback:
        """Verify the signature, then parse; raises ``CallbackRefused``."""
        ...

    def ack(self, callback: Callback | str | None, code: str) -> bytes:
        """The signed synchronous answer to a callback (``str``: its kind)."""
        ...
