"""The bench's own bookkeeping: each target's verdict, and results kept phase by phase
(a phase that fails leaves the others' figures; ``--only`` completes the file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import bench.__main__ as bench_main
from bench import render


def _api(ratio: float, p99: float) -> dict:
    row = {
        "concurrency": 10,
        "throughput_ratio": ratio,
        "service": {"latency_ms": {"p99": p99}},
    }
    return {"rows": [row]}


def _surge(*rows: tuple[int, float, bool]) -> dict:
    return {
        "rows": [
            {
                "registrations": n,
                "seconds_to_last_email": s,
                "complete": complete,
                "ms_per_registration": s * 1000 / n,
            }
            for n, s, complete in rows
        ]
    }


def verdicts(results: dict) -> dict[str, tuple[str, str]]:
    return {target: (figure, verdict) for target, figure, verdict in render.targets(results)}


def test_each_target_is_met_only_by_a_figure_within_it() -> None:
    met = verdicts(
        {
            "api": _api(0.61, 99.0),
            "surge": _surge((1000, 9.5, True), (10_000, 59.0, True), (50_000, 320.0, True)),
            "fanout": {"emails_ratio": 0.7},
            "payments": {"payments": 1000, "applied_seconds": 19.9},
            "certificates": {
                "certificates": 1500, "issue_seconds": 10.0, "all_emailed_seconds": 119.0,
                "ratio_to_baseline": 1.0,
            },
        }
    )  # fmt: skip
    assert {v for _, v in met.values()} == {"**met**"}, met
    assert met["cost per registration 1,000 → 50,000 within 1.5×"][0] == "0.67×"
    missed = verdicts(
        {
            "api": _api(0.59, 100.0),
            "surge": _surge((1000, 10.5, True), (10_000, 50.0, False)),
            "fanout": {"emails_ratio": 0.69},
            "payments": {"payments": 999, "applied_seconds": 15.0},
            "certificates": {
                "certificates": 1500, "issue_seconds": 10.0, "all_emailed_seconds": None,
                "ratio_to_baseline": 1.0,
            },
        }
    )  # fmt: skip
    assert {v for _, v in missed.values()} == {"**missed**"}, missed
    assert missed["10,000 surge confirmed by email within 60 s"][0] == "50.0 s (incomplete)"
    assert missed["cost per registration 1,000 → 50,000 within 1.5×"][0] == (
        "50,000 not run; 1,000 → 10,000: 0.48×"
    )
    unmeasured = verdicts({})
    assert unmeasured["1,000 payments applied end to end within 20 s"] == (
        "not measured in this run",
        "not measured",
    )


def test_a_phase_run_alone_completes_the_results_of_the_run_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    latest = tmp_path / "latest.json"
    before = {"started_at": "before", "machine": {"commit": "old"}, "api": {"rows": ["kept"]}}
    latest.write_text(json.dumps(before))
    monkeypatch.setattr(bench_main, "RESULTS", latest)
    monkeypatch.setattr(bench_main, "ROOT", tmp_path)
    monkeypatch.setattr(bench_main, "machine", lambda: {"cores": 2, "commit": "new"})
    monkeypatch.setattr(bench_main.report_phase, "run", lambda cases, repeat: {"rows": ["new"]})
    written: list[dict] = []
    monkeypatch.setattr(render, "write", lambda results: written.append(results) or [])
    assert bench_main.main(["--only", "report"]) == 0
    saved = json.loads(latest.read_text())
    assert saved["api"] == {"rows": ["kept"]} and saved["report"] == {"rows": ["new"]}
    assert written == [saved]
    # The full run's start and machine stay; the run of one phase is listed apart.
    assert saved["started_at"] == "before" and saved["machine"] == {"commit": "old"}
    (rerun,) = saved["reruns"]
    assert rerun["phases"] == ["report"] and rerun["machine"]["commit"] == "new"
    # Each phase names the commit it ran at: the kept one the run before's.
    assert saved["phase_commits"] == {"api": "old", "report": "new"}
    assert render._commits(saved) in ("old (api); new (report)", "new (report); old (api)")


def test_a_phase_that_fails_leaves_the_figures_of_those_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    latest = tmp_path / "latest.json"
    monkeypatch.setattr(bench_main, "RESULTS", latest)
    monkeypatch.setattr(bench_main, "ROOT", tmp_path)
    monkeypatch.setattr(bench_main, "machine", lambda: {"cores": 2})
    monkeypatch.setattr(bench_main.report_phase, "run", lambda cases, repeat: {"rows": ["r"]})

    def crash(n: int) -> dict:
        raise ConnectionError("the simulator went away")

    monkeypatch.setattr(bench_main.certificates_phase, "run", crash)
    with pytest.raises(ConnectionError):
        bench_main.main(["--only", "report", "certificates"])
    saved = json.loads(latest.read_text())
    assert saved["report"] == {"rows": ["r"]} and "certificates" not in saved
