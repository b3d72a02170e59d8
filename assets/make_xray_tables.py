"""Regenerate ``assets/xray_tube.toml``: the C-arm tube's output and beam quality by kVp.

Run from the repository root with the table tools installed (they are not needed to run SpineSim)::

    pip install spekpy==2.5.4 xraydb==4.5.8
    python assets/make_xray_tables.py

SpekPy (Poludniowski et al., Phys Med Biol 2021) models the bremsstrahlung and characteristic
spectrum of a tungsten anode; the beam here is a mobile C-arm's: 12 degree target, inherent plus
added filtration 3 mm Al + 0.1 mm Cu (reference section 4.4). For each kVp the table gives the air
kerma per mAs at 1 m free in air (what dose is computed from), the mean energy and first half-value
layer (beam quality), the mean energy behind 20 cm of water (the energy the image's attenuation is
effectively at) and water's attenuation there relative to 60 keV (xraydb, Elam cross-sections),
which scales the image's 60 keV line integrals to the beam's in the exposure control; and the
spectrum itself in 5 keV bins (energy-weighted, as an energy-integrating detector sees it) with
water's attenuation in each bin relative to 60 keV, over which the image's transmission is summed.
The steel needle (iron) and iodinated contrast have their own energy dependence (iron's photoelectric
fall, iodine's K-edge at 33.2 keV inside a bin): for them each bin gives the attenuation relative to
60 keV averaged over the bin's photons, as a thin layer of the material sees it. Bone is split
into a soft-tissue part (water's energy dependence, up to SOFT_TISSUE_MU_60KEV_PER_MM) and the excess
over it, whose energy dependence is cortical bone's (ICRU-44 composition, the mass-weighted sum of its
elements' cross-sections) less that soft part; the image ray-caster accumulates that excess
separately.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Cortical bone, ICRU-44 (mass fractions; density 1.92 g/cm3), as in reference section 4.2.
CORTICAL_BONE = {"H": 0.034, "C": 0.155, "N": 0.042, "O": 0.435, "Na": 0.001, "Mg": 0.002, "P": 0.103,
                 "S": 0.003, "Ca": 0.225}
CORTICAL_BONE_DENSITY = 1.92
#: Attenuation at 60 keV up to which a voxel counts as soft tissue (1/mm): above the soft tissues
#: (muscle 0.0215, soft tissue 0.0217), below cancellous bone (0.024 and up).
SOFT_TISSUE_MU_60KEV_PER_MM = 0.0225
KVPS = (60, 65, 70, 75, 80, 85, 90, 95, 100, 105, 110, 115, 120)
FILTERS = (("Al", 3.0), ("Cu", 0.1))
TARGET_ANGLE_DEG = 12.0


def main() -> None:
    import spekpy
    import xraydb

    def water_mu(energy_kev: float) -> float:
        return float(xraydb.material_mu("water", 1000.0 * energy_kev, density=1.0))

    def element_mu_over_rho(element: str, energy_kev) -> np.ndarray:
        return np.asarray(xraydb.mu_elam(element, 1000.0 * np.asarray(energy_kev, float)), float)

    def cortical_mu_per_mm(energy_kev) -> np.ndarray:
        per_cm = CORTICAL_BONE_DENSITY * sum(w * element_mu_over_rho(el, energy_kev) for el, w in CORTICAL_BONE.items())
        return 0.1 * per_cm

    def bone_excess_mu(energy_kev) -> np.ndarray:
        """Cortical bone's attenuation less its soft part (water's energy dependence), 1/mm."""
        water_relative = np.array([water_mu(e) for e in np.atleast_1d(energy_kev)]) / water_mu(60.0)
        return cortical_mu_per_mm(energy_kev) - water_relative * SOFT_TISSUE_MU_60KEV_PER_MM

    rows = []
    for kvp in KVPS:
        spek = spekpy.Spek(kvp=kvp, th=TARGET_ANGLE_DEG)
        for material, mm in FILTERS:
            spek.filter(material, mm)
        kerma = spek.get_kerma()  # uGy per mAs at 1 m (SpekPy's defaults: z = 100 cm, 1 mAs)
        emean = spek.get_emean()
        hvl = spek.get_hvl1()
        energies, fluence = spek.get_spectrum()  # keV bin centres, photons per keV
        spek.filter("Water", 200.0)
        behind = spek.get_emean()
        # the spectrum in 5 keV bins, weighted by energy (an energy-integrating detector), with
        # water's attenuation in each bin relative to 60 keV
        edges = np.arange(10.0, kvp + 5.0, 5.0)
        centres, weights, ratios = [], [], []
        materials = {element: [] for element in ("I", "Fe", "bone")}
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            inside = (energies >= lo) & (energies < hi)
            w = float((fluence[inside] * energies[inside]).sum())
            if w <= 0.0:
                continue
            e = float((fluence[inside] * energies[inside] ** 2).sum() / w)
            centres.append(e)
            weights.append(w)
            ratios.append(water_mu(e) / water_mu(60.0))
            for element, out in materials.items():
                if element == "bone":
                    mu = bone_excess_mu(energies[inside]) / bone_excess_mu(60.0)
                else:
                    mu = element_mu_over_rho(element, energies[inside]) / element_mu_over_rho(element, 60.0)
                out.append(float((fluence[inside] * energies[inside] * mu).sum() / w))
        weights = list(np.asarray(weights) / np.sum(weights))
        rows.append((kvp, kerma, emean, hvl, behind, water_mu(behind) / water_mu(60.0), centres, weights, ratios,
                     materials))
    lines = [
        "# The C-arm tube: air kerma per mAs at 1 m and beam quality by kVp.",
        "# Source: SpekPy 2.5.4 (Poludniowski et al., Phys Med Biol 2021; tungsten anode, 12 degree",
        "# target, 3 mm Al + 0.1 mm Cu) and xraydb 4.5.8 (water, iodine, iron, ICRU-44 cortical bone; Elam",
        "# cross-sections), made by",
        "# assets/make_xray_tables.py. Do not edit by hand. Bone is split into soft tissue up to",
        "# soft_tissue_mu_60kev_per_mm (water's energy dependence) and the excess over it (bone_excess).",
        "",
        "format_version = 1",
        f"soft_tissue_mu_60kev_per_mm = {SOFT_TISSUE_MU_60KEV_PER_MM}",
        f'filtration = "{" + ".join(f"{mm:g} mm {m}" for m, mm in FILTERS)}"',
        "",
    ]
    for kvp, kerma, emean, hvl, behind, ratio, centres, weights, ratios, materials in rows:
        lines += ["[[kvp]]", f"kvp = {kvp}", f"kerma_ugy_per_mas_at_1m = {kerma:.3f}",
                  f"mean_energy_kev = {emean:.2f}", f"hvl_mm_al = {hvl:.3f}",
                  f"mean_energy_behind_20cm_water_kev = {behind:.2f}",
                  f"water_mu_relative_to_60kev = {ratio:.4f}",
                  f"bin_energy_kev = [{', '.join(f'{e:.2f}' for e in centres)}]",
                  f"bin_energy_weight = [{', '.join(f'{w:.5f}' for w in weights)}]",
                  f"bin_water_mu_relative_to_60kev = [{', '.join(f'{r:.4f}' for r in ratios)}]",
                  f"bin_iodine_mu_relative_to_60kev = [{', '.join(f'{r:.4f}' for r in materials['I'])}]",
                  f"bin_iron_mu_relative_to_60kev = [{', '.join(f'{r:.4f}' for r in materials['Fe'])}]",
                  f"bin_bone_excess_mu_relative_to_60kev = [{', '.join(f'{r:.4f}' for r in materials['bone'])}]", ""]
    out = Path(__file__).resolve().parent / "xray_tube.toml"
    out.write_text("\n".join(lines), encoding="utf-8")
    print("wrote", out)


if __name__ == "__main__":
    main()
