"""Distributed training through Spark's TorchDistributor, with results that cannot silently go missing.

Why not just use ``TorchDistributor.run``'s return value: it is the pickled return value of
whichever rank finished *last*, not of rank 0, and we measured a rank aborting at interpreter exit
(after training, during torch/gloo teardown) in about 1 run in 6 without ``run()`` raising. A
return value is therefore neither the model we want nor proof that every rank finished.

So the contract here is files: every rank writes ``rank-<RANK>.pt`` atomically (``torch.save`` to
a temporary name in the same directory, then ``os.replace``, so a rank dying mid-write leaves no
half file that would pass a check) into a fresh directory per attempt (a late-writing rank of a
failed attempt cannot satisfy the next attempt's check). :func:`run_distributed` then requires one
file per rank and a loadable rank-0 file, retries the whole run up to ``attempts`` times with a
log line saying why, and otherwise raises naming the missing ranks.

Ranks are separate interpreters started by ``torchrun`` that unpickle the training function *by
reference* (``module.function``); :func:`run_distributed` puts the roots of this package and of
the function's package on the ranks' ``PYTHONPATH`` so that works from a source checkout too.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

log = logging.getLogger(__name__)

RESULT_NAME = "rank-{rank}.pt"
# Tells the ranks whether run_distributed was asked for GPUs: with use_gpu=False on a GPU machine,
# TorchDistributor does not assign GPUs to ranks, so they must stay on the CPU (gloo).
USE_GPU_ENV = "CGOV_ML_USE_GPU"

# Hyper-parameters of train_sequence_model; an unknown key is an error (a typo would otherwise train defaults).
SEQUENCE_HPARAMS: dict[str, Any] = {
    "kind": "gru", "hidden": 64, "layers": 1, "dropout": 0.1, "heads": 4,
    "lr": 3e-3, "weight_decay": 0.0, "epochs": 5, "batch_size": 256, "seed": 0,
    "pos_weight": None,          # list of K floats; None: negatives/positives per label from the data (capped)
    "pos_weight_cap": 100.0, "device": "auto", "reader_workers": 2,
}


def resolve_hparams(hparams: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with ``hparams``; unknown keys raise."""
    unknown = sorted(set(hparams or {}) - set(SEQUENCE_HPARAMS))
    if unknown:
        raise ValueError(f"unknown hyper-parameters {unknown}; known: {sorted(SEQUENCE_HPARAMS)}")
    return {**SEQUENCE_HPARAMS, **(hparams or {})}


def rank_env() -> tuple[int, int, int]:
    """``(RANK, WORLD_SIZE, LOCAL_RANK)`` as set by torchrun; ``(0, 1, 0)`` outside a distributed run."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def write_rank_result(result_dir: str | Path, payload: Mapping[str, Any], rank: int | None = None) -> Path:
    """Atomically write this rank's result (``torch.save``) as ``result_dir/rank-<rank>.pt``.

    Keep payloads to tensors, numbers, strings, lists and dicts: they are read back with
    ``torch.load(weights_only=True)``, which refuses arbitrary pickles.
    """
    import torch

    rank = rank_env()[0] if rank is None else rank
    folder = Path(result_dir)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / RESULT_NAME.format(rank=rank)
    tmp = folder / f".{final.name}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        torch.save(dict(payload), fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    return final


def load_rank_result(result_dir: str | Path, rank: int = 0) -> dict[str, Any]:
    """A rank's result, tensors on the CPU."""
    import torch

    return torch.load(Path(result_dir) / RESULT_NAME.format(rank=rank), map_location="cpu", weights_only=True)


@dataclass(frozen=True)
class DistributedResult:
    """Outcome of :func:`run_distributed`: rank 0's payload and where every rank's file is."""

    rank0: dict[str, Any]
    files: dict[int, Path]
    attempt: int
    result_dir: Path


def missing_ranks(result_dir: str | Path, world_size: int) -> list[int]:
    """Ranks in ``0..world_size-1`` without a result file in ``result_dir``."""
    folder = Path(result_dir)
    return [r for r in range(world_size) if not (folder / RESULT_NAME.format(rank=r)).is_file()]


