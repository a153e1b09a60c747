"""``python -m bench`` (``make bench``): run every phase, write the results and the docs.

Writes ``bench/results/latest.json`` and regenerates ``docs/BENCHMARKS.md`` and
``docs/img/bench-*.png``. ``--quick`` runs small sizes (for developing the bench); its
results go to ``bench/results/quick.json``, not committed, and reach the published
figures only with ``--write-docs``. SIGTERM stops it as Ctrl-C does, servers included.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    api_bench,
    certificates_phase,
    fanout,
    idle,
    payments_phase,
    report_phase,
    scaleout,
    surge,
    webhooks_phase,
)
from bench.loadgen import wrk_version

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "latest.json"
# Quick runs (small sizes) never overwrite the published figures.
QUICK_RESULTS = ROOT / "bench" / "results" / "quick.json"
PHASES = (
    "api",
    "surge",
    "idle",
    "scaleout",
    "fanout",
    "report",
    "certificates",
    "webhooks",
    "payments",
)


def machine() -> dict[str, Any]:
    """The machine the figures ran on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kb = 0
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        # What the bench itself writes does not count.
        ["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
         ":!bench/results", ":!docs/BENCHMARKS.md", ":!docs/img"], cwd=ROOT,
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    return {
        "cpu": cpu,
        "uncommitted_changes": bool(dirty),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "load_generator": wrk_version(),
        "commit": commit,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the phases; exit 0 even when a target is missed (the report says so)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    parser.add_argument("--write-docs", action="store_true", help="also with --quick")
    parser.add_argument("--only", nargs="*", default=None, choices=PHASES)
    parser.add_argument("--surge-budget-s", type=float, default=1800.0,
                        help="a surge size projected to take longer is skipped")  # fmt: skip
    args = parser.parse_args(argv)
    quick = args.quick
    out = QUICK_RESULTS if quick and not args.write_docs else RESULTS
    phases = args.only or list(PHASES)
    here = machine()
    commit = here.get("commit")
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    results: dict[str, Any] = {"started_at": started_at, "quick": quick, "machine": here}
    rerun: dict[str, Any] | None = None
    if out.exists() and args.only:
        previous = json.loads(out.read_text())
        # The phases kept from the run before keep the commit they ran at.
        runs = dict(previous.get("phase_commits") or {})
        for phase in PHASES:
            if phase in previous and phase not in runs:
                runs[phase] = previous.get("machine", {}).get("commit")
        # The run's start and length stay the full run's; this one is listed apart.
        rerun = {"phases": phases, "started_at": started_at, "machine": here}
        results = {**previous, "quick": quick}
        results["phase_commits"] = runs
        results["reruns"] = [*previous.get("reruns", []), rerun]
    t0 = time.monotonic()

    def save() -> None:
        """What is measured so far, written after each phase: a phase that fails keeps
        the others (``--only <phase>`` then completes the file)."""
        if rerun is not None:
            rerun["duration_s"] = round(time.monotonic() - t0, 1)
        else:
            results["duration_s"] = round(time.monotonic() - t0, 1)
        commits = results.setdefault("phase_commits", {})
        for phase in PHASES:
            if phase in phases and phase in results:
                commits[phase] = commit
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")

    if "api" in phases:
        print("[1/4] registration API vs one-insert baseline", flush=True)
        results["api"] = api_bench.run([1, 10, 50, 100], 300 if quick else 5000)
        save()
    sizes = [100, 300] if quick else [1000, 10_000, 50_000]
    idle_at = (100, 300) if quick else (10_000, 50_000)
    idle_s = 20.0 if quick else 60.0
    budget_s = 120 if quick else args.surge_budget_s
    if "surge" in phases:
        print("[2/4] surge: registration to confirmation email", flush=True)
        # With the idle phase, each surge's stack is measured idle once it settles.
        at = idle_at if "idle" in phases else ()
        results["surge"] = surge.run(sizes, budget_s=budget_s, idle_at=at, idle_s=idle_s)
        save()
    if "idle" in phases:
        print("[idle] idle CPU and MongoDB requests at 0 and after the surges", flush=True)
        rows = [idle.fresh(idle_s, settle_s=60)]
        print(idle.line(rows[0]), flush=True)
        surged = results["surge"] if "surge" in phases else None
        if surged is None:  # --only idle: the surges it needs, measured idle
            surged = surge.run(sizes, budget_s=budget_s, idle_at=idle_at, idle_s=idle_s)
        rows += [row["idle"] for row in surged["rows"] if "idle" in row]
        results["idle"] = {"seconds": idle_s, "rows": rows}
        save()
    if "scaleout" in phases:
        n = 1000 if quick else 10_000
        print(f"[scaleout] the {n:,} surge with one and two notification instances", flush=True)
        same = None
        if "surge" in phases:
            same = next((r for r in results["surge"]["rows"] if r["registrations"] == n), None)
        results["scaleout"] = scaleout.run(n, budget_s, one=same)
        save()
    if "fanout" in phases:
        print("[3/4] notification consumer vs plain aiokafka loop", flush=True)
        results["fanout"] = fanout.run(200 if quick else 1000)
        save()
    if "report" in phases:
        print("[4/4] implementation report", flush=True)
        cases = [(12, 36), (50, 500)] if quick else [(12, 36), (500, 10_000)]
        results["report"] = report_phase.run(cases, repeat=5 if quick else 10)
        save()
    if "certificates" in phases:
        print("[5/5] certificates of attendance for one event (issue 16)", flush=True)
        results["certificates"] = certificates_phase.run(200 if quick else 1500)
        save()
    if "webhooks" in phases:
        print("[webhooks] deliveries to a local receiver vs a plain signing loop", flush=True)
        results["webhooks"] = webhooks_phase.run(200 if quick else 1000)
        save()
    if "payments" in phases:
        print("[payments] control numbers and payments through the GePG simulator", flush=True)
        results["payments"] = payments_phase.run(100 if quick else 1000)
        save()
    save()
    print(f"wrote {out.relative_to(ROOT)} ({round(time.monotonic() - t0, 1)} s)", flush=True)
    if not quick or args.write_docs:
        from bench import render

        for path in render.write(results):
            print(f"wrote {path.relative_to(ROOT)}", flush=True)
    return 0


def _stop(signum: int, _frame: object) -> None:
    # SIGTERM unwinds like Ctrl-C, so every stack's servers are stopped on the way out.
    raise KeyboardInterrupt(signal.Signals(signum).name)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)
    raise SystemExit(main())
