"""The CLI fails loudly (message + non-zero exit) on a bad job name or a malformed date."""
from __future__ import annotations

import subprocess
import sys

import pytest

from libs.platform.cli import available_jobs, main
from libs.platform.jobargs import base_parser


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "libs.platform.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_unknown_job_exits_2_with_the_known_jobs_listed():
    res = _cli("run", "no_such_table", "--run-date", "2026-11-01")
    assert res.returncode == 2
    assert "unknown job 'no_such_table'" in res.stderr
    assert "smoke_graph_metrics" in res.stderr


@pytest.mark.parametrize("bad", ["2026-13-01", "2026-02-30", "20261101", "2026-11-1", "yesterday"])
def test_malformed_run_date_exits_2(bad):
    res = _cli("run", "smoke_graph_metrics", "--run-date", bad)
    assert res.returncode == 2
    assert "--run-date must be a calendar date YYYY-MM-DD" in res.stderr


def test_missing_run_date_is_rejected():
    with pytest.raises(SystemExit) as exc:
        base_parser("x").parse_args(["--env", "local"])
    assert exc.value.code == 2


def test_list_names_the_job_modules(capsys):
    assert main(["list"]) == 0
    assert capsys.readouterr().out.split() == available_jobs()
    assert "smoke_graph_metrics" in available_jobs()
