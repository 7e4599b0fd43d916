"""Perceptual frame hashing, PDQ-style: the 256-bit fingerprints :mod:`libs.quality.fingerprints` matches.

A fingerprint is 64 lowercase hex digits (256 bits), the format of ``silver_videos.fingerprint``.
The pipeline follows Meta's PDQ (``pdq/hashing.pdf``) step by step, in plain numpy:

1. **Luminance** ``Y = 0.299 R + 0.587 G + 0.114 B`` (BT.601, PDQ's weights), float64 on the
   0..255 scale. Colour is dropped on purpose: re-recordings shift colour far more than structure.
   Black bars along the edges are cut off first (``trim_bars``, see :func:`_trim_bars`): an
   addition to PDQ, because letterboxing is the commonest change a re-upload makes.
2. **Low-pass, then decimate to 64 x 64** with a *Jarosz filter*: two passes of a centred box
   filter of width ``ceil(n / 128)`` per axis (two boxes = a tent, support ~ one output pixel),
   then sampling at the output pixel centres. Why not a plain resize: sampling without a
   low-pass aliases fine texture (noise, JPEG blocks, moire of a filmed screen) into the low
   frequencies the hash is made of; a box of the full ratio (area resize) still leaks more than a
   tent. Filter + decimation is linear and separable: a cached ``64 x n`` matrix per axis, applied
   as two matrix products (any size, no dependency). Not bit-compatible with the
   reference PDQ (its box phase and the 512-pixel pre-scale differ), only the same design.
3. **2-D DCT-II** of the 64 x 64 block with an orthonormal DCT matrix built here, keeping the
   16 x 16 *lowest non-DC* frequencies (rows/columns 1..16, as PDQ does). Why skip DC: it is only
   the mean brightness, which gamma/exposure changes move. Without it, and because the threshold
   below is a median, steps 2-4 are exactly invariant to any brightness/contrast change
   ``Y -> a Y + b`` with ``a > 0`` (gamma, being non-linear, moves a few bits).
4. **Median threshold**: bit = coefficient > median of the 256 coefficients. Why the median and not
   zero/mean: it splits the bits 128/128 for every non-flat image, which maximises the entropy of
   each bit and makes the distance between unrelated images concentrate near 128.

**Bit order** (what the hex string means): bit ``k = 16 * u + v`` holds the coefficient of
vertical frequency ``u + 1`` and horizontal frequency ``v + 1`` (``u, v`` in 0..15, row-major);
bit 0 is the most significant bit of the first hex digit (the convention of the tests of
:mod:`libs.quality.fingerprints`). Hamming distance does not depend on the order, but the band
join does: bands of this layout are groups of whole frequency rows.

**Quality** (0..100) is PDQ's gradient sum: the sum over the 64 x 64 luminance of
``int(100 * |neighbour difference| / 255)``, horizontally and vertically, divided by 90 and
capped at 100. A flat or near-flat frame (black screen, fade, solid title card) scores ~0: its
DCT coefficients are rounding noise, so its bits are arbitrary and would match other flat frames
at random -- such frames must be dropped, not matched. PDQ's reference treats < 50 as weak; the
job's default cut (20) only drops near-flat frames, a starting point to tune on real frames.

The Spark transform hashes ``binaryFile`` rows with ``mapInPandas`` (decode + hash are Python;
Arrow batches amortise the JVM <-> Python hop) and splits them into accepted fingerprints and a
quarantine with a reason, reconciling exactly with the input.
"""
from __future__ import annotations

import io
from functools import lru_cache
from typing import Iterator

import numpy as np
import pandas as pd
from PIL import Image, ImageOps
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType

HASH_BITS = 256
HEX_DIGITS = HASH_BITS // 4
SIDE = 64                  # side of the low-passed luminance block the DCT sees
KEEP = 16                  # DCT frequencies kept per axis (1..16): 16 x 16 = 256 bits
LUMA = np.array([0.299, 0.587, 0.114])
# JPEG frames larger than this are decoded at a reduced DCT scale (Pillow ``draft``): the hash only
# needs 64 x 64, a 1/2..1/8 scale decode is several times faster and is itself low-passed.
DRAFT_SIDE = 512
# Black-bar detection (``_trim_bars``), on gamma-normalised luminance 0..255.
BAR_LIT = 32.0             # a segment mean above this is lit (twice the video black level)
BAR_SEGMENTS = 16          # a line is cut into this many segments; a bar has no lit one
BAR_MIN_KEEP = 0.25        # never trim an axis to less than this share of its length
REASON_UNDECODABLE = "undecodable_image"
REASON_LOW_QUALITY = "low_quality_frame"

