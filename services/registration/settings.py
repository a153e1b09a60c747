"""Registration service settings (``REGISTRATION_*``)."""

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class RegistrationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REGISTRATION_", extra="ignore")

    mongo_db: str = "mkutano_registration"
    http_port: int = 8001
    # Version of the privacy notice participants consent to (PDPA 2022).
    privacy_notice_version: str = "2025-01"
