"""The monitor's image: photon counts with quantum noise, detector blur, edge enhancement, the
window and the field, from what the detector sees (line integrals).

Each frame is two fused passes over its pixels (numba, parallel) instead of a dozen whole-image
numpy operations, which keeps a live frame within a few milliseconds. Quantum noise is drawn from a
fixed bank of standard normals (made once from a fixed seed) read at an offset and stride chosen by
the frame's own seed, so every frame's noise is its own (white noise read from elsewhere in the
bank), the same on any machine, and costs a gather instead of a fresh draw.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit, prange
from scipy import ndimage

from simulator.imaging.kernel_lock import KERNEL_LOCK

#: Photons per pixel before the patient when no exposure is given (about a single acquisition's):
#: sets the quantum noise. The simulation passes each exposure's own (see :mod:`.dose`).
PHOTONS_PER_PIXEL = 4.0e5
#: Size of the noise bank (a power of two: any odd stride visits every entry once per cycle), 16
#: times a 512 x 512 frame.
_NOISE_BANK_SIZE = 1 << 22
#: Grey-level response (gamma 1.15) as a table over [0, 1] (a power per pixel costs more than a
#: lookup).
_GAMMA_LUT = np.linspace(0.0, 1.0, 4097, dtype=np.float32) ** 1.15
#: The detector's blur: ~ a Gaussian of 0.6 px, as a 3-tap kernel (centre weight).
_BLUR_CENTRE = 0.66
#: Unsharp mask (the edge enhancement every C-arm's processing applies): gain and low-pass size.
_UNSHARP_GAIN = 0.8
_UNSHARP_FACTOR = 4


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    return np.random.default_rng(20261124).standard_normal(_NOISE_BANK_SIZE, dtype=np.float32)


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _measure(total, scatter, subtract, photons, bank, offset, stride, out):
    rows, cols = total.shape
    mask = bank.size - 1
    for r in prange(rows):
        for c in range(cols):
            a = min(max(total[r, c], np.float32(0.0)), np.float32(30.0))
            transmitted = np.exp(-a)
            if scatter.shape[0] > 1:
                transmitted += scatter[r, c]
            expected = photons * transmitted
            k = (offset + (r * cols + c) * stride) & mask
            counts = expected + np.sqrt(expected) * bank[k]
            value = -np.log(max(counts, np.float32(0.5)) / photons)
            if subtract.shape[0] > 1:
                value -= subtract[r, c]  # the mask is an average of frames: its own noise is small
            out[r, c] = value


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _blur_rows_then_cols(src, tmp, out, centre):
    rows, cols = src.shape
    side = (np.float32(1.0) - centre) * np.float32(0.5)
    for r in prange(rows):
        for c in range(cols):
            tmp[r, c] = centre * src[r, c] + side * (src[r, max(c - 1, 0)] + src[r, min(c + 1, cols - 1)])
    for r in prange(rows):
        up = max(r - 1, 0)
        down = min(r + 1, rows - 1)
        for c in range(cols):
            out[r, c] = centre * tmp[r, c] + side * (tmp[up, c] + tmp[down, c])


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _coarse_mean(src, factor, out):
    nr, nc = out.shape
    scale = np.float32(1.0 / (factor * factor))
    for i in prange(nr):
        for j in range(nc):
            acc = np.float32(0.0)
            for a in range(factor):
                for b in range(factor):
                    acc += src[i * factor + a, j * factor + b]
            out[i, j] = acc * scale


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _to_grey(measured, wide, factor, gain, lo, hi, lut, field, out):
    rows, cols = measured.shape
    nr, nc = wide.shape
    scale = np.float32(4096.0) / (hi - lo)
    for r in prange(rows):
        i = min(r // factor, nr - 1)
        for c in range(cols):
            m = measured[r, c]
            v = m + gain * (m - wide[i, min(c // factor, nc - 1)])
            index = min(max((hi - v) * scale, np.float32(0.0)), np.float32(4096.0))
            out[r, c] = np.uint8(lut[int(index)] * field[r, c] + np.float32(0.5))


def _frame_noise_position(noise_seed) -> tuple[int, int]:
    """Offset and odd stride (1-15: the reads stay close in memory) into the noise bank for a
    frame's seed."""
    rng = np.random.default_rng(list(noise_seed))
    return int(rng.integers(0, _NOISE_BANK_SIZE)), 2 * int(rng.integers(0, 8)) + 1


