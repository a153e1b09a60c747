"""Registration service settings (``REGISTRATION_*``)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class RegistrationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REGISTRATION_", extra="ignore")

    mongo_db: str = "mkutano_registration"
    http_port: int = 8001
    # The public base URL of this service's pages (scheme, host, any path prefix; no
    # query): the self-service links in participants' emails start with it. Required in
    # production; dev and test default to http://127.0.0.1:<http_port>.
    public_url: str | None = None
    # Version of the privacy notice participants consent to (PDPA 2022).
    privacy_notice_version: str = "2025-01"
    # Public endpoints' limits (per minute per client address; per hour per email).
    # Generous per address: a ministry's staff may register from behind one NAT.
    rate_register_per_address_per_min: int = 120
    rate_register_per_email_per_hour: int = 10
    rate_self_service_per_address_per_min: int = 60
    rate_checkin_per_client_per_min: int = 600
    # Certificate verifications (page and API) per client address and minute.
    rate_verify_per_address_per_min: int = 30
    # PDPA retention: personal data is anonymised this long after an event ends.
    retention_days: int = 365
    retention_interval_s: float = 3600.0
    # Certificates and evaluation after an event (issue 16): how often the worker looks
    # for events that ended (within after_event_window_days) to invite to the evaluation
    # and issue the certificates.
    after_event_interval_s: float = 300.0
    after_event_window_days: int = 30

    # Institutions (issue 13 B): the contact persons' emailed sign-in link is single use
    # and lasts this long; the session it opens (a signed cookie) this long.
    institution_link_validity_s: int = 900
    institution_session_s: int = 3600
    # Sign-in requests per client address and minute, and per email and hour (beyond
    # the latter no more email is sent, and the answer stays the same).
    rate_institution_sign_in_per_address_per_min: int = 10
    rate_institution_sign_in_per_email_per_hour: int = 5
    # Group commit (issue 19): new registrations handed in while one insert is under way
    # go in together as one insert_many; a lone one waits this long (0: one turn of the
    # event loop) for company, and a batch holds at most this many.
    group_commit_window_ms: float = Field(default=0.0, ge=0, le=50)
    group_commit_max: int = Field(default=200, ge=1, le=1000)
    # Payments (issue 14): the consumer group that reads payments.v1.
    payments_consumer_group: str = "registration"
