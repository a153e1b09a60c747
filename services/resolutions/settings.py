"""Resolutions service settings (``RESOLUTIONS_*``)."""

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ResolutionsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RESOLUTIONS_", extra="ignore")

    mongo_db: str = "mkutano_resolutions"
    http_port: int = 8003
