"""Perceptual frame hashing (libs.quality.phash) on real images shipped with matplotlib.

The images are matplotlib's sample data (a photo, two RGBA graphics, and three numeric arrays --
a DEM, a topography/bathymetry grid, an MRI slice -- rendered to 8-bit grey), so the tests need
no download and no fixture files. Expected values never come from the code under test:

* bit layout, DCT convention and orientation: an image *synthesised* from the 256 DCT basis
  functions with chosen signs must hash to the hex string built here from those signs, and the
  DCT is checked against ``scipy.fft.dctn`` -- an independent implementation;
* quality: a two-level image whose gradient sum is computed by hand;
* robustness: each re-recording transform must keep every image within ``MAX_DISTANCE[t]`` of
  its original. Thresholds are the maxima measured by ``benchmarks/eval_phash.py`` plus a margin
  of 8 bits (~3 % of the hash; Pillow/libjpeg versions move a few bits), capped at PDQ's usual
  match threshold of 31 -- a copy beyond it would not be matched in production anyway;
* transforms the hash does *not* survive (5 % crop each side, 2-3 degree rotation) are marked
  ``xfail`` with their measured distances, so the limitation is visible in every run, not hidden.

The transforms and image loaders are module-level so ``benchmarks/eval_phash.py`` measures
exactly what these tests assert.
"""
from __future__ import annotations

import gzip
import io
import itertools
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from matplotlib.cbook import get_sample_data
from PIL import Image

from libs.quality.phash import (_jarosz_matrix, frame_fingerprints, hamming_hex, hash_image_bytes, pdq_hash,
                                video_fingerprint)

PDQ_MATCH = 31          # PDQ's customary match threshold, out of 256 bits
DISTINCT_MIN = 80       # unrelated images must be further apart than this (measured minimum: 108)
Transform = Callable[[np.ndarray], np.ndarray]


# -- sample images ---------------------------------------------------------------------------------

def _sample(name: str) -> str:
    return str(get_sample_data(name, asfileobj=False))


def _grey8(a: np.ndarray) -> np.ndarray:
    """A numeric array rendered as an 8-bit grey RGB image (min-max stretched, as a viewer would)."""
    a = a.astype(np.float64)
    a = np.round((a - a.min()) / (a.max() - a.min()) * 255.0).astype(np.uint8)
    return np.repeat(a[:, :, None], 3, axis=2)


def _on_white(name: str) -> np.ndarray:
    img = Image.open(_sample(name)).convert("RGBA")
    return np.asarray(Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img).convert("RGB"))


def mri_raw() -> np.ndarray:
    """``s1045.ima.gz``: a 256 x 256 MRI slice, raw big-endian uint16."""
    with gzip.open(_sample("s1045.ima.gz")) as fh:
        return np.frombuffer(fh.read(), ">u2").reshape(256, 256)


def sample_images() -> dict[str, np.ndarray]:
    """Name -> uint8 RGB array of every usable image in matplotlib's sample data."""
    return {
        "grace_hopper": np.asarray(Image.open(_sample("grace_hopper.jpg")).convert("RGB")),   # 600 x 512 photo
        "logo2": _on_white("logo2.png"),                                 # 130 x 542 RGBA logo
        "minduka": _on_white("Minduka_Present_Blue_Pack.png"),           # 128 x 128 RGBA icon
        "jacksboro_dem": _grey8(np.load(_sample("jacksboro_fault_dem.npz"))["elevation"]),   # 344 x 403
        "topobathy": _grey8(np.load(_sample("topobathy.npz"))["topo"]),   # 91 x 120
        "mri_s1045": _grey8(mri_raw()),                                  # 256 x 256, black background
    }


# -- re-recording transforms -----------------------------------------------------------------------

