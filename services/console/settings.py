"""Staff console settings (``CONSOLE_*``).

The console owns no business data: it reaches the other services through their public
HTTP APIs at the URLs below, with a short-lived token it signs for the person signed in.
Its own database (``mkutano_console``) holds staff accounts and sessions only.
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ConsoleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CONSOLE_", extra="ignore")

    mongo_db: str = "mkutano_console"
    http_port: int = 8005
    # Where people reach the console (scheme and host, no path): the tokens' issuer and
    # the OIDC redirect. Required in production; dev/test: http://127.0.0.1:<http_port>.
    public_url: str | None = None
    # The services' public APIs.
    registration_url: str = "http://127.0.0.1:8001"
    notification_url: str = "http://127.0.0.1:8002"
    resolutions_url: str = "http://127.0.0.1:8003"
    # The payments service (the dashboard's amounts collected, outstanding, expired).
    payments_url: str = "http://127.0.0.1:8004"
    # The webhooks service (the admins' subscriptions page).
    webhooks_url: str = "http://127.0.0.1:8006"
    # The audience every service expects (MKUTANO_JWT_AUDIENCE there).
    token_audience: str = "mkutano"
    token_ttl_s: int = 300
    # The Ed25519 key that signs the tokens (PKCS#8 PEM). Required in production; dev and
    # test derive one from the bootstrap admin key.
    signing_key: SecretStr | None = None
    # Sessions: idle and absolute timeouts.
    session_idle_s: int = 30 * 60
    session_absolute_s: int = 12 * 60 * 60
    # Password sign-in attempts per account before a pause.
    max_failed_sign_ins: int = 5
    lockout_s: int = 15 * 60
    # OpenID Connect (the government identity provider): on when an issuer is set.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_scopes: str = "openid profile email"
    # The claim of the provider's ID token that lists Mkutano roles.
    oidc_roles_claim: str = "roles"
    # Dev stack: an admin account created at start, its password written to this file.
    dev_admin_password_file: str | None = None
    # Dashboards refresh themselves this often (seconds; a meta refresh, no JavaScript).
    dashboard_refresh_s: int = 15
