"""Where injected contrast goes: a fill of the tip's compartment, nearest first.

Contrast stays in the compartment the tip is in and spreads through it from the tip (a geodesic
fill by constrained dilation of the anatomy's labels), which gives each compartment its pattern
(reference 3.0):

- **epidural**: fills part of the epidural fat (bubbly, "vacuolated"), the dorsal canal first from
  an interlaminar needle, the root sleeve and under the pedicle from a foraminal one, up the sacral
  canal from a caudal one;
- **intrathecal**: mixes with CSF (fills several times its volume at a fraction of the strength)
  and settles in the dependent part of the sac: smooth, symmetric, over several levels;
- **subdural**: a thin film between dura and arachnoid along the back of the sac: dense, sharply
  marginated, long for its small volume;
- **soft tissue**: a blob round the tip that stays behind the laminae;
- **disc** and **bone** stay where they are injected; a **joint** fills its own space (and leaks
  once full, see :mod:`.injection`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from simulator.imaging.contrast import MU_PER_MGI_PER_ML, SYRINGE_MGI_PER_ML

#: Compartments and the tissues contrast spreads through in each.
COMPARTMENT_TISSUES = {
    "epidural": ("epidural_fat",),
    "intrathecal": ("csf", "cauda_equina", "spinal_cord"),
    "subdural": ("dura",),
    "soft_tissue": ("muscle", "subcutaneous_fat", "thoracolumbar_fascia", "interspinous_ligament",
                    "supraspinous_ligament", "ligamentum_flavum", "skin", "viscera", "interlaminar_fat",
                    "sacrococcygeal_ligament", "presacral_space"),
    "disc": ("disc_annulus", "disc_nucleus"),
    "bone": ("cancellous_bone",),
    "joint": ("facet_joint", "sacroiliac_joint"),
    "venous": ("epidural_vein", "jugular_vein"),
    "arterial": ("radicular_artery", "vertebral_artery", "carotid_artery"),
}
#: Fill stages (shown one after the other while the contrast goes in).
N_STAGES = 4
#: Tissues of the dural sac (what the epidural fill keeps behind, what the subdural film lines).
SAC_TISSUES = ("dura", "csf", "cauda_equina", "spinal_cord")


def compartment_of(tissue_name: str) -> str:
    """The compartment an injection at a tip in ``tissue_name`` goes into."""
    if tissue_name == "dura":
        return "subdural"  # a tip in the dural wall: between dura and arachnoid
    if tissue_name == "cortical_bone":
        return "bone"
    if tissue_name == "nerve_root":
        return "epidural"  # inside the root's sleeve: it outlines the root
    for name, tissues in COMPARTMENT_TISSUES.items():
        if tissue_name in tissues:
            return name
    return "soft_tissue"


@dataclass
class Fill:
    """A compartment fill: extra attenuation in stages (nearest the tip first) and the volume it
    holds."""

    stages: list[tuple[np.ndarray, np.ndarray]]
    filled_ml: float


def spread(labels: np.ndarray, world_from_voxel: np.ndarray, tip_mm: np.ndarray, tissue_names: list[str],
           compartment: str, volume_ml: float, rng: np.random.Generator,
           dependent_direction: np.ndarray | None = None, half_size_mm=(45.0, 45.0, 110.0)) -> Fill | None:
    """Fill ``compartment`` from ``tip_mm`` with ``volume_ml`` of contrast.

    Parameters
    ----------
    labels : ndarray (uint8)
        The anatomy's label volume.
    world_from_voxel : ndarray (4, 4)
    tip_mm : ndarray (3,)
    tissue_names : list of str
        Name of each label id.
    compartment : str
        One of :data:`COMPARTMENT_TISSUES` (see :func:`compartment_of`).
    volume_ml : float
    rng : numpy Generator
        Seeded: patchiness of the epidural fill.
    dependent_direction : ndarray (3,) or None
        World direction of gravity (intrathecal contrast settles that way).

    Returns
    -------
    Fill, or None if the compartment has no room near the tip. ``filled_ml`` is less than
    ``volume_ml`` when the compartment is full (a joint).
    """
    voxel = float(world_from_voxel[0, 0])
    origin = world_from_voxel[:3, 3]
    centre = np.round((np.asarray(tip_mm) - origin) / voxel).astype(int)
    if np.any(centre < 0) or np.any(centre >= labels.shape):
        return None
    half = np.ceil(np.asarray(half_size_mm) / voxel).astype(int)
    lo = np.maximum(centre - half, 0)
    hi = np.minimum(centre + half + 1, labels.shape)
    local = labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    ids = _ids(tissue_names, COMPARTMENT_TISSUES.get(compartment, ()))
    mask = np.isin(local, ids)
    sac = np.isin(local, _ids(tissue_names, SAC_TISSUES))
    if compartment == "subdural":
        # the potential space inside the dura: the dural wall and the CSF just inside it, on the
        # back of the sac (where a needle from behind opens it)
        mask = (mask | (np.isin(local, _ids(tissue_names, ("csf",))) & ndimage.binary_dilation(mask))) \
            & _dorsal_of(sac, voxel)
    seed = _seed(mask, tuple(centre - lo))
    if seed is None:
        return None
    mask[seed] = True
    voxel_ml = voxel ** 3 / 1000.0
    concentration, fill_fraction, holds = SYRINGE_MGI_PER_ML, 1.0, 1.0
    if compartment == "intrathecal":
        concentration, holds = SYRINGE_MGI_PER_ML / 4.0, 4.0  # mixes with CSF: 4x the volume, a quarter the strength
    elif compartment == "epidural":
        fill_fraction, concentration = 0.6, 240.0  # fat and veins leave bubbles; a little dilution
    elif compartment == "subdural":
        holds = 1.0 / 0.2  # a film a fifth of a voxel thick: a small volume runs a long way
        concentration = SYRINGE_MGI_PER_ML * 0.2
    target = int(round(volume_ml * holds / voxel_ml / fill_fraction))
    if compartment == "epidural":
        # the posterior epidural space behind the sac fills first (a dorsal band on the lateral
        # view); contrast reaches round the sac only once that is full
        behind = mask & _dorsal_of(sac, voxel)
        arrival = _arrival(behind, seed, target) if behind[seed] else None
        if arrival is None or np.count_nonzero(arrival) < target - 1:
            arrival = _arrival(mask, seed, target)
    elif dependent_direction is not None:
        arrival = _settled(mask, seed, target, dependent_direction, voxel)
    else:
        # a joint's space is a thin curved sheet: let the fill cross voxel corners
        arrival = _arrival(mask, seed, target, connectivity=3 if compartment == "joint" else 1)
    filled = arrival > 0
    n_filled = int(np.count_nonzero(filled))
    if compartment == "joint" and 0 < n_filled * voxel_ml < volume_ml:
        # the voxels miss most of a joint's thin space and its recesses: the joint they show holds
        # the whole volume (up to 5x the voxels' room), so the image has the iodine injected
        concentration *= min(volume_ml / (n_filled * voxel_ml), 5.0)
        holds = 1.0 / min(volume_ml / (n_filled * voxel_ml), 5.0)
    if fill_fraction < 1.0 and n_filled:
        noise = ndimage.gaussian_filter(rng.random(local.shape).astype(np.float32), 1.2)
        threshold = np.quantile(noise[filled], 1.0 - fill_fraction)
        filled &= noise >= threshold
    stage_of = _stage_index(arrival, filled)
    stages = []
    mu_filled = np.float32(concentration * MU_PER_MGI_PER_ML)
    for s in range(N_STAGES):
        where = stage_of == s
        if not where.any():
            continue
        box = ndimage.find_objects(where.astype(np.uint8))[0]
        box = tuple(slice(max(b.start - 3, 0), min(b.stop + 3, n)) for b, n in zip(box, where.shape, strict=True))
        mu = np.where(where[box], mu_filled, np.float32(0.0))
        mu = ndimage.gaussian_filter(mu, 0.7)
        w = world_from_voxel.copy()
        w[:3, 3] = origin + (lo + np.array([b.start for b in box])) * voxel
        stages.append((mu.astype(np.float32), w))
    return Fill(stages, min(volume_ml, n_filled * voxel_ml * fill_fraction / holds))


def _ids(tissue_names: list[str], wanted) -> list[int]:
    return [i for i, n in enumerate(tissue_names) if n in wanted]


def _dorsal_of(sac: np.ndarray, voxel: float) -> np.ndarray:
    """Voxels with the sac within 12 mm in front of them (anterior is +y, the array's axis 1)."""
    reach = max(2, int(round(12.0 / voxel)))
    return ndimage.maximum_filter1d(sac, size=reach, axis=1, origin=-(reach // 2))


def _seed(mask: np.ndarray, seed: tuple) -> tuple | None:
    """The fill's first voxel: the tip's, or the nearest allowed voxel within 3 voxels (the tip sits
    in a thin layer the voxels missed)."""
    if mask[seed]:
        return seed
    if not mask.any():
        return None
    dist, idx = ndimage.distance_transform_edt(~mask, return_indices=True)
    if dist[seed] > 3.0:
        return seed
    return tuple(int(idx[k][seed]) for k in range(3))


def _arrival(mask: np.ndarray, seed: tuple, target_voxels: int, connectivity: int = 1) -> np.ndarray:
    """The step (1, 2, ...) at which each of the first ``target_voxels`` voxels of ``mask`` is
    reached from ``seed`` (breadth-first by dilation); 0 where the fill does not reach."""
    arrival = np.zeros(mask.shape, np.int32)
    region = np.zeros(mask.shape, bool)
    region[seed] = True
    arrival[seed] = 1
    structure = ndimage.generate_binary_structure(3, connectivity)
    count, step = 1, 1
    target_voxels = max(1, min(target_voxels, int(mask.sum())))
    while count < target_voxels:
        grown = ndimage.binary_dilation(region, structure, mask=mask)
        new_count = int(grown.sum())
        if new_count == count:
            break
        step += 1
        if new_count > target_voxels:
            # only part of the last shell, nearest the seed first
            shell = np.argwhere(grown & ~region)
            d = np.linalg.norm(shell - np.array(seed), axis=1)
            pick = shell[np.argsort(d)[:target_voxels - count]]
            arrival[tuple(pick.T)] = step
            break
        arrival[grown & ~region] = step
        region = grown
        count = new_count
    return arrival


def _settled(mask: np.ndarray, seed: tuple, target_voxels: int, dependent_direction, voxel: float) -> np.ndarray:
    """A fluid heavier than CSF: the lowest voxels of the connected space fill first, the levels
    nearest the tip before farther ones; arrival is the rank in that order."""
    structure = ndimage.generate_binary_structure(3, 1)
    reachable, _ = ndimage.label(mask, structure=structure)
    idx = np.argwhere(reachable == reachable[seed])
    heights = (idx * voxel) @ np.asarray(dependent_direction, float)
    along = np.abs(idx[:, 2] - seed[2]) * voxel
    order = np.argsort(-heights * 1.5 + along)[:max(1, target_voxels)]
    arrival = np.zeros(mask.shape, np.int32)
    arrival[tuple(idx[order].T)] = np.arange(1, len(order) + 1)
    return arrival


def _stage_index(arrival: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """Stage (0 .. N_STAGES-1) of each filled voxel by arrival quantile; -1 elsewhere."""
    stage = np.full(arrival.shape, -1, np.int8)
    if not filled.any():
        return stage
    times = arrival[filled]
    edges = np.quantile(times, np.linspace(0.0, 1.0, N_STAGES + 1)[1:-1])
    stage[filled] = np.searchsorted(edges, times, side="left").astype(np.int8)
    return stage
