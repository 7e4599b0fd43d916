"""The one place a SparkSession is built.

Two ways a job starts, one factory:

* **Embedded** (``cgov run ...``, tests, notebooks): we own the JVM, so we set the master from
  settings, put the project's pre-resolved Delta jars (``make jars`` -> ``.jars/``) on the
  classpath and point Python workers at *this* interpreter.
* **Under spark-submit** (Airflow, data engineers, the standalone-cluster test): the launcher owns
  master, deploy mode, jars (``--packages io.delta:delta-spark_4.0_2.13:4.4.0`` or ``--jars``) and
  resources. We then only fill in what is missing (Delta SQL extension, catalog) and never override.

Either way the session is verified to really have Delta: Spark silently ignores an extension class
it cannot load, which would otherwise surface much later as a confusing "not a Delta table" error.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from libs.platform.config import Settings

DELTA_COORDINATE = "io.delta:delta-spark_4.0_2.13:4.4.0"
DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
REPO_ROOT = Path(__file__).resolve().parents[2]


class SessionError(RuntimeError):
    """The Spark session cannot be built as the platform needs it."""


def jars_dir() -> Path:
    """Folder of the pre-resolved JVM jars (``CGOV_JARS_DIR`` or ``<repo>/.jars``)."""
    return Path(os.environ.get("CGOV_JARS_DIR", REPO_ROOT / ".jars"))


def local_jars() -> list[str]:
    """The jar files for an embedded session; a clear error when the install step was skipped."""
    folder = jars_dir()
    jars = sorted(str(p) for p in folder.glob("*.jar"))
    if not any(Path(j).name.startswith("delta-spark_") for j in jars):
        raise SessionError(
            f"Delta jars not found in {folder}. Run `make jars` (resolves {DELTA_COORDINATE} "
            "with Maven once); jobs never download at run time."
        )
    return jars


def launched_by_spark_submit() -> bool:
    """spark-submit's PythonRunner hands the driver a gateway to an already running JVM."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(settings: Settings, app_name: str, extra_conf: dict[str, str] | None = None) -> SparkSession:
    """Build (or return the running) SparkSession configured for the platform."""
    builder = SparkSession.builder.appName(app_name)
    submitted = launched_by_spark_submit()
    if not submitted:
        # Python workers must run this interpreter (the venv's), not whatever `python3` is on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = builder.master(settings.spark_master).config("spark.jars", ",".join(local_jars()))
        for key, value in settings.spark_options.items():
            builder = builder.config(key, value)
    else:
        # The launcher's settings win; ours apply only where it said nothing.
        from pyspark import SparkConf

        launched = SparkConf()
        for key, value in settings.spark_options.items():
            if not launched.contains(key):
                builder = builder.config(key, value)
    builder = (
        builder.config("spark.sql.extensions", DELTA_EXTENSION)
        .config("spark.sql.catalog.spark_catalog", DELTA_CATALOG)
        # Session time zone pinned to UTC: run dates and event times must not depend on the host.
        .config("spark.sql.session.timeZone", "UTC")
    )
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    _require_delta(spark)
    spark.sparkContext.setCheckpointDir(f"{settings.checkpoint_dir}/spark")
    return spark


def _require_delta(spark: SparkSession) -> None:
    jvm = spark.sparkContext._jvm
    try:
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        jvm.java.lang.Class.forName(DELTA_EXTENSION, False, loader)
    except Exception as exc:  # py4j wraps ClassNotFoundException
        raise SessionError(
            f"Delta classes are not on the Spark classpath ({exc.__class__.__name__}). Embedded: run "
            f"`make jars`. spark-submit: pass --packages {DELTA_COORDINATE} or --jars .jars/*.jar."
        ) from None
