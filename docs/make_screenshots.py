"""Regenerate the README's pictures: anatomy views, X-ray images and app screenshots.

Run from the repository root (the app screenshots need a display; Xvfb gives one)::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/make_screenshots.py

Everything is computed by SpineSim itself from the default scenario's patient; the images land in
``docs/images/``. The README's simulated study is made only when asked (it takes about an hour)::

    .venv/bin/python docs/make_screenshots.py study_figure
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
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


def _render_tiles(meshes, views, centre, distance, size=(520, 520), labels=None, fit=None) -> list[np.ndarray]:
    import pyvista as pv

    tiles = []
    for i, (direction, up) in enumerate(views):
        pl = pv.Plotter(off_screen=True, window_size=size)
        pl.set_background("white")
        for poly, colour, opacity in meshes:
            pl.add_mesh(poly, color=colour, smooth_shading=True, specular=0.25, opacity=opacity)
        pl.camera_position = [tuple(centre + np.asarray(direction) * distance), tuple(centre), up]
        if fit:
            pl.reset_camera()  # keeps the direction, frames the meshes
            pl.camera.zoom(fit)
        if labels:
            pl.add_text(labels[i], font_size=11, color="black")
        tiles.append(pl.screenshot(return_img=True))
        pl.close()
    return tiles


def _skeleton_meshes(phantom, voxel_mm: float, with_organs: bool = False):
    """Bones and discs of a whole phantom (and lungs, kidneys, arteries when ``with_organs``)."""
    from simulator.anatomy.meshes import structure_mesh
    from simulator.scene.scene import GROUP_COLOURS, _polydata

    wanted = {"bone", "disc"} | ({"organ", "vessel"} if with_organs else set())
    skip = {"airway", "rectum", "presacral_space", "epidural_space"}
    out = []
    for st in phantom.structures:
        cartilage = st.name.endswith(".cartilage")
        if (st.group not in wanted and not cartilage) or st.name in skip or st.name.startswith("epidural_veins"):
            continue
        m = structure_mesh(phantom, st.name, voxel_mm=voxel_mm if st.group == "bone" else 1.6)
        if m is not None:
            opacity = 0.25 if st.name.startswith("lung") else 1.0
            out.append((_polydata(m), GROUP_COLOURS.get(m.group, GROUP_COLOURS["bone"]), opacity))
    return out


def whole_spine_views() -> None:
    """The default patient's whole phantom, C2 to the coccyx: skeleton from behind and the side,
    and with the lungs, kidneys and arteries."""
    from simulator.anatomy.patient import PatientParameters
    from simulator.anatomy.phantom import SpinePhantom

    phantom = SpinePhantom(PatientParameters().resolved())
    centre = phantom.by_level["T10"].to_world([0.0, -20.0, 0.0])
    skeleton = _skeleton_meshes(phantom, 1.2)
    tiles = _render_tiles(skeleton, [((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)), ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0))],
                          centre, 1500.0, size=(420, 900), labels=["posterior", "lateral"])
    organs = _skeleton_meshes(phantom, 1.2, with_organs=True)
    tiles += _render_tiles(organs, [((-0.5, -0.85, 0.15), (0.0, 0.0, 1.0))], centre, 1500.0, size=(520, 900),
                           labels=["with lungs, kidneys, arteries"])
    Image.fromarray(np.hstack(tiles)).save(OUT / "anatomy_whole_spine.png")
    print("wrote", OUT / "anatomy_whole_spine.png")


#: Patients for the side-by-side picture: (label, parameters).
PATIENTS = (
    ("default patient", {}),
    ("woman 155 cm, lordosis 55", {"seed": 11, "sex": "female", "height_cm": 155.0, "lordosis_deg": 55.0}),
    ("scoliosis 18 deg", {"seed": 12, "scoliosis_deg": 18.0}),
    ("sacralised L5", {"seed": 13, "transitional": "sacralized_L5"}),
)


def patients_side_by_side() -> None:
    """Four patients from behind (T6 to the coccyx, with the pelvis) and from the side (T10 to
    the coccyx, without the ilia)."""
    from simulator.anatomy.column import ALL_LEVELS, INTERSPACES
    from simulator.anatomy.meshes import structure_mesh
    from simulator.anatomy.patient import PatientParameters
    from simulator.anatomy.phantom import SpinePhantom
    from simulator.scene.scene import GROUP_COLOURS, _polydata

    def meshes_of(phantom, names):
        out = []
        for name in names:
            try:
                m = structure_mesh(phantom, name, voxel_mm=1.0)
            except KeyError:
                continue  # e.g. no L5-S1 disc where L5 is fused to the sacrum
            if m is not None:
                out.append((_polydata(m), GROUP_COLOURS.get(m.group, GROUP_COLOURS["bone"]), 1.0))
        return out

    rows = {"posterior": [], "lateral": []}
    for label, params in PATIENTS:
        phantom = SpinePhantom(PatientParameters(**params).resolved())
        levels = list(ALL_LEVELS[ALL_LEVELS.index("T6"):ALL_LEVELS.index("L5") + 1])
        discs = [f"{i}.disc" for i in INTERSPACES if i.split("-")[0] in levels]
        back = meshes_of(phantom, levels + discs + ["sacrum", "coccyx", "ilium_left", "ilium_right"])
        side = meshes_of(phantom, levels[levels.index("T10"):] + discs[discs.index("T10-T11.disc"):]
                         + ["sacrum", "coccyx"])
        centre = phantom.by_level["L2"].to_world([0.0, -10.0, 0.0])
        rows["posterior"] += _render_tiles(back, [((0.0, -1.0, 0.0), (0.0, 0.0, 1.0))], centre, 900.0,
                                           size=(360, 640), labels=[label], fit=1.9)
        rows["lateral"] += _render_tiles(side, [((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0))], centre, 900.0,
                                         size=(360, 560), fit=1.5)
    Image.fromarray(np.vstack([np.hstack(rows["posterior"]), np.hstack(rows["lateral"])])).save(
        OUT / "anatomy_patients.png")
    print("wrote", OUT / "anatomy_patients.png")


def ct_imported_views() -> None:
    """A spine imported from a CT with its TotalSegmentator segmentation: 3D (bones as segmented,
    the derived dural sac, discs and nerve roots) and AP and lateral X-rays computed from its CT
    numbers. No real scan can ship with SpineSim, so the CT here is the default patient's phantom
    (T11 to the pelvis) written in TotalSegmentator's conventions and imported back."""
    import os
    import tempfile

    from simulator.anatomy.anatomy import build_anatomy
    from simulator.anatomy.ct_import import import_ct, load_imported
    from simulator.anatomy.export import export_anatomy
    from simulator.anatomy.patient import PatientParameters
    from simulator.imaging.carm import CArmPose
    from simulator.imaging.fluoroscope import Fluoroscope
    from simulator.scene.scene import GROUP_COLOURS, _polydata

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SPINESIM_DATA_DIR"] = str(Path(tmp) / "data")
        phantom = build_anatomy(PatientParameters(), voxel_mm=1.5, levels=("T11", "S1"))
        export_anatomy(phantom, Path(tmp) / "scan", "totalsegmentator")
        import_ct(Path(tmp) / "scan" / "ct.nii.gz", Path(tmp) / "scan" / "segmentations.nii.gz", "ct-picture",
                  voxel_mm=1.5)
        imported = load_imported("ct-picture")
        meshes = [(_polydata(m), GROUP_COLOURS.get(m.group, GROUP_COLOURS["bone"]), 1.0)
                  for m in imported.meshes().values() if m.group in ("bone", "disc", "ligament", "neural")]
        centre = imported.landmark("L3.body_center") + np.array([0.0, -20.0, 0.0])
        tiles = _render_tiles(meshes, [((-0.55, -0.8, 0.2), (0.0, 0.0, 1.0)), ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0))],
                              centre, 900.0, size=(420, 620), labels=["imported CT: posterior oblique", "lateral"],
                              fit=1.3)
        scope = Fluoroscope(imported.mu_volume(), imported.world_from_voxel, 620)
        target = tuple(float(v) for v in imported.landmark("L3-L4.interlaminar_center"))
        for oblique in (0.0, 90.0):
            tiles.append(scope.render(CArmPose(oblique, 0.0, target), [], None, (1, 0)).display)
        del os.environ["SPINESIM_DATA_DIR"]
    tiles = [np.asarray(Image.fromarray(t).convert("RGB")) for t in tiles]
    height = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0)), constant_values=255) for t in tiles]
    Image.fromarray(np.hstack(tiles)).save(OUT / "anatomy_ct_import.png")
    print("wrote", OUT / "anatomy_ct_import.png")


