"""A private embedded stack for one benchmark phase, on free loopback ports.

Each phase gets fresh servers (tansu is memory-only; nx-27017 runs with ``memory``
storage), so one phase's backlog never slows the next one, and a developer's
``make run`` on the default ports is never touched.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from deploy import embedded
from deploy.embedded import LOCALHOST, Process
from shared.topics import ensure_topics

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_stats(pid: int | None) -> dict[str, float]:
    """Peak resident memory (VmHWM, MiB) and CPU seconds (user + system) of one process."""
    if pid is None:
        return {}
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return {}
    hwm_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    fields = stat.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
    return {"peak_rss_mib": round(hwm_kb / 1024, 1), "cpu_s": round(cpu, 2)}


class BenchStack:
    """Kafka, MongoDB, SMTP and SMS capture, plus the services a phase asks for."""

    def __init__(
        self, name: str, *, sms: bool = True, storage: str = "memory", count_wire: bool = False
    ) -> None:
        """``storage="disk"`` runs nx-27017 on a data directory as ``make run`` does;
        ``count_wire`` puts a ``bench.wirecount.WireCounter`` between the services and it."""
        self.name = name
        self.storage = storage
        self.count_wire = count_wire
        self.wire: Any = None
        self.gepg_port = 0
        self.workdir = Path(tempfile.mkdtemp(prefix=f"mkutano-bench-{name}-"))
        self.admin_key = "mk_bench_" + secrets.token_urlsafe(16)
        self.kafka_port = embedded.free_port()
        self.mongo_port = embedded.free_port()
        self.smtp_port = embedded.free_port()
        self.sms_port = embedded.free_port()
        self.mail_dir = self.workdir / "mail"
        self.sms_dir = self.workdir / "sms"
        self.with_sms = sms
        self.servers: dict[str, Process] = {}
        self.services: dict[str, Process] = {}
        self.ports: dict[str, int] = {}

    @property
    def kafka_bootstrap(self) -> str:
        return f"{LOCALHOST}:{self.kafka_port}"

    @property
    def mongo_url(self) -> str:
        return f"mongodb://{LOCALHOST}:{self.mongo_port}"

    @property
    def service_mongo_url(self) -> str:
        """What the services connect to: the counting proxy when there is one."""
        return self.wire.url if self.wire is not None else self.mongo_url

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def url(self, service: str) -> str:
        return f"http://{LOCALHOST}:{self.ports[service]}"

    def start_servers(self) -> None:
        """Start the embedded servers and create the topics."""
        logs = self.workdir / "logs"
        self.servers["kafka"] = embedded.tansu(self.kafka_port, log_path=logs / "kafka.log")
        data = "memory" if self.storage == "memory" else self.workdir / "mongo"
        self.servers["mongodb"] = embedded.nx27017(
            self.mongo_port, data, log_path=logs / "mongodb.log"
        )
        self.servers["smtp"] = embedded.mail_capture(
            self.smtp_port, self.mail_dir, log_path=logs / "smtp.log"
        )
        if self.with_sms:
            self.servers["sms"] = embedded.sms_capture(
                self.sms_port, self.sms_dir, log_path=logs / "sms.log"
            )
        for proc in self.servers.values():
            proc.start(wait=False)
        for proc in self.servers.values():
            proc.wait_ready()
        asyncio.run(ensure_topics(self.kafka_bootstrap, timeout_s=20))
        if self.count_wire:
            from bench.wirecount import WireCounter

            self.wire = WireCounter(self.mongo_port).__enter__()

    def start_gepg(self, payments_port: int) -> Process:
        """The GePG simulator (deploy.gepgsim) calling back ``payments_port``; returns
        the overrides the payments service needs (``gepg_overrides``)."""
        from services.payments.gepgxml import generate_dev_keys

        keys = self.workdir / "gepg"
        for side in ("sp", "gepg"):
            generate_dev_keys(keys, side)
        self.gepg_port = embedded.free_port()
        proc = embedded.gepg_simulator(
            self.gepg_port,
            keys,
            callback_url=f"http://{LOCALHOST}:{payments_port}/api/v1/gepg/callback",
            log_path=self.workdir / "logs" / "gepg.log",
            control_number_delay_s=0.0,
        )
        self.servers["gepg"] = proc
        proc.start()
        return proc

    def gepg_overrides(self) -> dict[str, str]:
        return embedded.gepg_env(self.workdir / "gepg", self.gepg_port)

    def service_env(
        self, service: str, *, port: int | None = None, **overrides: str
    ) -> dict[str, str]:
        """The service contract of deploy.embedded, pointing at this stack."""
        return embedded.service_env(
            admin_key=self.admin_key,
            kafka_bootstrap=self.kafka_bootstrap,
            mongo_url=self.service_mongo_url,
            http_ports={service: port or self.ports[service]},
            smtp_port=self.smtp_port,
            sms_gateway_url=(f"http://{LOCALHOST}:{self.sms_port}/sms" if self.with_sms else ""),
            mkutano_env="test",
            seed_demo=False,
            log_format="json",
            overrides={
                "LOG_LEVEL": "WARNING",
                # One loopback load generator is one client: the per-client limits
                # (shared.ratelimit) would answer 429, so they are off on this private stack.
                f"{service.upper()}_RATE_LIMITS": "false",
                **overrides,
            },
        )

    def start_service(
        self,
        service: str,
        *,
        instance: str | None = None,
        port: int | None = None,
        **overrides: str,
    ) -> Process:
        """Start ``python -m services.<service>`` and wait until it is ready. A second
        instance of a service gets its own ``instance`` name (its port and log)."""
        name = instance or service
        self.ports[name] = port = port or embedded.free_port()
        proc = embedded.service(
            service,
            self.service_env(service, port=port, **overrides),
            log_path=self.workdir / "logs" / f"{name}.log",
        )
        proc.name = name
        self.services[name] = proc
        proc.start()
        return proc

    def start_baseline(self) -> Process:
        """The one-insert FastAPI baseline (bench.baseline_app), same MongoDB server."""
        self.ports["baseline"] = port = embedded.free_port()
        proc = Process(
            "baseline",
            [sys.executable, "-m", "bench.baseline_app", "--port", str(port),
             "--mongo-url", self.mongo_url],
            log_path=self.workdir / "logs" / "baseline.log",
            ready=lambda: embedded.http_ok(f"http://{LOCALHOST}:{port}/health/ready"),
            ready_timeout=30,
            stop_timeout=5,
        )  # fmt: skip
        self.services["baseline"] = proc
        proc.start()
        return proc

    def stats(self) -> dict[str, dict[str, float]]:
        """Peak memory and CPU seconds of every process of the stack, by name."""
        every = {**self.servers, **self.services}
        return {name: proc_stats(p.pid) for name, p in every.items() if p.alive}

    def mail_count(self) -> int:
        """Messages the SMTP capture has accepted so far."""
        try:
            return sum(1 for e in os.scandir(self.mail_dir) if e.name.endswith(".eml"))
        except FileNotFoundError:
            return 0

    def close(self) -> None:
        """Stop services first, then servers; remove the work directory."""
        for proc in list(self.services.values()) + list(self.servers.values()):
            proc.kill() if proc.name == "kafka" else proc.stop(timeout=10)
        if self.wire is not None:
            self.wire.__exit__(None, None, None)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> BenchStack:
        try:
            self.start_servers()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