def display_chain(total: np.ndarray, window: tuple[float, float], noise_seed,
                  photons_per_pixel: float = PHOTONS_PER_PIXEL, iris_fraction: float = 1.0,
                  subtract: np.ndarray | None = None, square: bool = False,
                  scatter: np.ndarray | None = None, shutter_fraction: float = 1.0) -> np.ndarray:
    """Line integrals to monitor grey levels (uint8), with quantum noise at ``photons_per_pixel``
    (unattenuated; ``noise_seed``: a tuple of ints naming the frame), blur, the circular field and
    the iris (``iris_fraction`` of the field's diameter; nothing reaches the detector outside it).
    ``scatter``: scattered photons per pixel as a fraction of the unattenuated beam (they add to
    the counts and their noise, and veil the contrast). ``subtract``: a subtraction run's mask (what
    the detector measured then). ``shutter_fraction``: the width left open between the shutter
    blades.

    The counts are Poisson in distribution; they are drawn as its normal approximation (exact to
    well under a grey level at the tens of photons and more a pixel gets here).
    """
    total = np.ascontiguousarray(total, dtype=np.float32)
    rows, cols = total.shape
    none = np.zeros((1, 1), np.float32)
    offset, stride = _frame_noise_position(noise_seed)
    measured = np.empty_like(total)
    blurred = np.empty_like(measured)
    f = _UNSHARP_FACTOR if min(rows, cols) >= 2 * _UNSHARP_FACTOR else 1
    coarse = np.empty((rows // f, cols // f), np.float32)
    with KERNEL_LOCK:
        _measure(total, none if scatter is None else np.ascontiguousarray(scatter, dtype=np.float32),
                 none if subtract is None else np.ascontiguousarray(subtract, dtype=np.float32),
                 np.float32(photons_per_pixel), _noise_bank(), offset, stride, measured)
        _blur_rows_then_cols(measured, np.empty_like(measured), blurred, np.float32(_BLUR_CENTRE))
        _coarse_mean(blurred, f, coarse)
    wide = ndimage.uniform_filter(coarse, 3, mode="nearest")
    lo, hi = window
    out = np.empty((rows, cols), np.uint8)
    field = field_mask(rows, cols, round(float(iris_fraction), 4), square, round(float(shutter_fraction), 4))
    with KERNEL_LOCK:
        _to_grey(blurred, wide, f, np.float32(_UNSHARP_GAIN), np.float32(lo), np.float32(hi), _GAMMA_LUT, field,
                 out)
    return out


@lru_cache(maxsize=16)
def field_mask(rows: int, cols: int, iris_fraction: float, square: bool = False,
               shutter_fraction: float = 1.0) -> np.ndarray:
    """The image intensifier's circular field with a soft edge and slight vignetting, inside the
    iris; a flat panel's square field, even, inside the iris; both between the shutter blades
    (``shutter_fraction`` of the width open, centred) (float32, 0-255 scale folded in)."""
    rr, cc = np.ogrid[:rows, :cols]
    across = np.abs(cc - (cols - 1) / 2) / (cols / 2)
    radius = np.hypot((rr - (rows - 1) / 2) / (rows / 2), across)
    blades = np.ones((1, cols)) if shutter_fraction >= 1.0 else np.clip((shutter_fraction - across) / 0.01, 0.0, 1.0)
    if square:
        edge = np.ones((rows, cols)) if iris_fraction >= 1.0 else np.clip((iris_fraction - radius) / 0.02, 0.0, 1.0)
        return np.ascontiguousarray(255.0 * edge * blades, dtype=np.float32)
    vignette = 1.0 - 0.18 * radius ** 2
    edge = np.clip((min(0.985, iris_fraction) - radius) / 0.02, 0.0, 1.0)
    return np.ascontiguousarray(255.0 * vignette * edge * blades, dtype=np.float32)


def smooth_coarse(image: np.ndarray, factor: int = 4, size: int = 3) -> np.ndarray:
    """A wide blur (``size`` x ``factor`` px box) computed on a ``factor`` times coarser grid and
    expanded back."""
    rows, cols = image.shape
    r, c = rows - rows % factor, cols - cols % factor
    coarse = image[:r, :c].reshape(r // factor, factor, c // factor, factor).mean(axis=(1, 3))
    coarse = ndimage.uniform_filter(coarse, size, mode="nearest")
    wide = np.repeat(np.repeat(coarse, factor, axis=0), factor, axis=1)
    if (r, c) != (rows, cols):
        wide = np.pad(wide, ((0, rows - r), (0, cols - c)), mode="edge")
    return wide
