"""Arguments every job shares, parsed the same way under the CLI, spark-submit and Airflow.

``--run-date`` always comes from the scheduler (Airflow's ``{{ ds }}``) or the operator; a job
never asks the clock, so re-running yesterday's task recomputes yesterday, exactly.
"""
from __future__ import annotations

import argparse
import datetime as dt
from typing import Callable, Sequence

from libs.platform.config import KNOWN_ENVS


def run_date(text: str) -> dt.date:
    """argparse type: a real calendar date in ISO form (YYYY-MM-DD), nothing looser."""
    try:
        if len(text) != 10:
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--run-date must be a calendar date YYYY-MM-DD, got {text!r}") from None


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--run-date", type=run_date, required=True, help="logical date of the run (YYYY-MM-DD)")
    parser.add_argument("--env", choices=KNOWN_ENVS, default="local", help="settings file conf/<env>.yaml")
    return parser


def run_job(arg_parser: Callable[[], argparse.ArgumentParser], main: Callable[..., object],
            argv: Sequence[str] | None = None) -> None:
    """Entry used by ``if __name__ == '__main__'`` in each job module (spark-submit path)."""
    args = arg_parser().parse_args(argv)
    main(**vars(args))
