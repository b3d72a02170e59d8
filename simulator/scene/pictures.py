"""Small pictures of each procedure's region, for the scenario picker (pyvista, off-screen, no Qt).

Each picture shows one built-in case of the procedure on its own phantom patient: the bone of the
region, the procedure's target zone in green, and the expert's needle (the reference solution of
:mod:`simulator.simulation.reference`) in place, seen from the operator's side at an angle to the
needle so that its whole path shows. They are rendered once into ``assets/pictures/`` (``python -m
simulator.scene.pictures``) and shipped; the picker only reads the PNGs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyvista as pv

from simulator.errors import SpineSimError
from simulator.scene.scene import GROUP_COLOURS, TARGET_COLOUR, _polydata, target_zone_surface

#: The built-in case each procedure's picture is made from (a typical patient and level).
REPRESENTATIVE_SCENARIOS = {
    "lumbar_interlaminar": "lumbar_interlaminar_l4l5_fluoroscopy",
    "cervical_interlaminar": "cervical_interlaminar_c7t1_fluoroscopy",
    "caudal": "caudal_fluoroscopy",
    "lumbar_transforaminal": "lumbar_transforaminal_l4l5_right_fluoroscopy",
    "cervical_transforaminal": "cervical_transforaminal_c6c7_right_fluoroscopy",
    "thoracic_transforaminal": "thoracic_transforaminal_t7t8_right_fluoroscopy",
    "s1_transforaminal": "s1_transforaminal_right_fluoroscopy",
    "sacroiliac_joint": "sacroiliac_joint_right_fluoroscopy",
    "lumbar_medial_branch": "lumbar_medial_branch_l3_right_fluoroscopy",
    "cervical_medial_branch": "cervical_medial_branch_c5_right_fluoroscopy",
    "lumbar_facet": "lumbar_facet_l4l5_right_fluoroscopy",
    "cervical_facet": "cervical_facet_c5c6_right_fluoroscopy",
}
#: Where the pictures live inside ``assets/``.
PICTURE_FOLDER = "pictures"
NEEDLE_COLOUR = (70, 72, 82)
HUB_COLOUR = (235, 190, 60)
BACKGROUND = (36, 41, 50)
#: Voxel of the label volume the pictures' expert works on, mm (meshes and the needle's tissue
#: queries are exact whatever the voxel; only its images, unused here, would be coarser).
PICTURE_VOXEL_MM = 1.5
#: Angle between the line of sight and the needle, degrees: far enough from looking down the
#: needle (where it shows as a dot) that its path reads, close enough that the approach does.
VIEW_FROM_NEEDLE_DEG = 35.0
#: Per procedure, what differs from :func:`_render`'s defaults (chosen by looking at each picture):
#: the half-width shown (``span_mm``), how far from the target bone is drawn (``reach_mm``: the
#: sacroiliac joint needs its ilium).
PICTURE_VIEWS: dict[str, dict] = {
    "sacroiliac_joint": {"span_mm": 45.0, "reach_mm": 140.0},
    "cervical_medial_branch": {"span_mm": 42.0},
    "cervical_facet": {"span_mm": 45.0},
}


def _expert_needle(sim) -> tuple[np.ndarray, np.ndarray] | None:
    """The expert's needle in place: (shaft points skin to tip, outward direction to the hub), or
    ``None`` if the reference attempt cannot be run on this case."""
    from simulator.simulation.reference import run_reference

    try:
        run_reference(sim, finish=False)
    except SpineSimError:
        return None
    if not sim.needle.inserted:
        return None
    return np.asarray(sim.needle.shaft_polyline(), float), -np.asarray(sim.needle.direction, float)


def approach_camera(focal_mm, needle_direction, scenario, distance_mm: float,
                    view_from_needle_deg: float = VIEW_FROM_NEEDLE_DEG, elevation_deg: float = 20.0) -> list:
    """A camera that shows a needle's approach: from the operator's side, ``view_from_needle_deg``
    off the needle (far enough that its path reads, close enough that the approach does), a little
    from above (the head end) so the levels stack, the head up where it can be.

    Parameters
    ----------
    focal_mm : array (3,)
        Where the camera looks.
    needle_direction : array (3,) or None
        The needle's direction, skin to tip (None: straight in from the room's up).
    scenario : Scenario
        Its patient position and side choose the operator's side.
    distance_mm : float
    view_from_needle_deg, elevation_deg : float

    Returns
    -------
    list
        A pyvista ``camera_position`` (position, focal point, view up).
    """
    from simulator.imaging.views import room_up

    focal = np.asarray(focal_mm, float)
    up_room = room_up(scenario.patient_position)
    needle = -up_room if needle_direction is None else np.asarray(needle_direction, float)
    # the operator's side: the scenario's side for a one-sided procedure, else the patient's left
    lateral = np.array([1.0 if scenario.side == "right" else -1.0, 0.0, 0.0])
    if abs(up_room[0]) > 0.5:  # lying on a side: the operator stands behind the back
        lateral = np.array([0.0, -1.0, 0.0])
    operator = up_room + 0.8 * lateral
    operator /= np.linalg.norm(operator)
    back = -needle / np.linalg.norm(needle)  # from the target back out along the needle
    perp = operator - (operator @ back) * back
    if np.linalg.norm(perp) < 1e-3:
        perp = np.cross(back, [0.0, 0.0, 1.0])
    perp /= np.linalg.norm(perp)
    angle = np.radians(view_from_needle_deg)
    sight = np.cos(angle) * back + np.sin(angle) * perp
    sight /= np.linalg.norm(sight)
    along = np.array([0.0, 0.0, 1.0]) - sight[2] * sight
    if elevation_deg and np.linalg.norm(along) > 1e-6:
        along /= np.linalg.norm(along)
        e = np.radians(elevation_deg)
        sight = np.cos(e) * sight + np.sin(e) * along
    up = np.array([0.0, 0.0, 1.0])
    if abs(sight @ up) > 0.85:  # looking along the spine: up is the room's up instead
        up = up_room
    up = up - (up @ sight) * sight
    up /= np.linalg.norm(up)
    return [tuple(focal + distance_mm * sight), tuple(focal), tuple(up)]


@dataclass
class _PictureInputs:
    """What a picture shows (everything but the rendering, which is cheap to redo)."""

    scenario: object
    meshes: dict
    zone: pv.PolyData
    target_mm: np.ndarray
    needle: tuple[np.ndarray, np.ndarray] | None


def _inputs(procedure_id: str) -> _PictureInputs:
    from simulator.anatomy.anatomy import build_anatomy
    from simulator.scenario.loader import load_scenario
    from simulator.simulation.simulation import Simulation

    if procedure_id not in REPRESENTATIVE_SCENARIOS:
        raise SpineSimError(f"no picture for procedure '{procedure_id}' "
                            f"(known: {', '.join(REPRESENTATIVE_SCENARIOS)})")
    loaded = load_scenario(REPRESENTATIVE_SCENARIOS[procedure_id])
    sc = loaded.scenario
    anatomy = build_anatomy(sc.patient.parameters(), voxel_mm=PICTURE_VOXEL_MM, levels=sc.anatomy.levels)
    sim = Simulation(loaded, anatomy=anatomy, image_size_px=64)
    try:
        zone = target_zone_surface(sim)
        target = np.asarray(sim.procedure.target_point(anatomy, sc), float)
        needle = _expert_needle(sim)
    finally:
        sim.close()
    return _PictureInputs(sc, anatomy.meshes(), zone, target, needle)


def _render(inputs: _PictureInputs, size: tuple[int, int], view_from_needle_deg: float = VIEW_FROM_NEEDLE_DEG,
            span_mm: float = 55.0, reach_mm: float = 70.0, neural_reach_mm: float = 30.0,
            elevation_deg: float = 20.0, ghost: float = 0.6):
    """The picture as a PIL image (RGB).

    Two passes with the same camera: the opaque anatomy with the target and the needle, then the
    target and the needle alone; where bone hides them, the second shows through at ``ghost``
    (the target often lies in bone's shadow, and translucent bone made the spine unreadable).
    """
    from PIL import Image

    sc, target = inputs.scenario, inputs.target_mm
    needle_dir = None
    focal = target
    overlay: list[tuple[pv.PolyData, dict]] = []
    if inputs.zone.n_points:
        # smoothed: the zone is sampled on a 0.8 mm grid and would show its steps
        overlay.append((inputs.zone.smooth(n_iter=40, relaxation_factor=0.1),
                        dict(color=TARGET_COLOUR, smooth_shading=True, ambient=0.35)))
    if inputs.needle is not None:
        shaft, outward = inputs.needle
        # the needle out through the skin to its hub, so the approach reads from outside in
        outside = shaft[0] + outward * 25.0
        line = np.vstack([outside[None], shaft])
        overlay.append((pv.lines_from_points(line).tube(radius=1.1, n_sides=16),
                        dict(color=NEEDLE_COLOUR, specular=0.8, smooth_shading=True)))
        overlay.append((pv.Cylinder(center=outside + outward * 8.0, direction=outward, radius=3.5, height=16.0),
                        dict(color=HUB_COLOUR, smooth_shading=True)))
        needle_dir = -outward
        focal = target + 0.25 * span_mm * outward
    camera = approach_camera(focal, needle_dir, sc, span_mm / np.tan(np.radians(15.0)), view_from_needle_deg,
                             elevation_deg)
    anatomy: list[tuple[pv.PolyData, dict]] = []
    for name, mesh in inputs.meshes.items():
        if mesh.group not in ("bone", "disc", "neural") or name in ("dural_sac", "spinal_cord", "cauda_equina"):
            continue
        poly = _polydata(mesh)
        # only what lies near the target: a whole pelvis or the next vertebrae but one would crowd it
        distance_mm = np.linalg.norm(np.asarray(poly.center) - target)
        if distance_mm > (neural_reach_mm if mesh.group == "neural" else reach_mm):
            continue
        anatomy.append((poly, dict(color=GROUP_COLOURS[mesh.group], smooth_shading=True,
                                   specular=0.25 if mesh.group == "bone" else 0.1)))

    def shot(items) -> np.ndarray:
        # twice the size, then shrunk: smooth edges without relying on the GL's multisampling
        pl = pv.Plotter(off_screen=True, window_size=(size[0] * 2, size[1] * 2))
        pl.set_background(BACKGROUND)
        for poly, style in items:
            pl.add_mesh(poly, **style)
        pl.camera_position = camera
        pl.camera.view_angle = 30.0
        pl.enable_lightkit()
        rgb = pl.screenshot(return_img=True)
        pl.close()
        return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS), float)

    full = shot(anatomy + overlay)
    alone = shot(overlay)
    covered = np.clip(np.abs(alone - np.asarray(BACKGROUND, float)).max(axis=-1) / 40.0, 0.0, 1.0)[..., None]
    out = full * (1.0 - ghost * covered) + alone * ghost * covered
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def _write_small_png(image, out_png: str | Path) -> Path:
    from PIL import Image

    # a palette of 96 colours keeps the shading smooth and the file small (well under 60 kB)
    small = image.quantize(colors=96, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    small.save(buffer, format="PNG", optimize=True)
    out.write_bytes(buffer.getvalue())
    return out


def render_procedure_picture(procedure_id: str, out_png: str | Path, size: tuple[int, int] = (360, 270)) -> Path:
    """Render one procedure's picture into ``out_png`` (off-screen).

    Parameters
    ----------
    procedure_id : str
        A key of :data:`REPRESENTATIVE_SCENARIOS` (e.g. ``"caudal"``).
    out_png : path
        The PNG to write (a small palette image).
    size : (int, int)
        Width and height in pixels.

    Returns
    -------
    Path
        ``out_png``.
    """
    return _write_small_png(_render(_inputs(procedure_id), size, **PICTURE_VIEWS.get(procedure_id, {})), out_png)


def render_all_pictures(folder: str | Path) -> list[Path]:
    """Render every procedure's picture into ``folder`` as ``<procedure>.png``.

    Parameters
    ----------
    folder : path

    Returns
    -------
    list of Path
        The PNGs written.
    """
    folder = Path(folder)
    return [render_procedure_picture(p, folder / f"{p}.png") for p in REPRESENTATIVE_SCENARIOS]


if __name__ == "__main__":  # python -m simulator.scene.pictures [FOLDER] [PROCEDURE...]
    import sys

    target_folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("assets") / PICTURE_FOLDER
    chosen = sys.argv[2:] or list(REPRESENTATIVE_SCENARIOS)
    for procedure in chosen:
        print(render_procedure_picture(procedure, target_folder / f"{procedure}.png"))
