"""A test run stopped with SIGTERM (a CI timeout, ``kill``) leaves no server behind.

A real pytest process loads this suite's conftest (``-p tests.conftest``) and runs one
test that starts a server the way the fixtures do (``deploy.embedded.Process``), writes
its pid and waits. SIGTERM to pytest must end the run and that server with it: without
``tests/conftest.py``'s SIGTERM handler, the interpreter dies without running its exit
handlers and the server keeps running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from deploy.embedded import REPO_ROOT

TEST = """
import time
from pathlib import Path

from deploy import embedded


def test_a_server_runs_until_the_run_is_stopped(tmp_path):
    port = embedded.free_port()
    proc = embedded.sms_capture(port, tmp_path / "sms", log_path=tmp_path / "sms.log")
    proc.start()
    Path({pid_file!r}).write_text(str(proc.pid))
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (its parent may not have reaped it yet).
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def test_sigterm_to_the_test_run_stops_the_servers_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "server.pid"
    test_file = tmp_path / "test_waits.py"
    test_file.write_text(TEST.format(pid_file=str(pid_file)))
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
         "-c", str(REPO_ROOT / "pyproject.toml"), "--confcutdir", str(tmp_path), str(test_file)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            assert run.poll() is None, "the inner run ended before starting its server"
            assert time.monotonic() < deadline, "the inner run never started its server"
            time.sleep(0.1)
        server = int(pid_file.read_text())
        assert _alive(server)
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=30)
        deadline = time.monotonic() + 15
        while _alive(server) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(server), "the server outlived the stopped test run"
    finally:
        if run.poll() is None:
            run.kill()
        if pid_file.exists() and pid_file.read_text():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