def _package_root(module_name: str) -> Path | None:
    """Directory to put on sys.path so that ``module_name`` imports (None for __main__/built-ins)."""
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if not file or module_name == "__main__":
        return None
    path = Path(file).resolve()
    depth = module_name.count(".") + (1 if path.name == "__init__.py" else 0)
    return path.parents[depth]


@contextlib.contextmanager
def _rank_environment(module_names: tuple[str, ...], extra: Mapping[str, str]) -> Iterator[None]:
    """Temporarily set variables the torchrun ranks inherit: package roots prepended to PYTHONPATH, ``extra``."""
    roots = [str(r) for r in (_package_root(m) for m in module_names) if r is not None]
    old_path = os.environ.get("PYTHONPATH")
    parts = list(dict.fromkeys(roots + (old_path.split(os.pathsep) if old_path else [])))
    changes = {"PYTHONPATH": os.pathsep.join(parts), **extra}
    saved = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_distributed(train_fn: Callable[..., Any], *args: Any, num_processes: int, use_gpu: bool,
                    result_dir: str | Path, attempts: int = 2, local_mode: bool = True,
                    **kwargs: Any) -> DistributedResult:
    """Run ``train_fn(*args, result_dir=<attempt dir>, **kwargs)`` on ``num_processes`` ranks; verify every rank's file.

    ``train_fn`` must be importable by reference (a module-level function) and must write its
    result with :func:`write_rank_result` into the ``result_dir`` it is given, on every rank.
    Each attempt gets ``result_dir/attempt-<n>``. Needs an active SparkSession (TorchDistributor
    reads its conf). ``use_gpu`` with ``local_mode`` needs the driver's GPUs declared to Spark
    (``spark.driver.resource.gpu.amount`` + discovery script); TorchDistributor then gives each
    rank its own GPU through CUDA_VISIBLE_DEVICES and may lower ``num_processes`` to the GPU count.
    Returns rank 0's payload; raises RuntimeError naming the missing ranks after ``attempts`` tries.
    """
    from pyspark.ml.torch.distributor import TorchDistributor

    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    base = Path(result_dir)
    last_error: BaseException | None = None
    missing: list[int] = []
    for attempt in range(1, attempts + 1):
        folder = base / f"attempt-{attempt}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        distributor = TorchDistributor(num_processes=num_processes, local_mode=local_mode, use_gpu=use_gpu)
        world = distributor.num_processes           # may have been lowered to the available GPUs
        started = time.perf_counter()
        last_error = None
        try:
            with _rank_environment((__name__, train_fn.__module__), {USE_GPU_ENV: "1" if use_gpu else "0"}):
                distributor.run(train_fn, *args, result_dir=str(folder), **kwargs)
        except Exception as exc:                     # noqa: BLE001 -- a crashed rank also shows up as missing files
            last_error = exc
        missing = missing_ranks(folder, world)
        rank0: dict[str, Any] | None = None
        if 0 not in missing:
            try:
                rank0 = load_rank_result(folder, 0)
            except Exception as exc:                 # noqa: BLE001 -- unreadable counts as missing
                last_error, missing = exc, sorted({*missing, 0})
        seconds = time.perf_counter() - started
        if not missing and rank0 is not None:
            if last_error is not None:
                # Every rank wrote a readable result, yet run() raised: the known abort at interpreter
                # exit comes after the results are written, so the results stand.
                log.warning("distributed run attempt %d/%d raised after every rank wrote its result; keeping "
                            "the results (%s: %s)", attempt, attempts, type(last_error).__name__, last_error)
            log.info("distributed run complete: %d rank(s), attempt %d/%d, %.1fs, results in %s",
                     world, attempt, attempts, seconds, folder)
            return DistributedResult(rank0=rank0, files={r: folder / RESULT_NAME.format(rank=r) for r in range(world)},
                                     attempt=attempt, result_dir=folder)
        why = f"ranks {missing} of {world} wrote no (readable) result"
        if last_error is not None:
            why += f"; run() raised {type(last_error).__name__}: {str(last_error)[:500]}"
        if attempt < attempts:
            log.warning("distributed run attempt %d/%d incomplete after %.1fs (%s); retrying the whole run",
                        attempt, attempts, seconds, why)
        else:
            raise RuntimeError(f"distributed training failed after {attempts} attempt(s): missing ranks {missing} "
                               f"of {world} in {folder} ({why})") from last_error
    raise AssertionError("unreachable")