_HASHED = StructType([
    StructField("path", StringType(), False),
    StructField("fingerprint", StringType(), True),   # null when the file did not decode
    StructField("quality", IntegerType(), True),
    StructField("bytes", LongType(), False),
    StructField("error", StringType(), True),        # the decoder's message when it did not decode
])


@lru_cache(maxsize=None)
def _dct_rows(n: int = SIDE, first: int = 1, count: int = KEEP) -> np.ndarray:
    """Rows ``first .. first+count-1`` of the orthonormal ``n``-point DCT-II matrix.

    ``D[k, j] = c_k cos(pi (2j + 1) k / (2n))`` with ``c_0 = sqrt(1/n)``, ``c_k = sqrt(2/n)``, so
    the full ``D`` is orthogonal (``D @ D.T == I``): coefficient magnitudes are comparable across
    frequencies and the transform is its own well-conditioned inverse (tested).
    """
    k = np.arange(first, first + count)[:, None]
    j = np.arange(n)[None, :]
    scale = np.where(k == 0, np.sqrt(1.0 / n), np.sqrt(2.0 / n))
    return scale * np.cos(np.pi * (2 * j + 1) * k / (2 * n))


def _jarosz_window(n_in: int, n_out: int = SIDE) -> int:
    """Box width ``ceil(n_in / (2 n_out))``: two passes make a tent about one output pixel wide."""
    return max(1, (n_in + 2 * n_out - 1) // (2 * n_out))


def _box_windows(n: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``[lo, hi)`` of the centred box of ``width`` around each of ``n`` positions, clipped to the edges."""
    start = np.arange(n) - (width - 1) // 2
    return np.clip(start, 0, n), np.clip(start + width, 0, n)


@lru_cache(maxsize=64)
def _jarosz_matrix(n: int, n_out: int = SIDE) -> np.ndarray:
    """``n_out x n`` matrix ``S B B``: two box passes ``B`` then sampling ``S`` at the output centres.

    ``B`` averages the centred window of ``_jarosz_window(n)`` pixels, truncated at the borders
    (edge pixels average only their in-bounds part: zero padding would darken the border and put
    a frame-shaped edge into the low frequencies). The filter and the decimation are linear, so the
    whole step is this matrix, built once per frame size (video frames share one) and applied as
    ``M_rows @ Y @ M_cols.T`` -- two BLAS products instead of four passes over the frame. Rows are
    built right to left: ``e_s^T B`` is a box row, and ``v^T B`` (the adjoint of the box) spreads
    each ``v_i / count_i`` over window ``i`` with a difference array.
    """
    width = _jarosz_window(n, n_out)
    lo, hi = _box_windows(n, width)
    rows = ((np.arange(n_out) + 0.5) * n / n_out).astype(int)   # output pixel centres
    m = np.zeros((n_out, n))
    m[np.arange(n_out), rows] = 1.0
    for _ in range(2):
        diff = np.zeros((n_out, n + 1))
        weights = m / (hi - lo)
        np.add.at(diff, (slice(None), lo), weights)
        np.add.at(diff, (slice(None), hi), -weights)
        m = np.cumsum(diff, axis=1)[:, :n]
    return m


def _downsample(y: np.ndarray) -> np.ndarray:
    """Jarosz low-pass and decimation of luminance ``y`` to ``SIDE x SIDE``."""
    return _jarosz_matrix(y.shape[0]) @ y @ _jarosz_matrix(y.shape[1]).T


def _luminance(image: np.ndarray) -> np.ndarray:
    """Float64 luminance on the 0..255 scale from an ``H x W`` or ``H x W x {1,3,4}`` array."""
    a = np.asarray(image)
    if a.ndim not in (2, 3) or a.size == 0 or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise ValueError(f"expected an H x W (grey) or H x W x 3 (RGB) image, got shape {a.shape}")
    if a.dtype.kind not in "uifb":
        raise ValueError(f"expected a real-valued image, got dtype {a.dtype}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError("image contains NaN or infinite values")
    scale = {np.dtype(np.uint16): 255.0 / 65535.0, np.dtype(bool): 255.0}.get(a.dtype, 1.0)
    if a.ndim == 3 and a.shape[2] >= 3:   # alpha (a 4th channel) ignored: composite it before hashing
        # Weighted sum straight from the input dtype: no full-frame float copy of all three channels.
        y = a[:, :, 0] * (LUMA[0] * scale) + a[:, :, 1] * (LUMA[1] * scale) + a[:, :, 2] * (LUMA[2] * scale)
    else:
        y = (a if a.ndim == 2 else a[:, :, 0]).astype(np.float64) * scale
    return y.astype(np.float64, copy=False)


def _bar_lines(y: np.ndarray, axis: int, threshold: float) -> np.ndarray:
    """Per line (reduced over ``axis``): True when none of its ``BAR_SEGMENTS`` segment means exceeds ``threshold``.

    Averaging segments takes sensor noise and JPEG ringing out of a bar (a per-pixel maximum would
    call a noisy bar lit); segments are a fixed *fraction* of the line, so a rescaled copy averages
    the same content and reaches the same decision (1/16 of a 1080p row is 120 pixels: noise / 11).
    The last segment absorbs the remainder of the division.
    """
    n = y.shape[axis]
    starts = np.unique(np.arange(BAR_SEGMENTS) * n // BAR_SEGMENTS)
    lengths = np.diff(np.append(starts, n))
    sums = np.add.reduceat(y, starts, axis=axis)
    means = sums / (lengths[None, :] if axis == 1 else lengths[:, None])
    return ~(means > threshold).any(axis=axis)


def _run(flags: np.ndarray) -> int:
    """Length of the leading run of True in ``flags``."""
    return int(np.argmin(flags)) if not flags.all() else len(flags)


def _trim_bars(y: np.ndarray) -> np.ndarray:
    """``y`` without the black bars along its edges (letterbox, pillarbox, black frame border).

    Why: the DCT is global, so bars shift and rescale the content inside the 64 x 64 block and a
    letterboxed copy lands ~50-120 bits away -- as far as an unrelated video. Bars are what
    re-encoding to another aspect ratio adds, so they are removed before hashing (standard in video
    fingerprinting). A line (row or column) is a bar when each of its ``BAR_SEGMENTS`` segments
    averages at most ``BAR_LIT`` (twice the video black level 16) on the gamma-normalised
    luminance: segment means, not pixels, so sensor noise and JPEG ringing in a bar do not make it
    content; segments, not the whole line, so a dark content line with one lit detail is kept.
    Only black bars: white margins (a logo on a page) are content to a viewer.
    An axis whose bars would leave under ``BAR_MIN_KEEP`` of it is left whole: a mostly black
    frame is a low-quality frame to flag, not something to zoom into.

    Known limit: content that fades into black (a night sky, an MRI on black) has no sharp bar
    edge, so a transform can move the cut by a few lines (the MRI sample: up to 16 bits).
    The constants were picked among a few round values on the six sample images of the tests
    (``benchmarks/eval_phash.py``: 16 segments beat 32/64 and pixel-sized ones on the MRI's
    fading edge), not fitted to a corpus of real frames: re-check them on real re-uploads.
    """
    h, w = y.shape
    # Gamma normalisation: z = 255 (y/255)^g with g mapping the median of the central quarter
    # (never a bar, see BAR_MIN_KEEP) to mid-grey; a gamma-changed copy normalises to the same z,
    # so its bars are cut at the same lines. Only the threshold is mapped back to y (z > BAR_LIT
    # <=> y > 255 (BAR_LIT/255)^(1/g)): no per-pixel power. g is clipped for white/black centres.
    centre = float(np.clip(np.median(y[h // 4:h - h // 4 or None, w // 4:w - w // 4 or None]), 1.0, 254.0))
    g = float(np.clip(np.log(0.5) / np.log(centre / 255.0), 0.25, 4.0))
    threshold = 255.0 * (BAR_LIT / 255.0) ** (1.0 / g)
    rows = _bar_lines(y, 1, threshold)
    top, bottom = _run(rows), _run(rows[::-1])
    if h - top - bottom >= BAR_MIN_KEEP * h:
        y = y[top:h - bottom]
    cols = _bar_lines(y, 0, threshold)
    left, right = _run(cols), _run(cols[::-1])
    if w - left - right >= BAR_MIN_KEEP * w:
        y = y[:, left:w - right]
    return y


def _quality(block: np.ndarray) -> int:
    """PDQ's quality: truncated gradient sum of the 64 x 64 luminance / 90, capped at 100."""
    dv = np.floor(np.abs(np.diff(block, axis=0)) * 100.0 / 255.0).sum()
    dh = np.floor(np.abs(np.diff(block, axis=1)) * 100.0 / 255.0).sum()
    return int(min(100, (dv + dh) // 90))


def _bits_to_hex(bits: np.ndarray) -> str:
    """256 booleans, bit 0 first, -> 64 lowercase hex digits (bit 0 = MSB of the first digit)."""
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


def pdq_hash(image: np.ndarray, trim_bars: bool = True) -> tuple[str, int]:
    """``(fingerprint, quality)`` of one image: 64 lowercase hex digits and a 0..100 score.

    ``image``: ``H x W`` greyscale or ``H x W x 3`` RGB (a 4th, alpha, channel is ignored), values
    on the 0..255 scale (uint8 or float; uint16 is rescaled from 0..65535, bool is 0/255). Any
    size >= 1 x 1; below 128 pixels per side there is no low-pass (box width 1) and below 64 the
    block is upsampled (nearest), so small images hash less robustly. ``trim_bars=False`` gives
    the plain PDQ pipeline. Deterministic: float64 numpy, no randomness. Design: module docstring.
    """
    y = _luminance(image)
    block = _downsample(_trim_bars(y) if trim_bars else y)
    d = _dct_rows()
    coefs = d @ block @ d.T                       # 16 x 16: vertical freq 1..16 x horizontal 1..16
    flat = coefs.ravel()                          # row-major: bit k = 16 u + v
    return _bits_to_hex(flat > np.median(flat)), _quality(block)


def _to_array(img: Image.Image) -> np.ndarray:
    """Decoded Pillow image -> 0..255 array (RGB or grey) with what a viewer would see.

    Transparency is composited over white (a transparent logo is shown on a page, not over the
    arbitrary colours stored under alpha 0); 16-bit and float greyscale keep their precision
    instead of being clipped to 8 bits by ``convert``.
    """
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img, dtype=np.float64) * (255.0 / 65535.0)
    if img.mode in ("I", "F"):
        a = np.asarray(img, dtype=np.float64)
        top = float(a.max()) if a.size else 0.0
        return a * (255.0 / (65535.0 if top <= 65535.0 else top)) if top > 255.0 else a
    if img.mode in ("L", "RGB"):
        return np.asarray(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info) \
            or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))          # P, 1, CMYK, YCbCr, LAB, HSV, ...


def hash_image_bytes(data: bytes) -> tuple[str, int]:
    """``pdq_hash`` of an encoded image (JPEG, PNG, anything Pillow reads).

    EXIF orientation is applied first (a phone frame stored sideways with a rotate tag must hash
    as it is displayed). Raises ``ValueError("undecodable image: ...")`` for bytes that are not a
    complete image: the decoders of untrusted files raise many exception types (OSError for
    truncation, SyntaxError, struct errors, DecompressionBombError, ...), all normalised here so
    callers have one thing to catch.
    """
    if not data:
        raise ValueError("undecodable image: empty input")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format == "JPEG" and max(img.size) > DRAFT_SIDE:
                img.draft(img.mode, (DRAFT_SIDE, DRAFT_SIDE))  # keeps >= DRAFT_SIDE per side
            img.load()
            array = _to_array(ImageOps.exif_transpose(img))
    except Exception as exc:  # noqa: BLE001 - see docstring: normalised to one error type
        raise ValueError(f"undecodable image: {type(exc).__name__}: {exc}") from exc
    return pdq_hash(array)


def _check_hex(fp: str, name: str) -> int:
    if not isinstance(fp, str) or len(fp) != HEX_DIGITS or fp.strip("0123456789abcdef"):
        raise ValueError(f"{name} must be {HEX_DIGITS} lowercase hex digits, got {fp!r}")
    return int(fp, 16)


def hamming_hex(a: str, b: str) -> int:
    """Hamming distance of two 64-lowercase-hex-digit fingerprints (ValueError on another format)."""
    return (_check_hex(a, "a") ^ _check_hex(b, "b")).bit_count()


def video_fingerprint(frame_hashes: list[str]) -> str:
    """One fingerprint for a video: the bitwise majority vote of its sampled frames' hashes.

    Why a majority: it is the 256-bit string minimising the *sum of Hamming distances* to the
    frames (each bit independently), i.e. the Hamming-space median. A re-recording samples other
    instants of the same shots, so its frames scatter around the same centre; a median, unlike
    picking one frame, absorbs that jitter and a minority of outlier frames (a cut, a watermark
    flash). Ties (an even number of frames split evenly) give 0, deterministically. Drop
    low-quality frames first: a run of black frames would otherwise vote as a block.
    """
    if not frame_hashes:
        raise ValueError("video_fingerprint needs at least one frame hash")
    votes = np.zeros(HASH_BITS, dtype=np.int64)
    for i, fp in enumerate(frame_hashes):
        _check_hex(fp, f"frame_hashes[{i}]")
        votes += np.unpackbits(np.frombuffer(bytes.fromhex(fp), dtype=np.uint8))
    return _bits_to_hex(2 * votes > len(frame_hashes))


def _hash_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """mapInPandas body: one output row per input file, a decode failure becomes ``error``."""
    for pdf in batches:
        out = []
        for path, content in zip(pdf["path"], pdf["content"]):
            data = bytes(content) if content is not None else b""
            try:
                fp, quality = hash_image_bytes(data)
                out.append((path, fp, quality, len(data), None))
            except ValueError as exc:
                out.append((path, None, None, len(data), str(exc)[:500]))
        yield pd.DataFrame(out, columns=_HASHED.fieldNames()).astype({"quality": "Int32"})


def hash_files(files: DataFrame) -> DataFrame:
    """``binaryFile`` rows -> ``path, fingerprint, quality, bytes, error`` (one row per file, lazy).

    ``bytes`` is the length of ``content`` actually hashed. Callers that evaluate the result more
    than once (two table writes) should persist it: the hashing is the expensive part.
    """
    return files.select("path", "content").mapInPandas(_hash_batches, _HASHED)


def split_frames(hashed: DataFrame, min_quality: int) -> tuple[DataFrame, DataFrame]:
    """``(accepted, quarantine)`` of :func:`hash_files` output; every row lands in exactly one.

    The two predicates are complements (decoded and quality >= ``min_quality``, or not), so
    ``accepted + quarantine == input`` holds by construction. Undecodable comes first: a file
    that did not decode has no quality.
    """
    if not 0 <= min_quality <= 100:
        raise ValueError(f"min_quality must be in 0..100 (PDQ quality scale), got {min_quality}")
    ok = F.col("error").isNull() & (F.col("quality") >= min_quality)
    accepted = hashed.where(ok).select("path", "fingerprint", "quality", "bytes")
    quarantine = hashed.where(~ok).select(
        "path",
        F.when(F.col("error").isNotNull(), F.lit(REASON_UNDECODABLE))
         .otherwise(F.lit(REASON_LOW_QUALITY)).alias("reason"))
    return accepted, quarantine


def frame_fingerprints(files: DataFrame, min_quality: int) -> tuple[DataFrame, DataFrame]:
    """Hash ``spark.read.format("binaryFile")`` output: ``(accepted, quarantine)``.

    ``accepted``: ``path, fingerprint, quality, bytes``; ``quarantine``: ``path, reason`` with
    reason ``undecodable_image`` or ``low_quality_frame`` (quality < ``min_quality``). Lazy: each
    returned frame re-runs the hashing when evaluated; a job writing both uses
    :func:`hash_files`, persists, then :func:`split_frames` (what this composes).
    """
    return split_frames(hash_files(files), min_quality)