def xray_images(loaded, anatomy) -> None:
    """AP and lateral images of the default patient, and the expert's contrast images."""
    from simulator.imaging.carm import CArmPose
    from simulator.imaging.fluoroscope import Fluoroscope
    from simulator.imaging.views import squaring_tilt_deg
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
    # the expert's images: AP, down the needle, lateral with the needle, lateral and AP after contrast
    Image.fromarray(np.hstack([im.display for im in sim.images[:5]])).save(OUT / "xray_attempt.png")
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
    deadline = time.monotonic() + 60.0
    while not window.target_zone_shown and time.monotonic() < deadline:
        app.processEvents()  # the target zone is computed off the GUI thread
    save(window, "app_debrief.png")
    window.debrief_dialog.grab().save(str(OUT / "app_debrief_card.png"))
    window.close()
    window = window_after_reference(LANDMARK, "_attempt_landmark.jsonl")
    save(window, "app_landmark.png")
    window.close()
    for leftover in OUT.glob("_attempt*.jsonl"):
        leftover.unlink()


def _wait(app, condition, timeout_s: float = 120.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)


def station_screenshots(anatomy=None) -> None:
    """Every other screen of the station, on a demonstration store (an instructor, two trainees, a
    course and their attempts): help overlay, scenario picker, My courses, My progress, scenario
    editor with its preview, a CT import under way, course builder, class view, results and the replay
    window."""
    import os
    import tempfile

    from PyQt6.QtWidgets import QApplication

    from simulator.anatomy.anatomy import build_anatomy
    from simulator.app.main import create_window
    from simulator.protocol import commands as cmd
    from simulator.records.recording import StoreRecorder
    from simulator.records.store import Store
    from simulator.scenario.loader import load_scenario
    from simulator.simulation.reference import run_reference
    from simulator.simulation.simulation import Simulation

    app = QApplication.instance() or QApplication(sys.argv[:1])
    loaded = load_scenario(DEFAULT)
    if anatomy is None:
        sc = loaded.scenario
        anatomy = build_anatomy(sc.patient.parameters(), voxel_mm=sc.anatomy.voxel_mm, levels=sc.anatomy.levels)
    tmp = tempfile.mkdtemp(prefix="spinesim-screens-")
    os.environ["SPINESIM_DATA_DIR"] = tmp  # the demonstration's users and attempts, never the user's
    store = Store.open(f"sqlite:///{tmp}/station.db")
    store.add_user(None, "lee", "Dr Lee", "instructor", password="demonstration only")
    lee = store.unlock("lee", "demonstration only")
    for account, name in (("ann", "Ann Archer"), ("ben", "Ben Baker")):
        store.add_user(lee, account, name, "trainee")
    course_id = store.create_course(lee, "Block 1: lumbar epidurals", [DEFAULT, LANDMARK], ["ann", "ben"])

    def attempt(account, scenario, expert: bool):
        sim = Simulation(load_scenario(scenario), anatomy=anatomy, image_size_px=256,
                         recorders=[StoreRecorder(store, store.actor(account), course=course_id)])
        if expert:
            run_reference(sim)
        else:  # stops short, in the ligament
            target = anatomy.landmark(f"{sim.scenario.target_level}.interlaminar_center")
            sim.apply(cmd.SetEntry(point_mm=tuple(float(v) for v in anatomy.skin_point_behind(target)),
                                   direction=(0.0, 1.0, 0.0)))
            for _ in range(3):
                sim.apply(cmd.Advance(distance_mm=10.0))
            sim.apply(cmd.Finish())
        return sim

    for expert in (False, False, True, True):
        last = attempt("ann", DEFAULT, expert)
    attempt("ann", LANDMARK, True)
    attempt("ben", DEFAULT, False)

    def shot(widget, name: str, size=(1280, 760)) -> None:
        widget.resize(*size)
        widget.show()
        for _ in range(5):
            app.processEvents()
        widget.grab().save(str(OUT / name))
        print("wrote", OUT / name)

    window = create_window(DEFAULT, anatomy=anatomy, record_path=Path(tmp) / "a.jsonl", store=store)
    window.resize(1500, 900)
    window.show()
    app.processEvents()
    run_reference(window.sim, finish=False)
    window.show_help()
    shot(window, "app_help.png", (1500, 900))
    window.show_help()

    from simulator.app.scenario_picker import ScenarioPicker

    picker = ScenarioPicker(window, current=DEFAULT)
    shot(picker, "app_picker.png", (1100, 600))
    from simulator.app.courses import ClassView, CourseBuilder, MyCourses

    shot(MyCourses(store, store.actor("ann")), "app_my_courses.png", (900, 420))
    from simulator.app.progress import show_progress

    shot(show_progress(None, store, store.actor("ann")), "app_progress.png", (1280, 720))
    from simulator.app.scenario_editor import open_scenario_editor

    editor = open_scenario_editor(None)
    editor.resize(1300, 760)
    shown = []
    editor.preview_shown.connect(lambda: shown.append(True))
    editor.start_preview()
    _wait(app, lambda: shown)
    shot(editor, "app_scenario_editor.png", (1300, 760))
    # a CT import under way: the demonstration patient written as a CT with its segmentation
    from simulator.anatomy.export import export_anatomy
    from simulator.app.ct_import_dialog import CtImportDialog

    ct_folder = Path(tmp) / "ct-export"
    export_anatomy(anatomy, ct_folder, "totalsegmentator")
    ct_import = CtImportDialog()
    ct_import.ct_path.setText(str(ct_folder / "ct.nii.gz"))
    ct_import.labels_path.setText(str(ct_folder / "segmentations.nii.gz"))
    ct_import.name.setText("demonstration")
    ct_import.start()
    _wait(app, lambda: ct_import.progress.value() >= 45 or not ct_import.running)
    shot(ct_import, "app_ct_import.png", (680, 300))
    ct_import.cancel()
    shot(CourseBuilder(store, lee), "app_course_builder.png", (1150, 640))
    view = ClassView(store, lee, course_id)
    view.refresh()
    shot(view, "app_class_view.png", (1000, 360))
    from simulator.app.results import ResultsDialog

    results = ResultsDialog(store, lee)
    results.show()
    _wait(app, lambda: results.report is not None)
    shot(results, "app_results.png", (1300, 800))
    from simulator.app.replay_window import open_replay

    replay = open_replay(last.loaded, last.record, anatomy=anatomy, image_size_px=256)
    replay.seek(len(replay.timeline.steps) // 2)
    shot(replay, "app_replay.png", (1400, 820))
    editor.ask_before_discarding = False  # the demonstration's edits are not kept: no question on closing
    for widget in (replay, results, view, editor, window):
        widget.close()
    store.close()


def _tile(image: np.ndarray, caption: str, size: int = 300) -> np.ndarray:
    """An image scaled to ``size`` with a caption strip (up to two lines, split at "|") under it."""
    from PIL import ImageDraw

    tile = Image.fromarray(image).resize((size, size))
    out = Image.new("L", (size, size + 36), 0)
    out.paste(tile, (0, 0))
    for k, line in enumerate(caption.split("|")[:2]):
        ImageDraw.Draw(out).text((6, size + 4 + 15 * k), line.strip(), fill=230)
    return np.asarray(out)


def _grid(rows: list[list[np.ndarray]]) -> np.ndarray:
    width = max(len(r) for r in rows)
    blank = np.zeros_like(rows[0][0])
    return np.vstack([np.hstack(r + [blank] * (width - len(r))) for r in rows])


def procedure_views() -> None:
    """Standard views of several procedures on their scenarios' patients, computed from the anatomy."""
    from simulator.anatomy.anatomy import anatomy_for_scenario
    from simulator.imaging.carm import CArmPose
    from simulator.imaging.fluoroscope import Fluoroscope
    from simulator.imaging.views import projection_name, standard_views
    from simulator.scenario.loader import load_scenario

    rows = []
    for scenario, procedure, interspace, side, names in (
            (DEFAULT, "lumbar_facet", "L4-L5", "right",
             ("AP, endplates squared", "lateral", "ipsilateral oblique (Scotty dog)", "facet view (along the joint)")),
            (DEFAULT, "sacroiliac_joint", "L5-S1", "right", ("AP, endplates squared", "S1 foramen", "SIJ oblique")),
            ("cervical_interlaminar_c7t1_fluoroscopy", "cervical_transforaminal", "C6-C7", "right",
             ("AP, endplates squared", "lateral", "contralateral oblique 50", "foraminal oblique"))):
        anatomy = anatomy_for_scenario(load_scenario(scenario).scenario)
        scope = Fluoroscope(anatomy.mu_volume(), anatomy.world_from_voxel, 512)
        views = standard_views(anatomy, procedure, interspace, side)
        centre = tuple(float(v) for v in anatomy.landmark(f"{interspace}.interlaminar_center"))
        row = []
        for name in names:
            ob, tilt = views[name]
            image = scope.render(CArmPose(ob, tilt, centre), [], None, (1, 0), kvp=75.0).display
            row.append(_tile(image, f"{procedure}: {name} | {projection_name(ob, tilt)}"))
        rows.append(row)
    Image.fromarray(_grid(rows)).save(OUT / "xray_procedure_views.png")
    print("wrote", OUT / "xray_procedure_views.png")


def contrast_patterns(anatomy=None) -> None:
    """Contrast patterns of the reference's library (3.0) on the default patient, once spread, and
    venous uptake on a live and a subtracted frame."""
    if anatomy is None:
        from simulator.anatomy.anatomy import anatomy_for_scenario
        from simulator.scenario.loader import load_scenario

        anatomy = anatomy_for_scenario(load_scenario(DEFAULT).scenario)
    from simulator.anatomy.tissues import tissue_table
    from simulator.geometry import frames
    from simulator.imaging import injection, vascular
    from simulator.imaging.carm import CArmPose
    from simulator.imaging.contrast import ContrastField
    from simulator.imaging.fluoroscope import Fluoroscope

    scope = Fluoroscope(anatomy.mu_volume(), anatomy.world_from_voxel, 512)
    names = tissue_table().names_by_id()

    def near(point, tissue, within=15.0):
        return injection.nearest_tissue(anatomy, np.asarray(point, float), (tissue,), within)

    s3 = 0.5 * (anatomy.landmark("S3.foramen_left") + anatomy.landmark("S3.foramen_right"))
    cases = [
        ("interlaminar epidural", anatomy.landmark("L4-L5.epidural_target"), 2.0, ("ap", "lateral")),
        ("transforaminal (L4-L5 right)", near(anatomy.landmark("L4-L5.foramen_right_center"), "epidural_fat"), 1.5,
         ("ap", "lateral")),
        ("caudal", near(s3, "epidural_fat", 20.0), 6.0, ("ap", "lateral")),
        ("intrathecal", near(anatomy.landmark("L4-L5.epidural_target"), "csf"), 2.0, ("ap", "lateral")),
        ("subdural", near(anatomy.landmark("L4-L5.epidural_target"), "dura"), 1.0, ("ap", "lateral")),
        ("intradiscal", anatomy.landmark("L4-L5.disc_center"), 1.0, ("ap", "lateral")),
        ("facet arthrogram", near(anatomy.landmark("L4-L5.facet_right_center"), "facet_joint"), 0.8, ("ap",)),
        ("SIJ arthrogram", near(anatomy.landmark("sij_right_lower_third"), "sacroiliac_joint"), 1.5, ("ap",)),
    ]
    tiles = []
    for name, point, volume, views in cases:
        if point is None:
            continue
        tissue = names[int(anatomy.labels_at(np.asarray(point)[None])[0])]
        done = injection.inject(anatomy, point, tissue, volume, 0.0, 11, np.random.default_rng(1), frames.ANTERIOR)
        field = ContrastField(done.boluses, done.vessels, volume)
        for view in views:
            pose = CArmPose(0.0 if view == "ap" else 90.0, 0.0, tuple(float(v) for v in point))
            image = scope.render(pose, [], field, (2, len(tiles)), kvp=75.0).display
            tiles.append(_tile(image, f"{name}, {view}"))
    # venous uptake at a foramen: live (faint) and subtracted, while it goes in
    point = near(anatomy.landmark("L5-S1.foramen_right_center"), "epidural_fat")
    fill = vascular.vessel_fill(anatomy, point, vascular.UptakeDraw("venous", 1.0, 60.0), 0.0, 1.5, 11)
    field = ContrastField(vessels=[fill], total_ml=1.0)
    pose = CArmPose(0.0, 0.0, tuple(float(v) for v in point))
    mask = scope.measured_integrals(pose, [], None, None, 75.0)
    for caption, subtract in (("venous uptake, live", None), ("venous uptake, DSA", mask)):
        image = scope.render(pose, [], field, (3, 0), photons_per_pixel=2.0e4, subtract=subtract, kvp=75.0,
                             t_s=1.2).display
        tiles.append(_tile(image, caption))
    rows = [tiles[i:i + 6] for i in range(0, len(tiles), 6)]
    Image.fromarray(_grid(rows)).save(OUT / "xray_contrast_patterns.png")
    print("wrote", OUT / "xray_contrast_patterns.png")


def study_figure(patients: int = 1000, seed: int = 2026) -> None:
    """The README's simulated study (the four procedures in both modes, ``patients`` patients):
    docs/images/study_<n>.png and docs/study_<n>.md. Not in the default run: about an hour on 2 cores.
    The attempts go to a SQLite file in the temporary folder, so an interrupted run resumes."""
    import tempfile

    from simulator.records.store import Store
    from simulator.study.operators import MODES, PROCEDURES
    from simulator.study.report import study_report, write_study_report
    from simulator.study.runner import StudyPlan, default_workers, print_progress, run_study

    plan = StudyPlan(PROCEDURES, MODES, patients, seed)
    store = Store.open(f"sqlite:///{Path(tempfile.gettempdir()) / f'spinesim-readme-study-{plan.key}.sqlite'}")
    workers = default_workers()
    t0 = time.perf_counter()
    run = run_study(plan, store, workers=workers, progress=print_progress)
    wall = time.perf_counter() - t0
    info = {"attempts": run.stored, "wall_s": round(wall, 1), "workers": workers,
            "attempts_per_s": round(run.stored / wall, 3) if wall else 0.0,
            "median_attempt_s": round(statistics.median(run.attempt_seconds), 3) if run.attempt_seconds else 0.0}
    paths = write_study_report(study_report(plan, store, info), Path(tempfile.mkdtemp()))
    shutil.copy(paths["figure"], OUT / f"study_{patients}.png")
    shutil.copy(paths["markdown"], OUT.parent / f"study_{patients}.md")
    print("wrote", OUT / f"study_{patients}.png", OUT.parent / f"study_{patients}.md")


def main() -> int:
    only = set(sys.argv[1:])  # e.g. "ct_imported_views": regenerate only those pictures
    if only:
        for name in only:
            globals()[name]()
        return 0
    from simulator.anatomy.anatomy import build_anatomy
    from simulator.scenario.loader import load_scenario

    OUT.mkdir(parents=True, exist_ok=True)
    loaded = load_scenario(DEFAULT)
    sc = loaded.scenario
    anatomy = build_anatomy(sc.patient.parameters(), voxel_mm=sc.anatomy.voxel_mm, levels=sc.anatomy.levels)
    anatomy_views(anatomy)
    whole_spine_views()
    patients_side_by_side()
    ct_imported_views()
    xray_images(loaded, anatomy)
    procedure_views()
    contrast_patterns(anatomy)
    app_screenshots(anatomy)
    station_screenshots(anatomy)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
