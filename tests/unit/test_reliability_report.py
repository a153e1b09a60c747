"""Where the fault suite's report goes: docs/RELIABILITY.md only after a whole run of the
suite (every scenario ran this session), else the partial report under .data/, so one
scenario run locally cannot overwrite the committed report with a one-row table."""

from __future__ import annotations

from pathlib import Path

from deploy.embedded import REPO_ROOT
from tests.faults.conftest import (
    PARTIAL_REPORT,
    RELIABILITY_MD,
    fault_scenarios,
    report_path,
    whole_suite_ran,
)

SCENARIOS = {"tests/faults/test_a.py::test_one", "tests/faults/test_b.py::test_two"}


def test_the_scenarios_are_the_fault_tests_that_record_figures() -> None:
    scenarios = fault_scenarios(REPO_ROOT)
    # The ten of docs/RELIABILITY.md, whichever of them this session selected.
    assert len(scenarios) == 10, sorted(scenarios)
    assert (
        "tests/faults/test_mongo_restart.py::"
        + ("test_mongo_restart_under_load_loses_no_acknowledged_write")
        in scenarios
    )
    # A fault-suite test that records no figures is no scenario of the report.
    assert not any("test_log_throttle" in s for s in scenarios)


def test_scenarios_in_classes_and_only_those_taking_the_fixture(tmp_path: Path) -> None:
    faults = tmp_path / "tests" / "faults"
    faults.mkdir(parents=True)
    (faults / "test_x.py").write_text(
        "async def test_a(fault_stack, reliability): ...\n"
        "def test_b(monkeypatch): ...\n"
        "def helper(reliability): ...\n"
        "class TestC:\n"
        "    async def test_d(self, reliability): ...\n"
    )
    (faults / "support.py").write_text("def test_e(reliability): ...\n")
    assert fault_scenarios(tmp_path, faults) == {
        "tests/faults/test_x.py::test_a",
        "tests/faults/test_x.py::TestC::test_d",
    }


def test_a_whole_run_writes_the_committed_report() -> None:
    outcomes = {"tests/faults/test_a.py::test_one": "passed"}
    outcomes["tests/faults/test_b.py::test_two"] = "failed"  # a failure is reported too
    assert whole_suite_ran(SCENARIOS, outcomes)
    assert report_path(SCENARIOS, outcomes) == RELIABILITY_MD


def test_one_scenario_alone_writes_the_partial_report() -> None:
    outcomes = {"tests/faults/test_a.py::test_one": "passed"}
    assert not whole_suite_ran(SCENARIOS, outcomes)
    assert report_path(SCENARIOS, outcomes) == PARTIAL_REPORT
    assert PARTIAL_REPORT.parent.name == ".data" and PARTIAL_REPORT != RELIABILITY_MD


def test_a_scenario_set_up_but_never_reported_is_not_a_run() -> None:
    """-x stopping the session, or a scenario interrupted before its outcome."""
    outcomes = {
        "tests/faults/test_a.py::test_one": "failed",
        "tests/faults/test_b.py::test_two": "not run",
    }
    assert report_path(SCENARIOS, outcomes) == PARTIAL_REPORT


def test_skipped_and_parametrized_cases_count_as_run() -> None:
    outcomes = {
        "tests/faults/test_a.py::test_one[kafka]": "passed",
        "tests/faults/test_b.py::test_two": "skipped",
    }
    assert report_path(SCENARIOS, outcomes) == RELIABILITY_MD


def test_no_scenarios_known_is_never_a_whole_run() -> None:
    assert not whole_suite_ran(set(), {"tests/faults/test_a.py::test_one": "passed"})
