"""Drive HTTP load with wrk (Debian's compiled load generator) and a Lua script.

wrk runs for a fixed duration; to send a fixed number of registrations, each wrk thread
stops after its share of responses and prints ``DONE``, and this driver interrupts wrk
(SIGINT) as soon as every thread is done, so wrk's own clock measures the time the
requests took. Latency figures are wrk's (microseconds, from its histogram).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).with_name("register.lua")
WRK_VERSION_CACHE: list[str] = []


class LoadError(RuntimeError):
    """wrk is missing, failed, or did not finish within its bound."""


def wrk_version() -> str:
    """The wrk build in use (for the results file)."""
    if not WRK_VERSION_CACHE:
        try:
            out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        except FileNotFoundError:  # a phase that needs no wrk (certificates) runs without it
            return "wrk not installed"
        first = (out.stdout + out.stderr).splitlines()[0]
        WRK_VERSION_CACHE.append(first.split(" Copyright")[0].strip())
    return WRK_VERSION_CACHE[0]


@dataclass
class LoadResult:
    """What one wrk run measured."""

    connections: int
    threads: int
    requests: int
    duration_s: float
    non_201: int
    socket_errors: int
    lat_ms: dict[str, float]
    started_at: float  # epoch seconds, for the surge's registration-to-email latency

    @property
    def throughput(self) -> float:
        """Responses per second over wrk's measured duration."""
        return self.requests / self.duration_s if self.duration_s else 0.0

    def as_dict(self) -> dict:
        return {
            "connections": self.connections,
            "threads": self.threads,
            "requests": self.requests,
            "duration_s": round(self.duration_s, 3),
            "throughput_rps": round(self.throughput, 1),
            "non_201": self.non_201,
            "socket_errors": self.socket_errors,
            "latency_ms": self.lat_ms,
        }


def post_registrations(
    base_url: str,
    path: str,
    *,
    total: int,
    connections: int,
    prefix: str,
    max_seconds: float = 600.0,
) -> LoadResult:
    """POST ``total`` registrations to ``base_url + path`` over ``connections`` connections."""
    if shutil.which("wrk") is None:
        raise LoadError("wrk is not installed (make bench installs it: apt-get install wrk)")
    threads = 1 if connections < 2 else 2  # two cores: one wrk thread per core at most
    per_thread = -(-total // threads)
    argv = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{int(max_seconds)}s",
        "--timeout", "30s", "-s", str(LUA), base_url,
        "--", prefix, path, str(per_thread),
    ]  # fmt: skip
    started = time.time()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    done = 0
    assert proc.stdout is not None
    timer = threading.Timer(max_seconds + 30, proc.kill)  # bound: never hang the bench
    timer.start()
    try:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.strip() == "DONE":
                done += 1
                if done == threads:
                    proc.send_signal(signal.SIGINT)
        proc.wait()
    finally:
        timer.cancel()
    result = next((ln for ln in lines if ln.startswith("RESULT ")), None)
    if result is None:
        raise LoadError("wrk gave no result:\n" + "\n".join(lines[-20:]))
    data = json.loads(result[len("RESULT ") :])
    if done < threads:
        raise LoadError(f"wrk stopped before {total} responses:\n" + "\n".join(lines[-20:]))
    lat = {
        key: round(data[f"lat_{key}_us"] / 1000.0, 2)
        for key in ("mean", "p50", "p90", "p95", "p99", "p999", "max")
    }
    return LoadResult(
        connections=connections,
        threads=threads,
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        non_201=int(data["non_201"]),
        socket_errors=sum(
            int(data[f"errors_{k}"]) for k in ("connect", "read", "write", "timeout")
        ),
        lat_ms=lat,
        started_at=started,
    )
