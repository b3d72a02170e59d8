"""Regenerate the README's pictures: anatomy views, X-ray images and app screenshots.

Run from the repository root (the app screenshots need a display; Xvfb gives one)::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/make_screenshots.py

Everything is computed by SpineSim itself from the default scenario's patient; the images land in
``docs/images/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parent / "images"
DEFAULT = "lumbar_interlaminar_l4l5_fluoroscopy"
LANDMARK = "lumbar_interlaminar_l4l5_landmark"


def anatomy_views(anatomy) -> None:
    """Fixed views of L4 alone and of the lumbar spine: posterior, lateral, axial."""
    import pyvista as pv

    from simulator.anatomy.meshes import structure_mesh
    from simulator.scene.scene import GROUP_COLOURS, _polydata

    phantom = anatomy.phantom
    bone = GROUP_COLOURS["bone"]
    sets = {
        "l4": (["L4"], phantom.by_level["L4"].to_world([0.0, -25.0, 0.0]), 260.0),
        "lumbar": (["L1", "L2", "L3", "L4", "L5", "sacrum", "coccyx",
                    "L1-L2.disc", "L2-L3.disc", "L3-L4.disc", "L4-L5.disc", "L5-S1.disc"],
                   phantom.by_level["L3"].to_world([0.0, -20.0, -20.0]), 620.0),
    }
    views = {"posterior": (np.array([0.0, -1.0, 0.0]), (0.0, 0.0, 1.0)),
             "lateral": (np.array([-1.0, 0.0, 0.0]), (0.0, 0.0, 1.0)),
             "axial": (np.array([0.0, 0.0, 1.0]), (0.0, -1.0, 0.0))}
    for set_name, (names, centre, distance) in sets.items():
        meshes = []
        for name in names:
            m = structure_mesh(phantom, name, voxel_mm=0.6 if set_name == "l4" else 0.9)
            if m is not None:
                meshes.append((_polydata(m), GROUP_COLOURS.get(m.group, bone)))
        tiles = []
        for view, (direction, up) in views.items():
            pl = pv.Plotter(off_screen=True, window_size=(520, 520))
            pl.set_background("white")
            for poly, colour in meshes:
                pl.add_mesh(poly, color=colour, smooth_shading=True, specular=0.25)
            pl.camera_position = [tuple(centre + direction * distance), tuple(centre), up]
            pl.add_text(view, font_size=12, color="black")
            tiles.append(pl.screenshot(return_img=True))
            pl.close()
        Image.fromarray(np.hstack(tiles)).save(OUT / f"anatomy_{set_name}.png")
        print("wrote", OUT / f"anatomy_{set_name}.png")


def xray_images(loaded, anatomy) -> None:
    """AP and lateral images of the default patient, and the expert's contrast images."""
    from simulator.imaging.carm import CArmPose
    from simulator.imaging.fluoroscope import Fluoroscope
    from simulator.procedures.lumbar_interlaminar import squaring_tilt_deg
    from simulator.simulation.reference import run_reference
    from simulator.simulation.simulation import Simulation

    target = tuple(float(v) for v in anatomy.landmark("L4-L5.interlaminar_center"))
    scope = Fluoroscope(anatomy.mu_volume(), anatomy.world_from_voxel, 512)
    tilt = squaring_tilt_deg(anatomy, "L4-L5")
    tiles = [scope.render(CArmPose(o, t, target), [], None, (1, 0)).display
             for o, t in ((0.0, 0.0), (0.0, tilt), (90.0, 0.0), (-35.0, tilt))]
    Image.fromarray(np.hstack(tiles)).save(OUT / "xray_views.png")
    print("wrote", OUT / "xray_views.png")
    sim = Simulation(loaded, anatomy=anatomy)
    run_reference(sim)
    # the expert's images: AP, lateral with the needle, lateral and AP after contrast
    Image.fromarray(np.hstack([im.display for im in sim.images[:4]])).save(OUT / "xray_attempt.png")
    print("wrote", OUT / "xray_attempt.png")


def app_screenshots(anatomy) -> None:
    """The app in fluoroscopy mode (mid-attempt), in landmark mode, and its debrief."""
    from PyQt6.QtWidgets import QApplication

    from simulator.app.main import create_window
    from simulator.protocol import commands as cmd
    from simulator.simulation.reference import run_reference

    app = QApplication.instance() or QApplication(sys.argv[:1])

    def window_after_reference(scenario: str, record: str):
        window = create_window(scenario, anatomy=anatomy, record_path=OUT / record)
        window.resize(1500, 900)
        window.show()
        app.processEvents()
        run_reference(window.sim, finish=False)
        if window.sim.guidance == "fluoroscopy":
            window.execute(cmd.SetSpineVisible(visible=True))
        return window

    def save(window, name: str) -> None:
        app.processEvents()
        window.plotter.render()
        app.processEvents()
        window.grab().save(str(OUT / name))
        print("wrote", OUT / name)

    window = window_after_reference(DEFAULT, "_attempt.jsonl")
    save(window, "app_fluoroscopy.png")
    window.finish()
    save(window, "app_debrief.png")
    window.debrief_dialog.grab().save(str(OUT / "app_debrief_card.png"))
    window.close()
    window = window_after_reference(LANDMARK, "_attempt_landmark.jsonl")
    save(window, "app_landmark.png")
    window.close()
    for leftover in OUT.glob("_attempt*.jsonl"):
        leftover.unlink()


def main() -> int:
    from simulator.anatomy.anatomy import build_anatomy
    from simulator.scenario.loader import load_scenario

    OUT.mkdir(parents=True, exist_ok=True)
    loaded = load_scenario(DEFAULT)
    sc = loaded.scenario
    anatomy = build_anatomy(sc.patient.parameters(), voxel_mm=sc.anatomy.voxel_mm, levels=sc.anatomy.levels)
    anatomy_views(anatomy)
    xray_images(loaded, anatomy)
    app_screenshots(anatomy)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
