"""Spark -> Parquet -> torch batches: the hand-off between the Spark job and the training processes.

Why Parquet files in between (and not ``toPandas`` or a Spark-side iterator): training runs in
TorchDistributor processes that have no SparkSession, possibly on other machines, for many epochs.
Parquet written once by Spark is read by each rank directly (pyarrow, no JVM), sharded by row
group, for as many epochs as needed.

Two ways to produce the files:

* :func:`write_training_parquet` -- the default: an explicit path under ``ml.work_dir``, a known
  number of files (row groups are the unit of Petastorm sharding, so a dataset with fewer row
  groups than ranks leaves a rank without data), and a path to log with the run.
* :func:`spark_converter` -- Petastorm's ``make_spark_converter``, which caches the DataFrame as
  Parquet keyed by its plan. Its cache directory (``SparkDatasetConverter.PARENT_CACHE_DIR_URL_CONF``)
  must be a *URL* (``file:///...``, ``dbfs:/...``, ``hdfs://...``): the same string is handed to
  Spark's writer and to pyarrow's reader in the training processes, and a bare path would be
  resolved by each against its own default filesystem (Spark's may be HDFS) -- Petastorm refuses a
  scheme-less value for that reason. ``file://`` is right only where every rank shares the local
  disk (local mode, one node); a cluster needs shared storage.

Reading: :func:`petastorm_batches` (``make_batch_reader`` + ``petastorm.pytorch.BatchedDataLoader``)
for training, :func:`memory_loader` (torch ``TensorDataset``) as the in-memory reference that the
loader benchmark compares against, and :func:`read_arrays` for evaluation/scoring.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from libs.ml.sequences import SequenceSpec
from libs.platform.config import Settings

log = logging.getLogger(__name__)

TRAIN_FIELDS = ("seq", "seq_len", "labels")


def as_url(path: str | Path) -> str:
    """A local path as a ``file://`` URL; URLs (anything with ``://`` or ``dbfs:/``) pass through."""
    text = str(path)
    if "://" in text or text.startswith("dbfs:"):
        return text
    return Path(text).expanduser().resolve().as_uri()


def work_url(settings: Settings, *parts: str) -> str:
    """URL of ``parts`` under the environment's ``ml.work_dir`` (training Parquet, converter cache, rank results)."""
    root = str(settings.section("ml")["work_dir"])
    if "://" in root or root.startswith("dbfs:"):
        return "/".join([root.rstrip("/"), *parts])
    return as_url(Path(root).joinpath(*parts))


def local_path(url: str | Path) -> str:
    """Filesystem path of a ``file://`` URL (percent-decoded); other strings pass through."""
    from urllib.parse import unquote, urlparse

    text = str(url)
    return unquote(urlparse(text).path) if text.startswith("file://") else text


_VIOLATION = "sequence contract violated"


def write_training_parquet(df: DataFrame, path: str | Path, spec: SequenceSpec, num_files: int = 8,
                           mode: str = "overwrite") -> str:
    """Write contract rows as Parquet for Petastorm; returns the dataset's ``file://`` (or given) URL.

    Checks the contract on the way out (array lengths, ``seq_len`` range) because a wrong length
    otherwise surfaces as Petastorm's "lists of different lengths" deep inside a training rank.
    The check runs in the writing job itself (``raise_error`` on the first bad row), so the input
    is computed once; a violation raises ValueError and removes the partial output (local paths).
    ``num_files`` should be a multiple of the largest rank count that will read the dataset: one
    file is one row group at these sizes, and Petastorm shards by row group. Columns are cast to
    the contract's types (float arrays, int length) so that readers see one schema.
    """
    missing = [c for c in ("seq", "seq_len", "labels") if c not in df.columns]
    if missing:
        raise ValueError(f"training rows lack columns {missing} (have {df.columns})")
    keep = [c for c in ("creator_id", "market") if c in df.columns]
    seq_len = F.col("seq_len").cast("int")
    bad = ((F.size("seq") != spec.flat_len) | (F.size("labels") != spec.n_labels) | seq_len.isNull()
           | (seq_len < 1) | (seq_len > spec.max_len))
    detail = F.concat_ws(" ", F.lit(f"{_VIOLATION} (seq size {spec.flat_len}, labels size {spec.n_labels}, "
                                    f"seq_len 1..{spec.max_len}); first bad row: seq size"),
                         F.size("seq").cast("string"), F.lit("labels size"), F.size("labels").cast("string"),
                         F.lit("seq_len"), F.coalesce(seq_len.cast("string"), F.lit("null")))
    typed = df.select(*keep, F.when(bad, F.raise_error(detail)).otherwise(F.col("seq").cast("array<float>"))
                      .alias("seq"), seq_len.alias("seq_len"), F.col("labels").cast("array<float>").alias("labels"))
    url = write_checked(typed, path, num_files, mode, _VIOLATION, max_chars=300)
    log.info("wrote training Parquet to %s (%d files)", url, num_files)
    return url


