"""One SparkSession for the whole test session (JVM start-up is the expensive part).

Built through the platform's own factory, so the tests exercise the same classpath, Delta
extension and settings handling that jobs use -- only sized down: local[2], few shuffle
partitions, UI off.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def lakehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lakehouse")


@pytest.fixture(scope="session")
def settings(lakehouse: Path):
    from libs.platform.config import load_settings

    env = dict(os.environ)
    env["CGOV__LAKEHOUSE_ROOT"] = str(lakehouse)
    env["CGOV__SPARK__MASTER"] = "local[2]"
    return load_settings("local", environ=env)


@pytest.fixture(scope="session")
def spark(settings):
    from libs.platform.session import get_spark

    session = get_spark(
        settings,
        "cgov-tests",
        extra_conf={
            # Tiny inline frames: more partitions only add scheduling overhead.
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.ui.enabled": "false",
            # Tests assert on results, not on adaptive plans; keep plans stable and fast.
            "spark.sql.adaptive.enabled": "false",
            "spark.databricks.delta.snapshotPartitions": "1",
        },
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def one_torch_thread():
    """Tiny models on a shared 2-core machine: intra-op threads only contend (seconds -> tenths).

    Opt-in (``pytest.mark.usefixtures("one_torch_thread")``): Spark-only tests never import torch.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