def _pil(a: np.ndarray, f: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    return np.asarray(f(Image.fromarray(a)))


def rescale(k: float) -> Transform:
    return lambda a: _pil(a, lambda im: im.resize((max(1, round(im.width * k)), max(1, round(im.height * k))),
                                                  Image.Resampling.BICUBIC))


def crop(share: float) -> Transform:
    """Cut ``share`` of the height/width off each side (a zoomed re-recording)."""
    def f(a: np.ndarray) -> np.ndarray:
        dy, dx = round(a.shape[0] * share), round(a.shape[1] * share)
        return a[dy:a.shape[0] - dy, dx:a.shape[1] - dx]
    return f


def gamma(g: float) -> Transform:
    return lambda a: np.round(255.0 * (a / 255.0) ** g).astype(np.uint8)


def jpeg(quality: int) -> Transform:
    def f(a: np.ndarray) -> np.ndarray:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "JPEG", quality=quality)
        return np.asarray(Image.open(buf).convert("RGB"))
    return f


def rotate(degrees: float) -> Transform:
    """Tilted camera: rotation about the centre, same frame size, black corners."""
    return lambda a: _pil(a, lambda im: im.rotate(degrees, Image.Resampling.BICUBIC, expand=False,
                                                  fillcolor=(0, 0, 0)))


def letterbox(share: float) -> Transform:
    """Black bars of ``share`` of the height above and below (re-encoded to a wider aspect ratio)."""
    def f(a: np.ndarray) -> np.ndarray:
        bar = np.zeros((round(a.shape[0] * share), a.shape[1], 3), np.uint8)
        return np.concatenate([bar, a, bar])
    return f


def border(share: float) -> Transform:
    """A black frame of ``share`` of the height/width on every side (picture in a black canvas)."""
    def f(a: np.ndarray) -> np.ndarray:
        dy, dx = round(a.shape[0] * share), round(a.shape[1] * share)
        return np.pad(a, ((dy, dy), (dx, dx), (0, 0)))
    return f


