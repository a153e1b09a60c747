"""The whole platform on one machine: ``make run`` (``python -m deploy.run``).

Starts the embedded servers (tansu Kafka, nx-27017 MongoDB, SMTP and SMS capture),
creates the topics, then the services, each as its own process. Everything lives
under ``.data/`` (MongoDB data, captured mail and SMS, logs, the dev admin key).

Ports come from the environment (``KAFKA_PORT``, ``MONGO_PORT``, ``SMTP_PORT``,
``SMS_PORT``, ``REGISTRATION_HTTP_PORT``, ``NOTIFICATION_HTTP_PORT``,
``RESOLUTIONS_HTTP_PORT``, ``WEBHOOKS_HTTP_PORT``, ``CONSOLE_HTTP_PORT``). A port that is already taken is an error: the stack never
moves to another port behind your back.

Ctrl-C or SIGTERM stops everything (services first, then the servers). If any process
dies on its own, its last log lines are shown and the whole stack stops with exit code 1.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from deploy import embedded
from deploy.embedded import LOCALHOST, SERVICES, Process, ProcessFailed

DATA_DIR = embedded.REPO_ROOT / ".data"
SERVICE_READY_TIMEOUT_S = 60.0


class Shutdown(Exception):
    """Raised in the main thread by the SIGTERM handler."""


def read_ports() -> dict[str, int]:
    """The ports of every server and service, from the environment or the defaults."""
    wanted = {
        "KAFKA_PORT": embedded.DEFAULT_KAFKA_PORT,
        "MONGO_PORT": embedded.DEFAULT_MONGO_PORT,
        "SMTP_PORT": embedded.DEFAULT_SMTP_PORT,
        "SMS_PORT": embedded.DEFAULT_SMS_PORT,
        "GEPG_SIM_PORT": embedded.DEFAULT_GEPG_SIM_PORT,
        "OIDC_SIM_PORT": embedded.DEFAULT_OIDC_SIM_PORT,
        **{f"{n.upper()}_HTTP_PORT": p for n, p in embedded.DEFAULT_HTTP_PORTS.items()},
    }
    ports: dict[str, int] = {}
    for var, default in wanted.items():
        raw = os.environ.get(var, str(default))
        try:
            port = int(raw)
        except ValueError:
            raise SystemExit(f"error: {var}={raw!r} is not a port number") from None
        if not 0 < port < 65536:
            raise SystemExit(f"error: {var}={port} is out of range")
        ports[var] = port
    if len(set(ports.values())) != len(ports):
        raise SystemExit(f"error: two components share a port: {ports}")
    return ports


def load_or_create_admin_key(path: Path) -> str:
    """The dev bootstrap admin key: reused from ``path`` if present, else generated there (0600)."""
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    key = "mk_" + secrets.token_urlsafe(32)
    # Create with 0600 from the start, so the key is never readable by others.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    os.chmod(path, 0o600)
    return key


def load_or_create_console_password(path: Path) -> str:
    """The dev console's admin password (user ``admin``): reused from ``path``, else made (0600)."""
    if path.exists():
        password = path.read_text().strip()
        if password:
            return password
    password = secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    os.chmod(path, 0o600)
    return password


