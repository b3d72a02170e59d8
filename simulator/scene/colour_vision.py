"""How the app's colours look with a colour-vision deficiency, and how far apart two colours stay.

The simulation is Machado, Oliveira and Fernandes (2009), "A physiologically-based model for
simulation of color vision deficiency", IEEE TVCG 15(6):1291-1298, doi:10.1109/TVCG.2009.113, at
severity 1.0 (dichromacy), applied in linear sRGB as its authors publish the matrices. Distances
are CIE 1976 Delta E in CIELAB (D65): about 2.3 is just noticeable, 10 plainly different at a
glance (Sharma, Digital Color Imaging Handbook, 2003).
"""

from __future__ import annotations

import numpy as np

#: Machado et al. (2009) simulation matrices, severity 1.0, linear sRGB in and out.
CVD_MATRICES = {
    "protanopia": np.array([[0.152286, 1.052583, -0.204868],
                            [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968],
                              [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779],
                            [-0.078411, 0.930809, 0.147602],
                            [0.004733, 0.691367, 0.303900]]),
}


def _linear(srgb_255) -> np.ndarray:
    c = np.asarray(srgb_255, float) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _srgb_255(linear) -> np.ndarray:
    c = np.clip(np.asarray(linear, float), 0.0, 1.0)
    return 255.0 * np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1.0 / 2.4) - 0.055)


def simulate(colour_255, deficiency: str) -> np.ndarray:
    """The sRGB colour (0-255) a person with ``deficiency`` (a key of :data:`CVD_MATRICES`) sees."""
    return _srgb_255(CVD_MATRICES[deficiency] @ _linear(colour_255))


def lab(colour_255) -> np.ndarray:
    """CIELAB (D65) of an sRGB colour (0-255)."""
    rgb = _linear(colour_255)
    xyz = np.array([[0.4124564, 0.3575761, 0.1804375],
                    [0.2126729, 0.7151522, 0.0721750],
                    [0.0193339, 0.1191920, 0.9503041]]) @ rgb
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116.0 * f[1] - 16.0, 500.0 * (f[0] - f[1]), 200.0 * (f[1] - f[2])])


def delta_e(a_255, b_255, deficiency: str | None = None) -> float:
    """CIE76 distance between two sRGB colours, as seen with ``deficiency`` (None: normal vision)."""
    if deficiency is not None:
        a_255, b_255 = simulate(a_255, deficiency), simulate(b_255, deficiency)
    return float(np.linalg.norm(lab(a_255) - lab(b_255)))
