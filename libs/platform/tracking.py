"""MLflow wiring from settings: one tracking store and artifact location per environment.

The local store is a sqlite file under the lakehouse with an explicit artifact location; without
the explicit location MLflow writes artifacts to ``./mlruns`` of whatever directory a job happened
to run in, which scatters models across working directories.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from libs.platform.config import Settings


def experiment(settings: Settings, name: str) -> str:
    """Point MLflow at the environment's store and return the id of experiment ``<prefix>-<name>``."""
    import mlflow  # imported lazily: ~3 s, and only jobs that track pay for it

    cfg = settings.mlflow
    uri = cfg["tracking_uri"]
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    full_name = f"{cfg['experiment_prefix']}-{name}"
    found = mlflow.get_experiment_by_name(full_name)
    if found is not None:
        return found.experiment_id
    return mlflow.create_experiment(full_name, artifact_location=cfg["artifact_location"])


def log_run(settings: Settings, experiment_name: str, run_name: str, params: Mapping[str, Any],
            metrics: Mapping[str, float]) -> str:
    """Record one run (params + metrics) and return its run id."""
    import mlflow

    exp_id = experiment(settings, experiment_name)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name) as run:
        mlflow.log_params({k: str(v) for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        return run.info.run_id