def noise(sigma: float, seed: int = 0) -> Transform:
    def f(a: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return np.clip(a + rng.normal(0.0, sigma, a.shape), 0, 255).astype(np.uint8)
    return f


def chain(*fs: Transform) -> Transform:
    def f(a: np.ndarray) -> np.ndarray:
        for g in fs:
            a = g(a)
        return a
    return f


TRANSFORMS: dict[str, Transform] = {
    "scale_0.5": rescale(0.5), "scale_2": rescale(2.0), "crop_5pct": crop(0.05),
    "gamma_0.7": gamma(0.7), "gamma_1.4": gamma(1.4), "jpeg_q40": jpeg(40),
    "rotate_2": rotate(2.0), "rotate_3": rotate(3.0),
    "letterbox_8pct": letterbox(0.08), "border_8pct": border(0.08),
    "noise_s8": noise(8.0), "noise_s16": noise(16.0),
    "letterbox+noise+jpeg": chain(letterbox(0.08), noise(8.0), jpeg(40)),
}
# Measured worst case over the six images (benchmarks/eval_phash.py) + 8 bits, capped at PDQ_MATCH.
MEASURED_MAX = {"scale_0.5": 24, "scale_2": 22, "gamma_0.7": 12, "gamma_1.4": 12, "jpeg_q40": 10,
                "letterbox_8pct": 2, "border_8pct": 12, "noise_s8": 10, "noise_s16": 26,
                "letterbox+noise+jpeg": 10}
MAX_DISTANCE = {t: min(PDQ_MATCH, m + 8) for t, m in MEASURED_MAX.items()}
# Not survived: per image 72-118 bits (crop), 20-108 bits (rotation) -- as far as unrelated images.
FRAGILE = ("crop_5pct", "rotate_2", "rotate_3")


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    return sample_images()


@pytest.fixture(scope="module")
def hashes(images: dict[str, np.ndarray]) -> dict[str, tuple[str, int]]:
    return {name: pdq_hash(a) for name, a in images.items()}


def _bits_to_hex(bits: list[int]) -> str:
    """Reference encoder: bit 0 is the most significant bit of the first hex digit."""
    return f"{int(''.join(map(str, bits)), 2):064x}"


# -- format, determinism, layout -------------------------------------------------------------------

def test_real_images_hash_to_64_hex_digits_with_half_the_bits_set(images, hashes):
    for name, (fp, quality) in hashes.items():
        assert len(fp) == 64 and set(fp) <= set("0123456789abcdef"), name
        # Median threshold over 256 distinct coefficients: exactly 128 above it.
        assert bin(int(fp, 16)).count("1") == 128, name
        assert isinstance(quality, int) and 50 <= quality <= 100, (name, quality)   # PDQ's "good" range
        assert pdq_hash(images[name].copy()) == (fp, quality), name                  # deterministic


def test_bit_layout_matches_a_synthesised_dct_pattern():
    # A 64 x 64 image made of the DCT basis functions (frequencies 1..16) with chosen signs: its
    # coefficients are +-1, so bit 16u+v must be 1 exactly where the sign of (u+1, v+1) is +.
    signs = np.random.default_rng(42).permutation([1] * 128 + [-1] * 128).reshape(16, 16)
    n = np.arange(64)
    basis = [np.sqrt(2 / 64) * np.cos(np.pi * (2 * n + 1) * k / 128) for k in range(1, 17)]
    img = 128.0 + 3.0 * sum(signs[u, v] * np.outer(basis[u], basis[v]) * 64 for u in range(16) for v in range(16))
    expected = _bits_to_hex([1 if s > 0 else 0 for s in signs.ravel()])
    assert pdq_hash(img, trim_bars=False)[0] == expected
    # Transposing the image transposes the frequencies: a row/column mix-up would not notice.
    assert pdq_hash(img.T, trim_bars=False)[0] == _bits_to_hex([1 if s > 0 else 0 for s in signs.T.ravel()])


def test_dct_agrees_with_scipy():
    from scipy.fft import dctn

    from libs.quality.phash import _dct_rows

    block = np.random.default_rng(1).normal(size=(64, 64))
    d = _dct_rows()
    assert np.allclose(d @ block @ d.T, dctn(block, type=2, norm="ortho")[1:17, 1:17])
    full = _dct_rows(64, 0, 64)
    assert np.allclose(full @ full.T, np.eye(64))


def test_jarosz_matrix_is_two_box_passes_then_centre_sampling():
    # Naive reference: explicit loops, centred box of width ceil(n / 128), mean of in-bounds pixels.
    n, width = 300, 3
    x = np.random.default_rng(2).normal(size=n)

    def box(v: np.ndarray) -> np.ndarray:
        return np.array([v[max(0, i - 1):min(n, i + 2)].mean() for i in range(n)])

    expected = box(box(x))[[int((i + 0.5) * n / 64) for i in range(64)]]
    assert width == -(-n // 128)
    assert np.allclose(_jarosz_matrix(n) @ x, expected)
    assert np.allclose(_jarosz_matrix(1080).sum(axis=1), 1.0)          # a weighted mean: flat stays flat


def test_brightness_and_contrast_do_not_change_the_hash(images):
    y = images["grace_hopper"].astype(np.float64)
    assert pdq_hash(0.5 * y + 40.0, trim_bars=False)[0] == pdq_hash(y, trim_bars=False)[0]


# -- quality -----------------------------------------------------------------------------------------

def test_quality_is_the_gradient_sum_and_flat_frames_score_zero():
    # Two levels 50 | 200 on a 64 x 64 frame (no resampling at that size): 64 horizontal steps of
    # int(100 * 150 / 255) = 58, no vertical ones -> 64 * 58 // 90 = 41.
    two_level = np.full((64, 64), 50.0)
    two_level[:, 32:] = 200.0
    assert pdq_hash(two_level, trim_bars=False)[1] == 41
    black = np.zeros((480, 640, 3), np.uint8)
    grey = np.full((480, 640, 3), 128, np.uint8)
    grey_noisy = noise(1.0)(grey)
    assert [pdq_hash(a)[1] for a in (black, grey, grey_noisy)] == [0, 0, 0]


# -- robustness to re-recording ------------------------------------------------------------------------

@pytest.mark.parametrize("transform", list(MAX_DISTANCE))
def test_copies_stay_within_the_measured_threshold(images, hashes, transform):
    distances = {name: hamming_hex(hashes[name][0], pdq_hash(TRANSFORMS[transform](a))[0])
                 for name, a in images.items()}
    assert max(distances.values()) <= MAX_DISTANCE[transform], distances


@pytest.mark.parametrize("transform", FRAGILE)
@pytest.mark.xfail(reason="a global DCT hash is not crop/rotation invariant: measured up to 90-118 bits",
                   strict=False)
def test_crop_and_rotation_copies_are_not_matched(images, hashes, transform):
    distances = {name: hamming_hex(hashes[name][0], pdq_hash(TRANSFORMS[transform](a))[0])
                 for name, a in images.items()}
    assert max(distances.values()) <= PDQ_MATCH, distances


def test_letterbox_bars_are_trimmed_and_matter_without_trimming(images):
    photo = images["grace_hopper"]
    boxed = letterbox(0.12)(photo)
    assert pdq_hash(boxed)[0] == pdq_hash(photo)[0]          # exact bars, no dark edge in the photo
    assert hamming_hex(pdq_hash(boxed, trim_bars=False)[0], pdq_hash(photo, trim_bars=False)[0]) > PDQ_MATCH
    # A mostly black frame is not zoomed into (bars may not leave under a quarter of an axis).
    patch = np.zeros((480, 640, 3), np.uint8)
    patch[200:240, 300:340] = 255
    assert pdq_hash(patch) == pdq_hash(patch, trim_bars=False)


def test_distinct_images_are_far_apart(hashes):
    for (a, (fa, _)), (b, (fb, _)) in itertools.combinations(hashes.items(), 2):
        assert hamming_hex(fa, fb) > DISTINCT_MIN, (a, b)


# -- decoding --------------------------------------------------------------------------------------------

def _png(a: np.ndarray, **save: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG", **save)
    return buf.getvalue()


def test_bytes_are_decoded_as_displayed(images):
    photo = images["grace_hopper"]
    assert hash_image_bytes(_png(photo)) == pdq_hash(photo)                    # lossless: identical
    # Stored rotated 90 degrees counter-clockwise with EXIF orientation 6 ("rotate 90 CW to display").
    exif = Image.Exif()
    exif[0x0112] = 6
    assert hash_image_bytes(_png(np.rot90(photo).copy(), exif=exif)) == pdq_hash(photo)
    # RGBA is seen over white, 16-bit grey keeps its precision, palette and grey modes convert.
    rgba = np.asarray(Image.open(_sample("Minduka_Present_Blue_Pack.png")).convert("RGBA"))
    assert hash_image_bytes(_png(rgba)) == pdq_hash(images["minduka"])
    raw16 = mri_raw().astype(np.uint16)
    assert hash_image_bytes(_png(raw16)) == pdq_hash(raw16)
    grey = images["jacksboro_dem"][:, :, 0]
    assert hash_image_bytes(_png(grey)) == pdq_hash(grey)
    pal = Image.fromarray(photo).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    buf = io.BytesIO()
    pal.save(buf, "PNG")
    assert hamming_hex(hash_image_bytes(buf.getvalue())[0], pdq_hash(photo)[0]) <= 10   # 256-colour quantised


def test_undecodable_bytes_raise_value_error():
    jpg = Path(_sample("grace_hopper.jpg")).read_bytes()
    for bad in (b"", b"not an image at all", jpg[: len(jpg) // 2], b"\x89PNG\r\n\x1a\n" + b"\0" * 40):
        with pytest.raises(ValueError, match="undecodable image"):
            hash_image_bytes(bad)


def test_hamming_hex_counts_bits_and_checks_the_format():
    base = "0123456789abcdef" * 4
    assert hamming_hex(base, base) == 0
    assert hamming_hex("0" * 64, "f" * 64) == 256
    assert hamming_hex("0" * 64, "8" + "0" * 62 + "1") == 2
    for bad in ("0" * 63, "0" * 65, "F" * 64, "g" * 64, None):
        with pytest.raises(ValueError, match="64 lowercase hex"):
            hamming_hex(base, bad)  # type: ignore[arg-type]


def test_video_fingerprint_is_the_bitwise_majority():
    ones, zeros, half = "f" * 64, "0" * 64, "f" * 32 + "0" * 32
    assert video_fingerprint([ones, zeros, half]) == half          # per bit, 2 of 3 votes
    assert video_fingerprint([half]) == half
    assert video_fingerprint([ones, zeros]) == zeros               # an even split is 0
    # Two outlier frames (a cut, a black frame) among five do not move the video's fingerprint.
    x = "0123456789abcdef" * 4
    assert video_fingerprint([x, ones, x, zeros, x]) == x
    with pytest.raises(ValueError, match="at least one"):
        video_fingerprint([])
    with pytest.raises(ValueError, match="lowercase hex"):
        video_fingerprint([x, "xyz"])


# -- Spark --------------------------------------------------------------------------------------------

def _frames_dir(root: Path) -> dict[str, bytes]:
    """3 images (photo, icon, black frame) + 1 corrupt file under ``root`` (one in a sub-folder)."""
    files = {
        "hopper.jpg": Path(_sample("grace_hopper.jpg")).read_bytes(),
        "shots/minduka.png": Path(_sample("Minduka_Present_Blue_Pack.png")).read_bytes(),
        "black.png": _png(np.zeros((90, 160, 3), np.uint8)),
        "broken.jpg": Path(_sample("grace_hopper.jpg")).read_bytes()[:3000],
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "README.txt").write_text("not a frame")   # not matched by the job's glob
    return files


def test_frame_fingerprints_on_spark_reconcile(spark, tmp_path):
    files = _frames_dir(tmp_path)
    df = (spark.read.format("binaryFile").option("recursiveFileLookup", "true")
          .option("pathGlobFilter", "*.{jpg,png}").load(str(tmp_path)))
    accepted, quarantine = frame_fingerprints(df, min_quality=20)
    acc = {r["path"].rsplit("/", 1)[-1]: r for r in accepted.collect()}
    quar = {r["path"].rsplit("/", 1)[-1]: r["reason"] for r in quarantine.collect()}
    assert len(acc) + len(quar) == len(files)                 # every file accounted for, once
    assert quar == {"black.png": "low_quality_frame", "broken.jpg": "undecodable_image"}
    assert set(acc) == {"hopper.jpg", "minduka.png"}
    for name, rel in (("hopper.jpg", "hopper.jpg"), ("minduka.png", "shots/minduka.png")):
        assert (acc[name]["fingerprint"], acc[name]["quality"]) == hash_image_bytes(files[rel])  # as on the driver
        assert acc[name]["bytes"] == len(files[rel])
    with pytest.raises(ValueError, match="min_quality"):
        frame_fingerprints(df, min_quality=101)


@pytest.mark.slow
def test_job_writes_both_tables_of_the_day(spark, settings, tmp_path, monkeypatch):
    """One run (re-run idempotence is ``replace_partition``'s, tested in ``tests/unit/test_delta_io.py``)."""
    import datetime as dt

    import jobs.frame_fingerprints as job
    from libs.platform import delta_io

    monkeypatch.setenv("CGOV__LAKEHOUSE_ROOT", settings.lakehouse_root)
    _frames_dir(tmp_path)                                  # + README.txt, which the job's glob skips
    day = "2026-11-03"
    summary = job.main(run_date=dt.date.fromisoformat(day), env="local", frames_dir=str(tmp_path))
    assert (summary["files"], summary["accepted"], summary["quarantined"]) == (4, 2, 2)
    assert summary["reasons"] == {"low_quality_frame": 1, "undecodable_image": 1}
    table = delta_io.read_dates(spark, settings.table("frame_fingerprints"), day, day)
    assert sorted(r["path"].rsplit("/", 1)[-1] for r in table.where("fingerprint rlike '^[0-9a-f]{64}$'")
                  .collect()) == ["hopper.jpg", "minduka.png"]
