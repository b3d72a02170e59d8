"""The torso's layering formulas compiled with numba (they run for every voxel of a volume).

One implementation serves point queries and volume filling alike: the formulas read the sagittal
profiles at each point's height by interpolation, then decide skin, fat, fascia, muscle, viscera,
bowel gas or the ligamentum nuchae from the depth below the skin and the position relative to the
spine. See :class:`simulator.anatomy.soft_tissue.Torso` for the meaning of each step.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# order of the rows of the profile table handed to the kernels
PROFILE_ROWS = ("midline_back_y_mm", "body_back_y_mm", "body_front_y_mm", "body_half_width_mm",
                "transverse_y_mm", "psoas", "fat_mm", "nuchal_mm", "half_width_mm", "depth_mm")


@njit(cache=True, fastmath=True, inline="always")
def _profile_at(z, zs, prof, p):
    """Every profile row linearly interpolated at height ``z`` (clamped at the ends) into ``p``:
    one search for all rows."""
    n = zs.shape[0]
    if z <= zs[0]:
        for r in range(prof.shape[0]):
            p[r] = prof[r, 0]
        return
    if z >= zs[n - 1]:
        for r in range(prof.shape[0]):
            p[r] = prof[r, n - 1]
        return
    i = np.searchsorted(zs, z) - 1
    t = (z - zs[i]) / (zs[i + 1] - zs[i])
    for r in range(prof.shape[0]):
        p[r] = prof[r, i] + t * (prof[r, i + 1] - prof[r, i])


@njit(cache=True, fastmath=True, inline="always")
def _smooth_max(a, b, k):
    # -smooth_min(-a, -b)
    a, b = -a, -b
    h = min(max(0.5 + 0.5 * (b - a) / k, 0.0), 1.0)
    return -(b + (a - b) * h - k * h * (1.0 - h))


@njit(cache=True, fastmath=True, inline="always")
def _skin_field(x, y, p, skin, fascia, room):
    mid_back, fat, nuchal, width, depth = p[0], p[6], p[7], p[8], p[9]
    cover = skin + fat + fascia + room + nuchal
    mid = mid_back - cover
    ax = abs(x)
    bulge = (6.0 + 0.15 * fat) * (np.exp(-((ax - 38.0) / 26.0) ** 2) - np.exp(-(38.0 / 26.0) ** 2))
    flank = 70.0 * (max(ax - 0.4 * width, 0.0) / (0.7 * width)) ** 2
    back = mid - bulge + flank - y
    ry = 0.5 * (depth + 40.0)
    centre_y = mid - 40.0 + ry
    u = x / width
    v = (y - centre_y) / ry
    k0 = np.sqrt(u * u + v * v)
    k1 = np.sqrt((u / width) ** 2 + (v / ry) ** 2)
    outline = k0 * (k0 - 1.0) / k1 if k1 > 1e-9 else -min(width, ry)
    return _smooth_max(back, outline, 12.0)


@njit(cache=True, fastmath=True)
def skin_field(xs, ys, zs, prof_z, prof, skin, fascia, room):
    """Signed distance to the skin for points ``(xs[i], ys[i], zs[i])``."""
    n = xs.shape[0]
    out = np.empty(n, np.float32)
    p = np.empty(prof.shape[0])
    for i in range(n):
        _profile_at(zs[i], prof_z, prof, p)
        out[i] = _skin_field(xs[i], ys[i], p, skin, fascia, room)
    return out


@njit(cache=True, fastmath=True)
def torso_labels(xs, ys, zs, prof_z, prof, gas, ids, skin, fascia, room):
    """Tissue ids of the torso layers for points ``(xs[i], ys[i], zs[i])``.

    ``ids``: air, skin, subcutaneous fat, fascia, muscle, viscera, bowel gas, supraspinous
    ligament (the nuchal ligament).
    """
    n = xs.shape[0]
    out = np.empty(n, np.uint8)
    p = np.empty(prof.shape[0])
    last_z = 1e300  # (not NaN: fastmath assumes no NaN)
    for i in range(n):
        x, y, z = xs[i], ys[i], zs[i]
        if z != last_z:
            _profile_at(z, prof_z, prof, p)
            last_z = z
        mid_back, body_back, body_front, body_hw, tp_y = p[0], p[1], p[2], p[3], p[4]
        psoas, fat, nuchal, width, depth_ap = p[5], p[6], p[7], p[8], p[9]
        depth = -_skin_field(x, y, p, skin, fascia, room)
        if depth < 0.0:
            out[i] = ids[0]
            continue
        if depth < skin:
            out[i] = ids[1]
            continue
        ax = abs(x)
        lateral = min(max(ax / width, 0.0), 1.0)
        front = min(max((y - mid_back) / depth_ap, 0.0), 1.0)
        fat_t = fat * (1.0 + 0.9 * lateral * lateral + 0.8 * front * front)
        deep = depth - skin - fat_t
        if deep < 0.0:
            out[i] = ids[2]
            continue
        posterior = y < tp_y + 6.0
        fascia_t = fascia
        if nuchal <= 0.5:
            fascia_t += (room + 3.0) * np.exp(-((x / 6.0) ** 2))
        if deep < fascia_t and posterior and ax < 0.7 * width:
            out[i] = ids[3]
            continue
        if nuchal > 0.5 and ax < 4.0 and deep > fascia and y < mid_back + 2.0:
            out[i] = ids[7]
            continue
        label = ids[5]
        if posterior and ax < 0.6 * width:
            label = ids[4]
        if psoas > 0.0:
            r = 9.0 + 11.0 * psoas
            c = body_hw + 0.8 * r
            cy = 0.5 * (body_back + body_front) - 2.0
            if ((ax - c) / r) ** 2 + ((y - cy) / (r * 1.1)) ** 2 < 1.0:
                label = ids[4]
        if deep < 12.0 and not posterior:
            label = ids[4]
        for g in range(gas.shape[0]):
            gx = (x - gas[g, 0]) / gas[g, 3]
            gy = (y - gas[g, 1]) / gas[g, 4]
            gz = (z - gas[g, 2]) / gas[g, 5]
            if gx * gx + gy * gy + gz * gz < 1.0:
                label = ids[6]
        out[i] = label
    return out
