"""Airflow DAGs of the creator-governance pipeline, all built from ``conf/pipeline.yaml``.

One file builds every DAG the pipeline file declares (today ``creator_governance_daily``,
``creator_governance_weekly_retraining`` and ``creator_governance_maintenance``), rather than one
file per DAG: the DAGs come from one YAML, so they parse or fail together anyway, and adding a
DAG to the YAML then needs no new file here -- this file never changes when a job or a DAG is
added. Deliberately thin: the construction (operators, run-date template, timetable, cross-DAG
``needs`` in the task docs) lives in :mod:`libs.platform.airflow_dags`, which the DAG tests
also build through.

Deployment knobs (environment variables of the Airflow processes; see
:class:`libs.platform.airflow_dags.Deployment`): ``CGOV_ENV`` (default ``prod``),
``CGOV_APPLICATION_ROOT`` (default: this checkout), ``CGOV_PY_FILES`` (the project wheel as .zip),
``CGOV_SPARK_JARS`` (pre-resolved Delta jars, replacing ``--packages``).

Parsing does nothing beyond reading the YAML (no clock, no DB, no network).
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

try:
    from libs.platform.airflow_dags import Deployment, build_dags
    from libs.platform.pipeline import load_pipelines
except ModuleNotFoundError as exc:
    # The DAG folder is on sys.path, the repo root is not (unless the wheel is installed).
    if not (exc.name or "").startswith("libs"):
        raise
    sys.path.insert(0, str(REPO_ROOT))
    from libs.platform.airflow_dags import Deployment, build_dags
    from libs.platform.pipeline import load_pipelines

# Module globals named by dag_id: the DAG objects are what the dag-processor collects.
globals().update(build_dags(load_pipelines(), Deployment.from_environ(default_application_root=str(REPO_ROOT))))