def train_sequence_model(parquet_path: str, spec_dict: Mapping[str, Any], hparams: Mapping[str, Any] | None,
                         result_dir: str) -> None:
    """One rank of sequence-model training: Petastorm shard -> (DDP) SequenceClassifier -> result file.

    Reads this rank's row groups (``cur_shard=RANK``, ``shard_count=WORLD_SIZE``), reshuffled each
    epoch; wraps the model in DistributedDataParallel when there is more than one rank (gloo on
    CPU, nccl on GPU) and trains inside ``join()``, because shards of unequal size give ranks
    unequal batch counts and plain DDP would then wait forever for the rank that ran out.
    Evaluates nothing (the caller owns the hold-out); writes ``{rank, world_size, state_dict,
    config, history, spec, hparams, pos_weight}``. Returns None: see the module docstring.
    """
    import numpy as np
    import pyarrow.parquet as pq
    import torch
    import torch.distributed as dist

    from libs.ml.petastorm_io import local_path, petastorm_batches
    from libs.ml.seqmodel import SequenceClassifier, positive_weights, train_epochs
    from libs.ml.sequences import SequenceSpec

    rank, world, local_rank = rank_env()
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=f"%(asctime)s [rank {rank}] %(name)s: %(message)s")
        # Petastorm logs at INFO that a Spark-written dataset has no Petastorm metadata (expected here).
        logging.getLogger("petastorm").setLevel(logging.WARNING)
    # Petastorm 0.12 uses pyarrow's legacy ParquetDataset and warns about it on every reader, from
    # every reader thread; the pin (pyarrow < 15) is the project's, the rank's log need not repeat it.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm(\.|$)")
    hp = resolve_hparams(hparams)
    spec = SequenceSpec.from_dict(spec_dict)
    use_cuda = (torch.cuda.is_available() and hp["device"] in ("auto", "cuda")
                and os.environ.get(USE_GPU_ENV, "1") != "0")
    device = torch.device(f"cuda:{local_rank}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    distributed = world > 1
    if distributed:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    try:
        torch.manual_seed(int(hp["seed"]))
        model = SequenceClassifier(spec.n_features, spec.n_labels, hidden=int(hp["hidden"]), kind=hp["kind"],
                                   layers=int(hp["layers"]), dropout=float(hp["dropout"]), max_len=spec.max_len,
                                   heads=int(hp["heads"])).to(device)
        if hp["pos_weight"] is not None:
            pos_weight = np.asarray(hp["pos_weight"], dtype=np.float32)
        else:
            # Every rank reads the (small) labels column of the whole dataset, so all agree on the weights.
            labels = pq.read_table(local_path(parquet_path), columns=["labels"]).column("labels").combine_chunks()
            pos_weight = positive_weights(labels.flatten().to_numpy().reshape(len(labels), spec.n_labels),
                                          cap=float(hp["pos_weight_cap"]))
        trained: torch.nn.Module = model
        epoch_context: Callable[[], contextlib.AbstractContextManager] | None = None
        if distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ddp = DDP(model, device_ids=[local_rank] if use_cuda else None)
            trained, epoch_context = ddp, ddp.join

        def loader_fn(epoch: int):
            return petastorm_batches(parquet_path, spec, batch_size=int(hp["batch_size"]), num_epochs=1, shuffle=True,
                                     cur_shard=rank if distributed else None,
                                     shard_count=world if distributed else None,
                                     seed=int(hp["seed"]) + epoch, workers_count=int(hp["reader_workers"]))

        history = train_epochs(trained, loader_fn, epochs=int(hp["epochs"]), lr=float(hp["lr"]), pos_weight=pos_weight,
                               device=device, weight_decay=float(hp["weight_decay"]), epoch_context=epoch_context)
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        write_rank_result(result_dir, {"rank": rank, "world_size": world, "state_dict": state,
                                       "config": model.config(), "history": history, "spec": spec.to_dict(),
                                       "hparams": {k: v for k, v in hp.items()},
                                       "pos_weight": [float(x) for x in pos_weight]})
        log.info("rank %d/%d wrote its result to %s", rank, world, result_dir)
    finally:
        if distributed and dist.is_initialized():
            dist.destroy_process_group()