class Stack:
    """The processes started so far, stopped in reverse order of dependency."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.servers: list[Process] = []
        self.services: list[Process] = []
        self._print_lock = threading.Lock()

    def echo_for(self, name: str) -> Callable[[str], None]:
        """A line printer that prefixes the service name (one lock: lines never interleave)."""
        prefix = f"{name:<12} | "

        def echo(line: str) -> None:
            with self._print_lock:
                sys.stdout.write(prefix + line + "\n")
                sys.stdout.flush()

        return echo

    def start_server(self, proc: Process) -> None:
        """Start a server and wait until it is ready."""
        self.servers.append(proc)
        proc.start()

    def start_services(self, env: dict[str, str]) -> None:
        """Start the services side by side, then wait until every one is ready or one fails."""
        for name in SERVICES:
            proc = embedded.service(
                name,
                env,
                log_path=self.logs / f"{name}.log",
                echo=self.echo_for(name),
                ready_timeout=SERVICE_READY_TIMEOUT_S,
            )
            self.services.append(proc)
            proc.start(wait=False)
        pending = {p.name: p for p in self.services}
        deadline = time.monotonic() + SERVICE_READY_TIMEOUT_S
        while pending:
            self.check_alive()
            for name, proc in list(pending.items()):
                assert proc.ready_check is not None
                if proc.ready_check():
                    del pending[name]
            if pending and time.monotonic() > deadline:
                raise ProcessFailed(
                    f"not ready after {SERVICE_READY_TIMEOUT_S:.0f}s: {', '.join(pending)}\n"
                    + "\n".join(p.tail_text(20) for p in pending.values())
                )
            time.sleep(0.2)  # short poll inside the bounded loop

    def check_alive(self) -> None:
        """Raise ProcessFailed naming the first child that exited."""
        for proc in self.servers + self.services:
            if not proc.alive:
                raise ProcessFailed(
                    f"{proc.name} exited unexpectedly with code {proc.returncode}; last log lines "
                    f"({proc.log_path}):\n{proc.tail_text(30)}"
                )

    def stop_all(self) -> None:
        """Services first (SIGTERM, bounded), then the servers they depend on."""
        for proc in reversed(self.services):
            proc.stop()
        for proc in reversed(self.servers):
            proc.stop()


def banner(
    ports: dict[str, int], admin_key: str, key_path: Path, console_password: str = ""
) -> str:
    """What a developer needs to use the running stack."""
    lines = ["", "Mkutano is running:"]
    for name in SERVICES:
        base = f"http://{LOCALHOST}:{ports[f'{name.upper()}_HTTP_PORT']}"
        lines.append(
            f"  {name:<13} API {base}/api/v1   docs {base}/docs   AsyncAPI {base}/asyncapi"
        )
    lines += [
        f"  Kafka         {LOCALHOST}:{ports['KAFKA_PORT']}  (tansu, in memory: lost on stop)",
        f"  MongoDB       mongodb://{LOCALHOST}:{ports['MONGO_PORT']}  (data in {DATA_DIR / 'mongo'})",
        f"  SMTP capture  {LOCALHOST}:{ports['SMTP_PORT']}  -> mail lands in {DATA_DIR / 'mail'}",
        f"  SMS gateway   http://{LOCALHOST}:{ports['SMS_PORT']}/sms  -> SMS land in {DATA_DIR / 'sms'}",
        f"  GePG sim      http://{LOCALHOST}:{ports['GEPG_SIM_PORT']}/  (pay a control number; docs/payments.md)",
        f"  Identity sim  http://{LOCALHOST}:{ports['OIDC_SIM_PORT']}/  (the console's government"
        " identity sign-in: organiser@, registrar@, coordinator@ega.go.tz; docs/console.md)",
        f"  Logs          {DATA_DIR / 'logs'}",
        f"  Admin key     {admin_key}  (also in {key_path})",
        f"  Console       http://{LOCALHOST}:{ports['CONSOLE_HTTP_PORT']}/  user admin, password "
        f"{console_password}  (also in {DATA_DIR / 'dev-console-password'})",
        "Press Ctrl-C to stop.",
        "",
    ]
    return "\n".join(lines)


def _raise_shutdown(signum: int, frame: FrameType | None) -> None:
    raise Shutdown(signal.Signals(signum).name)


def main() -> int:
    """Start the stack, supervise it until Ctrl-C/SIGTERM or a failure; return the exit code."""
    ports = read_ports()
    taken = [f"{var}={port}" for var, port in ports.items() if embedded.port_in_use(port)]
    if taken:
        print(
            "error: port(s) already in use: "
            + ", ".join(taken)
            + "\n  Is another `make run` still running? Stop it, or choose other ports, e.g."
            + " KAFKA_PORT=19092 MONGO_PORT=27018 make run",
            file=sys.stderr,
        )
        return 2

    for sub in ("mongo", "mail", "sms", "logs"):
        (DATA_DIR / sub).mkdir(parents=True, exist_ok=True)
    logs = DATA_DIR / "logs"
    key_path = DATA_DIR / "dev-admin-key"
    admin_key = load_or_create_admin_key(key_path)
    console_password_path = DATA_DIR / "dev-console-password"
    console_password = load_or_create_console_password(console_password_path)

    signal.signal(signal.SIGTERM, _raise_shutdown)
    stack = Stack(logs)
    bootstrap = f"{LOCALHOST}:{ports['KAFKA_PORT']}"
    try:
        print(
            "starting Kafka (tansu), MongoDB (nx-27017), SMTP and SMS capture, the GePG and"
            " identity simulators ...",
            flush=True,
        )
        stack.start_server(embedded.tansu(ports["KAFKA_PORT"], log_path=logs / "kafka.log"))
        stack.start_server(
            embedded.nx27017(ports["MONGO_PORT"], DATA_DIR / "mongo", log_path=logs / "mongodb.log")
        )
        stack.start_server(
            embedded.mail_capture(ports["SMTP_PORT"], DATA_DIR / "mail", log_path=logs / "smtp.log")
        )
        stack.start_server(
            embedded.sms_capture(ports["SMS_PORT"], DATA_DIR / "sms", log_path=logs / "sms.log")
        )
        # The GePG simulator: its keypair and the payments service's, under .data/gepg/.
        from services.payments.gepgxml import generate_dev_keys

        for side in ("sp", "gepg"):
            generate_dev_keys(DATA_DIR / "gepg", side)
        payments_port = ports["PAYMENTS_HTTP_PORT"]
        stack.start_server(
            embedded.gepg_simulator(
                ports["GEPG_SIM_PORT"],
                DATA_DIR / "gepg",
                callback_url=f"http://{LOCALHOST}:{payments_port}/api/v1/gepg/callback",
                log_path=logs / "gepg.log",
            )
        )
        # The identity provider's stand-in (OpenID Connect) for the console's other sign-in.
        stack.start_server(
            embedded.oidc_provider(ports["OIDC_SIM_PORT"], log_path=logs / "oidc.log")
        )
        # Imported here: shared/ is optional for `--help`-style failures above.
        from shared.topics import ensure_topics

        created = asyncio.run(ensure_topics(bootstrap))
        print(f"topics created: {', '.join(created) or '(all existed)'}", flush=True)

        env = embedded.service_env(
            admin_key=admin_key,
            kafka_bootstrap=bootstrap,
            mongo_url=f"mongodb://{LOCALHOST}:{ports['MONGO_PORT']}",
            http_ports={n: ports[f"{n.upper()}_HTTP_PORT"] for n in SERVICES},
            smtp_port=ports["SMTP_PORT"],
            sms_gateway_url=f"http://{LOCALHOST}:{ports['SMS_PORT']}/sms",
            mkutano_env="dev",
            seed_demo=True,
            log_format="console",
            overrides={
                **embedded.gepg_env(DATA_DIR / "gepg", ports["GEPG_SIM_PORT"]),
                **embedded.oidc_env(ports["OIDC_SIM_PORT"]),
                "CONSOLE_DEV_ADMIN_PASSWORD_FILE": str(console_password_path),
            },
        )
        print("starting the services ...", flush=True)
        stack.start_services(env)
        print(banner(ports, admin_key, key_path, console_password), flush=True)
        while True:
            stack.check_alive()
            time.sleep(0.5)  # supervision poll; Ctrl-C/SIGTERM interrupt it at once
    except (KeyboardInterrupt, Shutdown):
        print("\nstopping ...", file=sys.stderr, flush=True)
        return 0
    except ProcessFailed as exc:
        bar = "!" * 78
        print(
            f"\n{bar}\nFAILED: {exc}\n{bar}\nstopping everything ...", file=sys.stderr, flush=True
        )
        return 1
    finally:
        # A second Ctrl-C must not interrupt the (bounded) cleanup half-way.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop_all()
        print("stopped.", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
