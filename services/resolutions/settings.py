"""Resolutions service settings (``RESOLUTIONS_*``)."""

from typing import Annotated

from pydantic import SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from shared.settings import ServiceSettings


class ResolutionsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RESOLUTIONS_", extra="ignore")

    mongo_db: str = "mkutano_resolutions"
    http_port: int = 8003
    # The public base URL of this service's pages (scheme, host, any path prefix; no
    # query): the focal persons' report links start with it. Required in production;
    # dev and test default to http://127.0.0.1:<http_port>.
    public_url: str | None = None
    # The key of the focal persons' report links (HMAC-SHA256). Required in production;
    # dev and test derive one from the bootstrap admin key.
    link_secret: SecretStr | None = None
    # A report link opens its page this many days after it was sent.
    link_validity_days: int = 45
    # The focal persons' report pages (GET, POST, evidence) per client address: links
    # cannot be swept, and a form cannot be posted in a loop.
    rate_report_per_address_per_min: int = 30
    # Evidence files: at most this many bytes each.
    evidence_max_bytes: int = 10 * 1024 * 1024
    # The reminders and the weekly digest are considered this often.
    chase_interval_s: float = 3600.0
    # The coordinators' weekly digest goes to these addresses (comma-separated; none: no
    # digest), in this language.
    digest_recipients: Annotated[list[str], NoDecode] = []
    digest_language: str = "sw"

    @field_validator("digest_recipients", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value