def write_checked(df: DataFrame, path: str | Path, num_files: int, mode: str, violation: str,
                  max_chars: int) -> str:
    """Write ``df`` (whose columns ``raise_error`` a message starting with ``violation`` on a bad
    row) as ``num_files`` Parquet files; returns the URL.

    A contract violation surfaces as a ValueError carrying the first ``max_chars`` of that message
    (not Spark's stack trace), and the partial output is removed (local paths) so a half-written
    dataset is never read as a complete one. Every other failure is re-raised as is.
    """
    url = as_url(path)
    try:
        df.repartition(num_files).write.mode(mode).parquet(url)
    except Exception as exc:                                      # noqa: BLE001 -- re-raised below
        text = str(exc)
        if violation not in text:
            raise
        if url.startswith("file://"):
            shutil.rmtree(local_path(url), ignore_errors=True)
        start = text.index(violation)
        raise ValueError(text[start:start + max_chars].split("SQLSTATE")[0].strip()) from None
    return url


def spark_converter(spark: SparkSession, df: DataFrame, cache_dir: str | Path):
    """Petastorm ``SparkDatasetConverter`` for ``df``, caching under ``cache_dir`` (made a URL, see module doc).

    Use ``converter.make_torch_dataloader(batch_size=..., num_epochs=..., cur_shard=..., shard_count=...)``
    in the ranks and ``converter.delete()`` when done (the cache is not removed automatically).
    """
    from petastorm.spark import SparkDatasetConverter, make_spark_converter

    url = as_url(cache_dir)
    if url.startswith("file://"):
        Path(local_path(url)).mkdir(parents=True, exist_ok=True)
    spark.conf.set(SparkDatasetConverter.PARENT_CACHE_DIR_URL_CONF, url)
    return make_spark_converter(df)


def _writable_tensor(values: np.ndarray) -> torch.Tensor:
    # Arrow hands out read-only buffers; torch warns on (and must not write into) those, so copy
    # exactly then -- a batch-sized copy, small next to the decoding.
    return torch.as_tensor(np.require(values, requirements="W"))


