"""Iodinated contrast: where an injected volume goes, as extra attenuation on a local grid.

Contrast stays in the compartment the tip is in and spreads through it from the tip, nearest
first (a geodesic fill by constrained dilation of the anatomy's labels):

- **epidural**: fills part of the epidural fat, so the spread is patchy ("vacuolated") and runs up
  and down the dorsal canal, bounded by the pedicles;
- **intrathecal**: mixes with CSF (fills several times its volume at a fraction of the strength),
  settles in the dependent (for a prone patient, anterior) part of the sac: smooth, dense,
  symmetric and midline, spreading over several levels;
- **soft tissue**: a blob around the tip that stays behind the laminae;
- **disc** and **bone** stay where they are injected.

Iohexol 300 mgI/mL at 60 keV: 2.47 /cm against water's 0.206 (reference 4.6): the excess over the
displaced tissue is ~0.000755 /mm per mgI/mL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

#: Extra attenuation per mgI/mL of iodine at 60 keV, 1/mm.
MU_PER_MGI_PER_ML = (0.247 - 0.0206) / 300.0
#: Concentration of the contrast in the syringe, mgI/mL (iohexol 300; myelography-compatible).
SYRINGE_MGI_PER_ML = 300.0

#: Compartments and the tissues contrast can spread through in each.
COMPARTMENT_TISSUES = {
    "epidural": ("epidural_fat",),
    "intrathecal": ("csf", "cauda_equina", "spinal_cord"),
    "soft_tissue": ("muscle", "subcutaneous_fat", "thoracolumbar_fascia", "interspinous_ligament",
                    "supraspinous_ligament", "ligamentum_flavum", "skin", "viscera"),
    "disc": ("disc_annulus", "disc_nucleus"),
    "bone": ("cancellous_bone",),
    "joint": ("facet_joint", "sacroiliac_joint"),
}


def compartment_of(tissue_name: str) -> str:
    """The compartment an injection at a tip in ``tissue_name`` goes into."""
    if tissue_name == "dura":
        return "intrathecal"  # a tip in the dural wall leaks into the sac (subdural in issue 5)
    if tissue_name == "cortical_bone":
        return "bone"
    for name, tissues in COMPARTMENT_TISSUES.items():
        if tissue_name in tissues:
            return name
    return "soft_tissue"


@dataclass
class ContrastField:
    """Contrast in the patient: extra attenuation on a voxel grid aligned with the anatomy's.

    Attributes
    ----------
    mu_per_mm : ndarray (float32)
        Extra attenuation over the tissue it displaces.
    world_from_voxel : ndarray (4, 4)
    total_ml : float
    compartments : list of str
    """

    mu_per_mm: np.ndarray
    world_from_voxel: np.ndarray
    total_ml: float = 0.0
    compartments: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.total_ml <= 0.0


def spread(labels: np.ndarray, world_from_voxel: np.ndarray, tip_mm: np.ndarray, tissue_names: list[str],
           compartment: str, volume_ml: float, rng: np.random.Generator,
           dependent_direction: np.ndarray | None = None, half_size_mm=(45.0, 45.0, 110.0)):
    """Extra attenuation of ``volume_ml`` of contrast injected at ``tip_mm``.

    Parameters
    ----------
    labels : ndarray (uint8)
        The anatomy's label volume.
    world_from_voxel : ndarray (4, 4)
    tip_mm : ndarray (3,)
    tissue_names : list of str
        Name of each label id.
    compartment : str
        Where the tip is (see :func:`compartment_of`).
    volume_ml : float
    rng : numpy Generator
        Seeded: patchiness of the epidural fill.
    dependent_direction : ndarray (3,) or None
        World direction of gravity (intrathecal contrast settles that way).

    Returns
    -------
    (mu, world_from_voxel) of a local grid, or None if nothing could be filled.
    """
    voxel = float(world_from_voxel[0, 0])
    origin = world_from_voxel[:3, 3]
    centre = np.round((np.asarray(tip_mm) - origin) / voxel).astype(int)
    half = np.ceil(np.asarray(half_size_mm) / voxel).astype(int)
    lo = np.maximum(centre - half, 0)
    hi = np.minimum(centre + half + 1, labels.shape)
    if np.any(centre < 0) or np.any(centre >= labels.shape):
        return None
    local = labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    allowed_ids = [i for i, n in enumerate(tissue_names) if n in COMPARTMENT_TISSUES.get(compartment, ())]
    mask = np.isin(local, allowed_ids)
    seed = tuple(centre - lo)
    if not mask[seed]:
        # the tip sits in a thin layer the voxels missed: start from the nearest allowed voxel
        if not mask.any():
            return None
        dist, idx = ndimage.distance_transform_edt(~mask, return_indices=True)
        if dist[seed] > 3.0:
            mask[seed] = True
        else:
            seed = tuple(int(idx[k][seed]) for k in range(3))
    voxel_ml = voxel ** 3 / 1000.0
    concentration = SYRINGE_MGI_PER_ML
    fill_fraction = 1.0
    if compartment == "intrathecal":
        # mixes with CSF: fills ~4x its volume at a quarter of the strength
        concentration = SYRINGE_MGI_PER_ML / 4.0
        target_voxels = volume_ml * 4.0 / voxel_ml
    elif compartment == "epidural":
        # fat and veins leave bubbles: about 60% of the fat the contrast reaches takes it up
        fill_fraction = 0.6
        concentration = 240.0
        target_voxels = volume_ml / voxel_ml / fill_fraction
    else:
        target_voxels = volume_ml / voxel_ml
    if compartment == "epidural":
        # the posterior epidural space behind the sac fills first (a dorsal band on the lateral
        # view); contrast reaches round the sac only once that is full
        sac_ids = [i for i, n in enumerate(tissue_names) if n in ("dura", "csf", "cauda_equina", "spinal_cord")]
        sac = np.isin(local, sac_ids)
        reach = max(2, int(round(12.0 / voxel)))
        ahead = ndimage.maximum_filter1d(sac, size=reach, axis=1, origin=-(reach // 2))
        behind = mask & ahead
        if behind[seed]:
            first = _fill_order(behind, seed, int(target_voxels), None, world_from_voxel)
            if first.sum() >= int(target_voxels) - 1:
                filled = first
            else:
                filled = _fill_order(mask, seed, int(target_voxels), None, world_from_voxel)
        else:
            filled = _fill_order(mask, seed, int(target_voxels), None, world_from_voxel)
    else:
        filled = _fill_order(mask, seed, int(target_voxels), dependent_direction, world_from_voxel)
    if fill_fraction < 1.0:
        noise = ndimage.gaussian_filter(rng.random(local.shape).astype(np.float32), 1.2)
        threshold = np.quantile(noise[filled], 1.0 - fill_fraction) if filled.any() else 0.0
        filled = filled & (noise >= threshold)
    mu = np.zeros(local.shape, np.float32)
    mu[filled] = concentration * MU_PER_MGI_PER_ML
    mu = ndimage.gaussian_filter(mu, 0.7)
    w = world_from_voxel.copy()
    w[:3, 3] = origin + lo * voxel
    return mu, w


def _fill_order(mask: np.ndarray, seed: tuple, target_voxels: int, dependent_direction, world_from_voxel):
    """The ``target_voxels`` voxels of ``mask`` reached first from ``seed`` (breadth-first by
    dilation); with a dependent direction, the lowest reachable voxels fill first."""
    region = np.zeros(mask.shape, bool)
    region[seed] = True
    structure = ndimage.generate_binary_structure(3, 1)
    count = 1
    reachable_limit = int(mask.sum())
    target_voxels = max(1, min(target_voxels, reachable_limit))
    if dependent_direction is not None:
        reachable, _ = ndimage.label(mask, structure=structure)
        comp = reachable == reachable[seed]
        idx = np.argwhere(comp)
        voxel = float(world_from_voxel[0, 0])
        heights = (idx * voxel) @ np.asarray(dependent_direction, float)
        # settle: fill the most dependent voxels of the connected sac first, nearest levels first
        seed_arr = np.array(seed)
        along = np.abs(idx[:, 2] - seed_arr[2]) * voxel
        score = -heights * 1.5 + along
        chosen = idx[np.argsort(score)[:target_voxels]]
        region = np.zeros(mask.shape, bool)
        region[tuple(chosen.T)] = True
        return region
    while count < target_voxels:
        grown = ndimage.binary_dilation(region, structure, mask=mask)
        new_count = int(grown.sum())
        if new_count == count:
            break
        if new_count > target_voxels:
            # take only part of the last shell, nearest the seed first
            shell = np.argwhere(grown & ~region)
            d = np.linalg.norm(shell - np.array(seed), axis=1)
            need = target_voxels - count
            pick = shell[np.argsort(d)[:need]]
            region[tuple(pick.T)] = True
            break
        region = grown
        count = new_count
    return region
