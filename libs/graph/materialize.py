"""Materialise each round of an iterative graph algorithm as Parquet.

Iterative DataFrame algorithms grow their logical plan every round; without cutting lineage the
optimiser time explodes after a few dozen rounds. GraphFrames used RDD checkpoints for this, and
its users report connected components silently going wrong when a checkpoint write failed. Here
every round is an explicit Parquet write followed by a read of what was written: a failed write
raises at once, and the next round provably starts from bytes on storage (GraphFrames >= 0.10.1
does the same). The round folders live under the session's checkpoint dir and are deleted when
the algorithm finishes (successfully or not), unless ``keep=True`` for debugging.
"""
from __future__ import annotations

import uuid
from types import TracebackType

from pyspark.sql import DataFrame, SparkSession


class CheckpointDirMissing(RuntimeError):
    pass


def checkpoint_root(spark: SparkSession) -> str:
    root = spark.sparkContext.getCheckpointDir()
    if not root:
        raise CheckpointDirMissing(
            "iterative graph algorithms need a checkpoint dir: build the session with "
            "libs.platform.session.get_spark or call sparkContext.setCheckpointDir(...)"
        )
    return root.rstrip("/")


class RoundStore:
    """Context manager that writes DataFrames to unique Parquet folders and reads them back."""

    def __init__(self, spark: SparkSession, label: str, keep: bool = False) -> None:
        self.spark = spark
        self.root = f"{checkpoint_root(spark)}/graph-rounds/{label}-{uuid.uuid4().hex[:12]}"
        self.keep = keep
        self.writes = 0

    def put(self, df: DataFrame, name: str) -> DataFrame:
        """Write ``df`` (fails loudly) and return a DataFrame over exactly the written files."""
        path = f"{self.root}/{self.writes:04d}-{name}"
        df.write.mode("errorifexists").parquet(path)
        self.writes += 1
        return self.spark.read.parquet(path)

    def cleanup(self) -> None:
        jvm = self.spark.sparkContext._jvm
        hadoop_path = jvm.org.apache.hadoop.fs.Path(self.root)
        fs = hadoop_path.getFileSystem(self.spark.sparkContext._jsc.hadoopConfiguration())
        fs.delete(hadoop_path, True)

    def __enter__(self) -> "RoundStore":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.keep:
            self.cleanup()