def _to_batch(batch: dict, spec: SequenceSpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    seq = batch["seq"].to(torch.float32).reshape(-1, spec.max_len, spec.n_features)
    return seq, batch["seq_len"].to(torch.int64), batch["labels"].to(torch.float32)


def petastorm_batches(dataset_url: str | Path, spec: SequenceSpec, batch_size: int = 256, num_epochs: int | None = 1,
                      shuffle: bool = False, cur_shard: int | None = None, shard_count: int | None = None,
                      seed: int | None = None, workers_count: int = 2,
                      shuffle_buffer_rows: int = 4096) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Batches ``(seq (B, L, F) float32, seq_len (B,) int64, labels (B, K) float32)`` read with Petastorm.

    ``cur_shard``/``shard_count``: this rank's share of the row groups (pass RANK and WORLD_SIZE
    inside TorchDistributor); each row is read by exactly one shard per epoch. ``shuffle`` shuffles
    row-group order, rows inside a row group and a ``shuffle_buffer_rows`` buffer across row groups
    (seeded by ``seed``); off, nothing is shuffled, though with ``workers_count > 1`` row groups
    arrive in whichever order the reader threads finish them (use ``read_arrays`` for a fixed order).
    ``num_epochs=None`` reads forever (the caller counts steps). The last batch may be short.
    A generator: the reader's threads are stopped when it is exhausted or closed.

    Why ``BatchedDataLoader`` and not ``petastorm.pytorch.DataLoader``: with a batch reader the
    latter collates row by row in Python; the batched one moves whole columns into tensors.
    """
    from petastorm import make_batch_reader
    from petastorm.pytorch import BatchedDataLoader

    if (cur_shard is None) != (shard_count is None):
        raise ValueError("cur_shard and shard_count go together")
    reader = make_batch_reader(as_url(dataset_url), schema_fields=list(TRAIN_FIELDS), num_epochs=num_epochs,
                               shuffle_row_groups=shuffle, shuffle_rows=shuffle, seed=seed,
                               cur_shard=cur_shard, shard_count=shard_count,
                               reader_pool_type="thread", workers_count=workers_count)
    loader = BatchedDataLoader(reader, batch_size=batch_size, transform_fn=_writable_tensor,
                               shuffling_queue_capacity=shuffle_buffer_rows if shuffle else 0)
    with loader:
        for batch in loader:
            yield _to_batch(batch, spec)


def read_arrays(dataset_url: str | Path, spec: SequenceSpec,
                columns: tuple[str, ...] = ("creator_id", "market")) -> dict[str, np.ndarray]:
    """The whole dataset as numpy: ``seq`` (N, L, F), ``seq_len``, ``labels`` (N, K) and ``columns``.

    For evaluation and the in-memory loader. Flattens the list columns through Arrow (one buffer,
    no per-row Python) and checks every list has the contract's length before reshaping.
    """
    table = pq.read_table(local_path(dataset_url), columns=[*TRAIN_FIELDS, *[c for c in columns if c]])
    out: dict[str, np.ndarray] = {}
    for name, width in (("seq", spec.flat_len), ("labels", spec.n_labels)):
        col = table.column(name).combine_chunks()
        lengths = pc_list_lengths(col)
        if len(lengths) and (lengths.min() != width or lengths.max() != width):
            raise ValueError(f"column {name}: every list must have {width} values, found {sorted(set(lengths))[:5]}")
        # Writable (copied only if Arrow's buffer is read-only): torch refuses to share read-only memory.
        values = np.require(col.flatten().to_numpy(zero_copy_only=False), dtype=np.float32, requirements="W")
        out[name] = values.reshape(len(col), width)
    out["seq"] = out["seq"].reshape(-1, spec.max_len, spec.n_features)
    out["seq_len"] = table.column("seq_len").to_numpy().astype(np.int64)
    for c in columns:
        if c:
            out[c] = np.asarray(table.column(c).to_pylist(), dtype=object)
    return out


def pc_list_lengths(col: pa.Array) -> np.ndarray:
    """Per-row list lengths (nulls count as 0, which then fails the length check)."""
    import pyarrow.compute as pc

    return pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)


def memory_loader(seq: np.ndarray, seq_len: np.ndarray, labels: np.ndarray, batch_size: int = 256,
                  shuffle: bool = False, seed: int = 0) -> torch.utils.data.DataLoader:
    """The reference loader: the same tensors from memory via ``TensorDataset``/``DataLoader``.

    It is the ceiling Petastorm is measured against (no decoding, no I/O); use it for data that
    fits in memory, Petastorm for data that does not or that must be sharded across processes.
    """
    ds = torch.utils.data.TensorDataset(torch.as_tensor(seq, dtype=torch.float32),
                                        torch.as_tensor(seq_len, dtype=torch.int64),
                                        torch.as_tensor(labels, dtype=torch.float32))
    gen = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=gen)
