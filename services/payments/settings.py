"""Payments service settings (``PAYMENTS_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

DEV_KEYS_DIR = ".data/gepg"


class PaymentsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMENTS_", extra="ignore")

    mongo_db: str = "mkutano_payments"
    http_port: int = 8004
    consumer_group: str = "payments"
    # The consumer in batches (shared.settings.ServiceSettings): deduplicated and recorded
    # once per batch, offsets committed once. Most records of these streams need nothing
    # of payments (a free registration's notice); one by one, their idempotency record
    # alone was two round trips each. 0: one by one.
    consumer_batch_max_records: int = Field(200, ge=0)
    # GePG (version 1 XML): where it is, who we are there, our key, its certificate.
    gepg_url: str = "http://127.0.0.1:1027"
    sp_code: str = "SP19988"
    sub_sp_code: str = "1001"
    sp_sys_id: str = "MKUTANO01"
    # The GFS code of participation fees (a revenue item of the chart of accounts).
    gfs_code: str = "140206"
    # PKCS#12 (.pfx/.p12) with our private key and certificate; GePG's certificate
    # (.pfx/.p12, or .cer/.crt). Dev and test generate both under .data/gepg/ if missing.
    gepg_key_file: str = f"{DEV_KEYS_DIR}/sp.p12"
    gepg_key_password: SecretStr | None = None
    gepg_certificate_file: str = f"{DEV_KEYS_DIR}/gepg.crt"
    gepg_certificate_password: SecretStr | None = None
    gepg_timeout_s: float = Field(10.0, gt=0)
    # Bills: how payments add up (GePG BillPayOpt), how long a bill lives when the
    # registration says nothing (never past the event's start), reminder before expiry.
    pay_option: Literal["full", "partial", "exact"] = "partial"
    bill_lifetime_days: float = Field(7.0, gt=0)
    reminder_before_hours: float = Field(24.0, ge=0)
    # Submission to GePG: backoff between tries while it is away, and how long to wait
    # for the control-number callback before submitting again.
    submit_retry_base_s: float = Field(2.0, gt=0)
    submit_retry_max_s: float = Field(300.0, gt=0)
    submit_concurrency: int = Field(8, ge=1)
    control_number_timeout_s: float = Field(120.0, gt=0)
    scan_interval_s: float = Field(1.0, gt=0)
    # Daily reconciliation of the previous day, from this local hour; asked again when
    # GePG has not answered for this long.
    reconcile_hour: int = Field(7, ge=0, le=23)
    reconcile_retry_s: float = Field(1800.0, gt=0)
    reconcile_interval_s: float = Field(300.0, gt=0)
