"""Perceptual hash evaluation: distance of re-recorded copies vs unrelated images, and hashing throughput.

For every sample image of matplotlib's sample data and every re-recording transform of
``tests/unit/quality/test_phash.py`` (the same loaders and transforms, imported from there so the
numbers are those the tests assert), prints the Hamming distance between the image's hash and its
copy's, per image and as mean/max -- with the black-bar trim (the default) and without it (plain
PDQ) -- then the distances between distinct images, the separation margin (closest unrelated
pair minus farthest copy), and the hashing throughput on this CPU. Not a test: no assertion,
pure numpy/Pillow, no Spark.

    .venv/bin/python benchmarks/eval_phash.py [--repeats 20]

Measured (2 shared AMD EPYC cores at load average ~9-10 from other work; pillow 13.0, numpy 1.26):

    transform               hopper   logo2 minduka     dem topobat     mri   mean  max  max(no trim)
    scale_0.5                   12      24      20      20      18      16   18.3   24    24
    scale_2                      2      22       8      12      20      10   12.3   22    22
    crop_5pct                  118      90      84      82      96      72   90.3  118   114
    gamma_0.7                    6       4      12      10       6      12    8.3   12    16
    gamma_1.4                    8       4       8      12       4      12    8.0   12    12
    jpeg_q40                     2       2       6       0      10       2    3.7   10    10
    rotate_2                    38      90      52      40      60      20   50.0   90    90
    rotate_3                    54     108      60      60      78      32   65.3  108   108
    letterbox_8pct               0       0       0       0       0       2    0.3    2   100
    border_8pct                  0       0       0       0       0      12    2.0   12   122
    noise_s8                     2       0       4       0      10       4    3.3   10    10
    noise_s16                    2       0      10       4      26       2    7.3   26    26
    letterbox+noise+jpeg         2       2       8       2      10       6    5.0   10    96

    distinct images (15 pairs): min 108, mean 127.2, max 144 (no trim: min 108)
    separation margin, survived transforms: 108 - 26 = 82 bits (PDQ match threshold 31)
    not survived: crop_5pct 72-118 bits, rotate_2 20-90 bits, rotate_3 32-108 bits

    throughput: pdq_hash 1920x1080 RGB array 10.8-12.6 frames/s; hash_image_bytes 1920x1080
    JPEG q90 (draft decode at 1/2 scale) 22-32 images/s; the 6 sample images 158-232 images/s

Reading: rescale, gamma, JPEG 40, noise and black bars stay <= 26 bits (under PDQ's 31) while
unrelated images are >= 108 apart. A 5 % crop on each side and a 2-3 degree rotation move the
hash of most images as far as an unrelated one (a global DCT is neither crop- nor rotation-invariant): such
copies need other features (local descriptors, several crops per frame), not a looser threshold.
Without the black-bar trim (plain PDQ) letterbox/border copies are 96-122 bits away. Throughput
ranges are from three runs under that shared load (best of three rounds each): expect more on
an idle core. The distance table is exact for these library versions (Pillow's resampling and
libjpeg move a few bits).
"""
from __future__ import annotations

import argparse
import io
import itertools
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))     # ``tests`` is not part of the installed package

from libs.quality.phash import hamming_hex, hash_image_bytes, pdq_hash  # noqa: E402
from tests.unit.quality.test_phash import PDQ_MATCH, TRANSFORMS, sample_images  # noqa: E402

SHORT = {"grace_hopper": "hopper", "logo2": "logo2", "minduka": "minduka", "jacksboro_dem": "dem",
         "topobathy": "topobat", "mri_s1045": "mri"}


def distances(images: dict[str, np.ndarray], trim: bool) -> dict[str, dict[str, int]]:
    """transform -> image -> Hamming distance between the image's hash and its copy's."""
    base = {name: pdq_hash(a, trim)[0] for name, a in images.items()}
    return {t: {name: hamming_hex(base[name], pdq_hash(f(a), trim)[0]) for name, a in images.items()}
            for t, f in TRANSFORMS.items()}


def distinct(images: dict[str, np.ndarray], trim: bool) -> list[int]:
    base = {name: pdq_hash(a, trim)[0] for name, a in images.items()}
    return [hamming_hex(base[a], base[b]) for a, b in itertools.combinations(base, 2)]


def rate(fn: Callable[[], object], repeats: int) -> float:
    """Calls per second of ``fn`` (best of three rounds of ``repeats``: the least disturbed by load)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, time.perf_counter() - started)
    return repeats / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="calls per throughput round")
    args = parser.parse_args()

    images = sample_images()
    trimmed, plain = distances(images, True), distances(images, False)
    names = list(images)
    print(f"{'transform':<22}" + "".join(f"{SHORT.get(n, n)[:7]:>8}" for n in names)
          + f"{'mean':>7}{'max':>5}  max(no trim)")
    for t, row in trimmed.items():
        values = [row[n] for n in names]
        print(f"{t:<22}" + "".join(f"{v:>8}" for v in values)
              + f"{statistics.mean(values):>7.1f}{max(values):>5}{max(plain[t].values()):>6}")

    far, far_plain = distinct(images, True), distinct(images, False)
    print(f"\ndistinct images ({len(far)} pairs): min {min(far)}, mean {statistics.mean(far):.1f}, "
          f"max {max(far)} (no trim: min {min(far_plain)})")
    survived = {t: max(row.values()) for t, row in trimmed.items() if max(row.values()) <= PDQ_MATCH}
    failed = {t: (min(row.values()), max(row.values())) for t, row in trimmed.items() if t not in survived}
    worst = max(survived.values())
    print(f"separation margin, survived transforms: {min(far)} - {worst} = {min(far) - worst} bits "
          f"(PDQ match threshold {PDQ_MATCH})")
    print("not survived (max > threshold): "
          + ", ".join(f"{t} {lo}-{hi} bits" for t, (lo, hi) in failed.items()))

    photo = Image.fromarray(images["grace_hopper"]).resize((1920, 1080), Image.Resampling.BICUBIC)
    frame = np.asarray(photo)
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=90)
    jpeg_bytes = buf.getvalue()
    pdq_hash(frame)                               # warm the per-size filter matrices
    print("\nthroughput (this process):")
    print(f"  pdq_hash, 1920x1080 RGB array:         {rate(lambda: pdq_hash(frame), args.repeats):7.1f} frames/s")
    print(f"  hash_image_bytes, 1920x1080 JPEG q90:  {rate(lambda: hash_image_bytes(jpeg_bytes), args.repeats):7.1f}"
          " images/s (decode included)")
    arrays = list(images.values())
    per_round = rate(lambda: [pdq_hash(a) for a in arrays], max(1, args.repeats // 4))
    print(f"  pdq_hash, the {len(arrays)} sample images:        {per_round * len(arrays):7.1f} images/s")


if __name__ == "__main__":
    main()
