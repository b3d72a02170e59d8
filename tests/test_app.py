"""The desktop app under a virtual display (Xvfb, started by pytest-xvfb): it opens, takes an image,
and a trainee can drive a whole attempt by keyboard in both modes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PyQt6")
pytest.importorskip("pyvistaqt")

from PyQt6.QtCore import Qt  # noqa: E402
from PyQt6.QtWidgets import QCheckBox, QTextBrowser  # noqa: E402

from simulator.anatomy.anatomy import build_anatomy  # noqa: E402
from simulator.scenario.loader import load_scenario  # noqa: E402

pytestmark = pytest.mark.gui

FLUORO = "lumbar_interlaminar_l4l5_fluoroscopy"
LANDMARK = "lumbar_interlaminar_l4l5_landmark"


@pytest.fixture(scope="module")
def gui_anatomy(tmp_path_factory, monkeypatch_module):
    """A small region of the scenario's patient (both scenarios share patient seed 1)."""
    monkeypatch_module.setenv("SPINESIM_CACHE_DIR", str(tmp_path_factory.mktemp("gui-cache")))
    monkeypatch_module.setenv("SPINESIM_DATA_DIR", str(tmp_path_factory.mktemp("gui-data")))
    patient = load_scenario(FLUORO).scenario.patient.parameters()
    return build_anatomy(patient, voxel_mm=2.0, levels=("L3", "S1"))


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture
def make_window(qtbot, gui_anatomy, tmp_path):
    from simulator.app.main import create_window

    def factory(scenario):
        window = create_window(scenario, anatomy=gui_anatomy, record_path=tmp_path / "attempt.jsonl",
                               image_size_px=128)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        # keyboard shortcuts go to the active window (there is no window manager under Xvfb)
        window.activateWindow()
        qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
        window.plotter.render()
        return window

    return factory


def _press(qtbot, window, key, modifier=Qt.KeyboardModifier.NoModifier):
    qtbot.keyClick(window, key, modifier)


def test_app_opens_and_takes_an_xray_with_the_pedal_key(make_window, qtbot):
    window = make_window(FLUORO)
    assert window.monitor.image is None
    _press(qtbot, window, Qt.Key.Key_F)
    qtbot.waitUntil(lambda: len(window.sim.images) == 1, timeout=60_000)
    qtbot.waitUntil(lambda: window.monitor.image is not None, timeout=10_000)
    image = window.monitor.image
    assert window.monitor.pixmap() is not None and not window.monitor.pixmap().isNull()
    # the spine (dark, bone) lies in the middle of an AP image; soft tissue beside it is brighter
    rows, cols = image.shape
    centre = image[rows // 3: 2 * rows // 3, cols // 2 - 6: cols // 2 + 6].mean()
    beside = image[rows // 3: 2 * rows // 3, cols // 2 + 30: cols // 2 + 42].mean()
    assert centre < beside
    # the 3D view holds a real picture, not a blank window
    shot = window.plotter.screenshot(return_img=True)
    assert shot.std() > 10


def test_holding_space_is_the_fluoroscopy_pedal(make_window, qtbot):
    """Holding Space runs live fluoroscopy at the chosen pulse rate: frames come live on the
    monitor; on release the last frame is held, the run's time and dose are counted, and the dose
    shows in the C-arm panel and the status bar. Closing the iris lowers the next run's DAP."""
    window = make_window(FLUORO)
    sim = window.sim
    window.pulse_rate.setCurrentIndex(window.pulse_rate.findData(15.0))
    qtbot.keyPress(window, Qt.Key.Key_Space)
    assert sim.fluoroscopy_on
    qtbot.waitUntil(lambda: window.monitor.image is not None, timeout=60_000)
    assert "LIVE" in window.monitor._caption
    qtbot.wait(400)
    qtbot.keyRelease(window, Qt.Key.Key_Space)
    assert not sim.fluoroscopy_on
    assert "LIH" in window.monitor._caption
    assert sim.dose.fluoroscopy_s >= 0.3 and sim.dose.frames >= 4
    assert sim.images == []  # live frames are not acquisitions
    assert "DAP" in window.dose_label.text() and "Fluoro" in window.statusBar().currentMessage()
    first_dap = sim.dose.dap_gy_cm2 / sim.dose.fluoroscopy_s
    window.iris.setValue(150.0)
    window.iris.editingFinished.emit()
    assert sim.field_mm == 150.0
    before = (sim.dose.dap_gy_cm2, sim.dose.fluoroscopy_s)
    qtbot.keyPress(window, Qt.Key.Key_Space)
    qtbot.wait(400)
    qtbot.keyRelease(window, Qt.Key.Key_Space)
    rate = (sim.dose.dap_gy_cm2 - before[0]) / (sim.dose.fluoroscopy_s - before[1])
    assert rate < 0.5 * first_dap
    # with subtraction on, the pedal runs a DSA run: the monitor says so
    window.subtraction.setChecked(True)
    qtbot.keyPress(window, Qt.Key.Key_Space)
    assert "DSA" in window.monitor._caption
    qtbot.keyRelease(window, Qt.Key.Key_Space)
    assert any(e.kind == "fluoroscopy_started" and e.data["subtraction"] for e in sim.events)


def test_the_pedal_pressed_while_an_xray_is_made_starts_fluoroscopy_when_it_is_done(make_window, qtbot):
    """Space pressed while an X-ray is still being computed is not lost: the live run starts as soon
    as the image is in, if the pedal is still down; released before, nothing starts."""
    window = make_window(FLUORO)
    sim = window.sim
    _press(qtbot, window, Qt.Key.Key_F)
    assert window._busy  # the X-ray at the new pose is being made off the GUI thread
    qtbot.keyPress(window, Qt.Key.Key_Space)
    assert not sim.fluoroscopy_on
    qtbot.waitUntil(lambda: sim.fluoroscopy_on, timeout=60_000)
    qtbot.waitUntil(lambda: "LIVE" in window.monitor._caption, timeout=10_000)
    qtbot.keyRelease(window, Qt.Key.Key_Space)
    assert not sim.fluoroscopy_on
    # pressed and released while the next X-ray (a new pose) is made: no run afterwards
    _press(qtbot, window, Qt.Key.Key_2)
    _press(qtbot, window, Qt.Key.Key_F)
    assert window._busy
    qtbot.keyPress(window, Qt.Key.Key_Space)
    qtbot.keyRelease(window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: not window._busy and len(sim.images) == 2, timeout=60_000)
    qtbot.wait(50)
    assert not sim.fluoroscopy_on
    assert sum(e.kind == "fluoroscopy_started" for e in sim.events) == 1


def test_standard_and_saved_views(make_window, qtbot):
    """The C-arm panel lists the procedure's standard views for this patient, named as projections;
    choosing one moves the C-arm there; the current view can be saved and chosen again; images are
    captioned with the projection's name."""
    window = make_window(FLUORO)
    sim = window.sim
    names = [window.views.itemText(i) for i in range(window.views.count())]
    assert any(n.startswith("AP, endplates squared") for n in names)
    assert any(n.startswith("facet view") and "RPO" in n for n in names)
    lateral = next(i for i, n in enumerate(names) if n.startswith("lateral"))
    window.views.activated.emit(lateral)
    assert sim.carm_pose.oblique_deg == 90.0
    window.set_carm(20.0, 5.0)
    window.save_view()
    window.set_carm(0.0, 0.0)
    window.views.activated.emit(window.views.count() - 1)
    assert (sim.carm_pose.oblique_deg, sim.carm_pose.tilt_deg) == (20.0, 5.0)
    assert "LPO 20" in window.views.itemText(window.views.count() - 1)
    window.take_image(wait=True)
    assert "LPO 20" in window.monitor._caption
    # window/level on the monitor: a narrow window stretches the grey levels (more contrast)
    assert np.array_equal(window.monitor.displayed(), window.monitor.image)
    raw = window.monitor.image.astype(float)
    window.level_box.setValue(int(np.median(raw[raw > 0])))
    window.width_box.setValue(64)
    shown = window.monitor.displayed().astype(float)
    inside = raw > 0
    assert shown[inside].std() > 1.5 * raw[inside].std()
    # a magnification mode from the panel
    window.magnification.activated.emit(window.magnification.findData(170.0))
    assert sim.carm_pose.field_of_view_mm == 170.0
    # the table moves under the C-arm by keyboard: the beam's centre goes 10 mm towards the head
    before = np.asarray(sim.carm_pose.isocentre_mm)
    _press(qtbot, window, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert np.allclose(np.asarray(sim.carm_pose.isocentre_mm) - before, [0.0, 0.0, 10.0])
    # the shutters close to a band from the panel
    window.shutters.setValue(80.0)
    window.shutters.editingFinished.emit()
    assert sim.shutter_mm == 80.0
    # the console's own name for the pose is shown next to the patient-terms one
    window.take_image(wait=True)
    assert "[C-arm RAO 20" in window.monitor._caption


def test_every_imaging_control_has_a_key(make_window, qtbot):
    """The C-arm panel's controls by keyboard alone: the standard and saved views in turn, the
    iris and shutters, the magnification, the pulse rate, subtraction and the monitor's window."""
    window = make_window(FLUORO)
    sim = window.sim
    first_pose = window.views.itemData(1)
    _press(qtbot, window, Qt.Key.Key_G)
    assert (sim.carm_pose.oblique_deg, sim.carm_pose.tilt_deg) == pytest.approx(first_pose)
    _press(qtbot, window, Qt.Key.Key_G)
    assert (sim.carm_pose.oblique_deg, sim.carm_pose.tilt_deg) == pytest.approx(window.views.itemData(2))
    _press(qtbot, window, Qt.Key.Key_G, Qt.KeyboardModifier.ShiftModifier)
    assert (sim.carm_pose.oblique_deg, sim.carm_pose.tilt_deg) == pytest.approx(first_pose)
    _press(qtbot, window, Qt.Key.Key_BracketRight)
    n_views = window.views.count()
    _press(qtbot, window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert window.views.count() == n_views + 1 and window.views.itemData(n_views)[0] == sim.carm_pose.oblique_deg
    assert sim.needle is not None and not sim.needle.inserted  # S with Ctrl saved the view, did not withdraw
    field = sim.carm_pose.field_of_view_mm
    _press(qtbot, window, Qt.Key.Key_I)
    _press(qtbot, window, Qt.Key.Key_O)
    assert window.iris.value() == 275.0 and sim.shutter_mm == 280.0
    _press(qtbot, window, Qt.Key.Key_I, Qt.KeyboardModifier.ShiftModifier)
    assert window.iris.value() == 300.0
    _press(qtbot, window, Qt.Key.Key_M)
    assert sim.carm_pose.field_of_view_mm < field
    rate = window.pulse_rate.currentData()
    _press(qtbot, window, Qt.Key.Key_T)
    assert window.pulse_rate.currentData() != rate
    _press(qtbot, window, Qt.Key.Key_X)
    assert window.subtraction.isChecked()
    _press(qtbot, window, Qt.Key.Key_Period)
    _press(qtbot, window, Qt.Key.Key_Minus)
    assert (window.level_box.value(), window.width_box.value()) == (136, 240)
    assert window.monitor.level == 136 and window.monitor.width_grey == 240
    _press(qtbot, window, Qt.Key.Key_Z)
    assert (window.level_box.value(), window.width_box.value()) == (128, 256)
    # each of them is in the help
    from simulator.app.main_window import SHORTCUTS

    keys = " ".join(k for k, _ in SHORTCUTS)
    assert all(k in keys for k in ("G / Shift+G", "Ctrl+S", "I / Shift+I", "O / Shift+O", "M", "T", "X"))


def test_keyboard_drives_a_whole_fluoroscopy_attempt(make_window, qtbot):
    window = make_window(FLUORO)
    sim = window.sim
    anatomy = sim.anatomy
    from simulator.procedures.lumbar_interlaminar import clear_path_entry

    # the C-arm presets by key: lateral, then back to AP
    _press(qtbot, window, Qt.Key.Key_2)
    assert sim.carm_pose.oblique_deg == 90.0
    assert window.oblique.value() == 90.0
    _press(qtbot, window, Qt.Key.Key_1)
    assert sim.carm_pose.oblique_deg == 0.0
    # right-click on the skin picks the entry (the picker's callback, as VTK calls it)
    target = anatomy.landmark("L4-L5.epidural_target")
    entry, direction = clear_path_entry(anatomy, target, 0.0)
    window._on_pick(entry)
    assert sim.needle.inserted
    # aim along the planned path with the redirect keys (2 degrees a press, towards the head)
    cranial_deg = float(np.degrees(np.arctan2(direction[2], direction[1])))
    key = Qt.Key.Key_Up if cranial_deg > 0 else Qt.Key.Key_Down
    for _ in range(int(round(abs(cranial_deg) / 2.0))):
        _press(qtbot, window, key, Qt.KeyboardModifier.ControlModifier)
    assert abs(float(np.degrees(np.arctan2(sim.needle.direction[2], sim.needle.direction[1]))) - cranial_deg) <= 1.01
    depth_to_target = float(np.linalg.norm(target - entry))
    while sim.needle.depth_mm < depth_to_target - 12.0:
        _press(qtbot, window, Qt.Key.Key_Up, Qt.KeyboardModifier.ShiftModifier)
    lost = False
    while sim.needle.depth_mm < depth_to_target + 8.0 and not lost:
        _press(qtbot, window, Qt.Key.Key_Up)
        _press(qtbot, window, Qt.Key.Key_L)
        lost = any(e.kind == "loss_of_resistance" for e in sim.events)
    assert lost, "the syringe never lost resistance"
    assert len(window.trace.readings) >= 2
    assert "mm" in window.depth_label.text()
    _press(qtbot, window, Qt.Key.Key_F10)
    assert sim.finished
    assert window.debrief_dialog is not None and window.debrief_dialog.isVisible()
    from PyQt6.QtWidgets import QTextBrowser

    html = window.debrief_dialog.findChild(QTextBrowser, "debrief_text").toPlainText()
    assert "epidural" in html and "/ 100" in html
    # every action went into the attempt record on disk
    lines = (window.record_path and open(window.record_path).read().splitlines()) or []
    assert lines[0].startswith('{"format":"spinesim-attempt"')
    assert any('"command":"finish"' in line for line in lines)


def test_landmark_mode_has_no_xray_and_palpation_marks_the_skin(make_window, qtbot):
    window = make_window(LANDMARK)
    sim = window.sim
    assert not window.monitor.isVisible()
    _press(qtbot, window, Qt.Key.Key_F)
    qtbot.wait(200)
    assert sim.images == []
    # palpation mode is the default without images: right-click on the back over a spinous process
    tip = sim.anatomy.landmark("L4.spinous_tip")
    window._on_pick(sim.anatomy.skin_point_behind(tip))
    assert sim.palpations and sim.palpations[-1].finding == "spinous process"
    assert "spinous process" in window.log.item(window.log.count() - 1).text()
    # the needle panel reads out what was felt and how deep, and the marker on the skin says it too
    felt = sim.palpations[-1].depth_mm
    assert f"{felt:.0f} mm deep" in window.palpation_label.text()
    assert any(name.startswith("palpation_label:") for name in window.plotter.actors)
    # the spine cannot be shown in landmark mode
    _press(qtbot, window, Qt.Key.Key_V)
    assert not sim.spine_visible


def _enter_on_the_midline(window):
    """The needle on the skin over L4-L5 on a line clear of bone (as a trainee would choose it);
    returns (target, entry)."""
    from simulator.procedures.lumbar_interlaminar import clear_path_entry
    from simulator.protocol import commands as cmd

    anatomy = window.sim.anatomy
    target = anatomy.landmark("L4-L5.epidural_target")
    entry, direction = clear_path_entry(anatomy, target, 0.0)
    assert window.execute(cmd.SetEntry(point_mm=tuple(float(v) for v in entry),
                                       direction=tuple(float(v) for v in direction)))
    return target, entry


def test_landmark_mode_syringe_force_aspiration_and_bevel_by_keyboard(make_window, qtbot):
    """Landmark technique by keyboard: a saline syringe on the hub (Y) traces its pressure live at
    every step until it gives; the force felt is shown; A aspirates (the hub stays dry in the
    epidural space); B turns the bevel."""
    window = make_window(LANDMARK)
    sim = window.sim
    target, entry = _enter_on_the_midline(window)
    depth_to_target = float(np.linalg.norm(target - entry))
    while sim.needle.depth_mm < depth_to_target - 12.0:
        _press(qtbot, window, Qt.Key.Key_Up, Qt.KeyboardModifier.ShiftModifier)
    assert "N" in window.feel_label.text()
    _press(qtbot, window, Qt.Key.Key_Y)
    assert sim.syringe == "saline"
    lost = False
    while sim.needle.depth_mm < depth_to_target + 8.0 and not lost:
        before = len(window.trace.readings)
        _press(qtbot, window, Qt.Key.Key_Up)
        assert len(window.trace.readings) == before + 1  # a reading at every step, shown at once
        lost = any(e.kind == "loss_of_resistance" for e in sim.events)
    assert lost, "the syringe never gave"
    assert max(p for _, p in window.trace.readings) >= 300.0
    # the force felt is traced live too, and both traces can be read against time
    assert len(window.force_trace.readings) == len(sim.force_trace) > 5
    assert max(f for _, f in window.force_trace.readings) > 3.0  # the ligaments push back
    window.trace_against.setCurrentText("time")
    assert [x for x, _ in window.trace.points()] == sim.lor_times_s
    assert [x for x, _ in window.force_trace.points()] == [t for t, _, _ in sim.force_trace]
    _press(qtbot, window, Qt.Key.Key_A)
    assert any(e.kind == "aspirated" for e in sim.events)
    assert "Aspiration" in window.log.item(window.log.count() - 1).text()
    assert "dry" in window.hub_label.text()
    _press(qtbot, window, Qt.Key.Key_B)
    assert sim.needle.bevel_roll_deg == 90.0
    _press(qtbot, window, Qt.Key.Key_Y)
    assert sim.syringe is None


def test_the_drug_syringe_and_the_scenario_picker(make_window, qtbot):
    """D injects the chosen drug and volume (logged by name); Ctrl+O's picker lists every shipped
    scenario by procedure with its brief, and a choice closes the window with the case to open
    next."""
    from simulator.scenario.loader import builtin_scenarios

    window = make_window(LANDMARK)
    sim = window.sim
    _enter_on_the_midline(window)
    _press(qtbot, window, Qt.Key.Key_Up, Qt.KeyboardModifier.ShiftModifier)
    window.drug_choice.setCurrentIndex(window.drug_choice.findData("dexamethasone_10mg_ml"))
    window.drug_ml.setValue(1.5)
    _press(qtbot, window, Qt.Key.Key_D)
    injected = [e for e in sim.events if e.kind == "drug_injected"]
    assert len(injected) == 1 and injected[0].data["volume_ml"] == 1.5 and not injected[0].data["particulate"]
    assert "Dexamethasone" in window.log.item(window.log.count() - 1).text()

    from simulator.app.scenario_picker import ScenarioPicker

    picker = ScenarioPicker(window, current=sim.scenario.id)
    qtbot.addWidget(picker)
    assert sorted(picker.names()) == sorted(builtin_scenarios())
    assert picker.tree.topLevelItemCount() == 12  # every procedure
    picker.select("sacroiliac_joint_right_fluoroscopy")
    assert "sacroiliac" in picker.brief.toPlainText().lower()
    picker._accept_item(picker.tree.currentItem())
    assert picker.chosen == "sacroiliac_joint_right_fluoroscopy"


def test_a_medial_branch_case_opens_with_its_views_and_the_contrast_is_read_by_key(make_window, qtbot):
    """A case whose target is a bone, not an interspace (L3 medial branch), opens with its standard
    views in the C-arm panel; after contrast, R reports the reading chosen in the needle panel, the
    log echoes it without giving the answer away, and the debrief shows the answer key."""
    window = make_window("lumbar_medial_branch_l3_right_fluoroscopy")
    views = [window.views.itemText(i) for i in range(window.views.count())]
    assert any("Scotty dog" in v for v in views), views
    _enter_on_the_midline(window)
    _press(qtbot, window, Qt.Key.Key_Up, Qt.KeyboardModifier.ShiftModifier)
    _press(qtbot, window, Qt.Key.Key_C)
    run = [e for e in window.sim.events if e.kind == "contrast_injected"][-1]
    window.pattern_choice.setCurrentIndex(window.pattern_choice.findData("soft_tissue"))
    _press(qtbot, window, Qt.Key.Key_R)
    reported = [e for e in window.sim.events if e.kind == "pattern_reported"]
    assert len(reported) == 1 and reported[0].data["pattern"] == "soft_tissue"
    assert reported[0].data["correct"] == (run.data["compartment"] == "soft_tissue" and not run.data["vascular"])
    line = window.log.item(window.log.count() - 1).text()
    assert "soft tissue" in line and "right" not in line and "wrong" not in line
    window.finish()
    qtbot.waitUntil(lambda: window.debrief_dialog is not None, timeout=10_000)
    assert "you read soft tissue" in window.debrief_dialog.findChild(QTextBrowser, "debrief_text").toPlainText()


def test_the_debrief_replays_the_attempt(make_window, qtbot):
    """The debrief's Replay button opens the replay window on this attempt, ending where it ended."""
    from PyQt6.QtWidgets import QPushButton

    from simulator.simulation.reference import run_reference

    window = make_window(FLUORO)
    run_reference(window.sim, finish=False)
    window.finish()
    qtbot.waitUntil(lambda: window.debrief_dialog is not None, timeout=10_000)
    window.debrief_dialog.findChild(QPushButton, "replay").click()
    replay = window.replay_window
    assert replay is not None
    qtbot.waitUntil(replay.isVisible, timeout=10_000)
    replay.seek(len(replay.timeline.steps) - 1)
    assert np.allclose(replay.shown_tip_mm(), window.sim.needle.tip_mm, atol=0.01)


def test_an_attempt_cut_short_is_resumed_in_the_window_and_carried_on(qtbot, gui_anatomy, tmp_path):
    """A station that stopped mid-attempt: the window reopens the stored attempt where it was (the
    needle at its depth) and the next key press is committed to the same attempt."""
    from simulator.app.main import resume_window, trainee
    from simulator.protocol import commands as cmd
    from simulator.records.recording import StoreRecorder
    from simulator.records.store import Store
    from simulator.simulation.simulation import Simulation

    url = f"sqlite:///{tmp_path / 'station.db'}"
    store = Store.open(url)
    recorder = StoreRecorder(store, store.sign_in(*trainee()))
    sim = Simulation(load_scenario(FLUORO), anatomy=gui_anatomy, image_size_px=64, recorders=[recorder])
    target = gui_anatomy.landmark("L4-L5.epidural_target")
    sim.apply(cmd.SetEntry(point_mm=tuple(float(v) for v in gui_anatomy.skin_point_behind(target))))
    sim.apply(cmd.Advance(distance_mm=12.0))
    store.close()  # the station goes away: the attempt is left incomplete
    store = Store.open(url)
    actor = store.sign_in(*trainee())
    assert store.attempt(actor, recorder.attempt_id).status == "incomplete"

    window = resume_window(store, recorder.attempt_id, anatomy=gui_anatomy, image_size_px=128)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    assert window.sim.needle.depth_mm == pytest.approx(sim.needle.depth_mm)
    _press(qtbot, window, Qt.Key.Key_Up)
    assert window.sim.needle.depth_mm > sim.needle.depth_mm
    record = store.attempt_record(actor, recorder.attempt_id)
    assert [c.command.command for c in record.commands] == ["set_entry", "advance", "advance"]


def test_the_window_records_into_the_store_and_the_instructor_sees_the_report(qtbot, gui_anatomy, tmp_path):
    """An attempt made in the window is in the store, finished with its score; the Instructor menu's
    results (behind the instructor password) list it and its report shows it by procedure and
    guidance, built off the GUI thread, and written as HTML and PDF."""
    from simulator.app.main import create_window
    from simulator.app.results import ResultsDialog
    from simulator.errors import SpineSimError
    from simulator.records.store import Store
    from simulator.simulation.reference import run_reference

    store = Store.open(f"sqlite:///{tmp_path / 'station.db'}")
    window = create_window(FLUORO, anatomy=gui_anatomy, record_path=tmp_path / "a.jsonl", image_size_px=96,
                           store=store)
    qtbot.addWidget(window)
    run_reference(window.sim, finish=False)
    window.finish()
    store.add_user(None, "lee", "Dr Lee", "instructor", password="a long password")
    with pytest.raises(SpineSimError, match="wrong instructor password"):
        store.unlock("lee", "not it")
    lee = store.unlock("lee", "a long password")
    (stored,) = store.attempts(lee)
    assert stored.status == "finished" and store.scorecard(lee, stored.id)["score"] == window.sim.scorecard.score
    results = ResultsDialog(store, lee, export_folder=tmp_path / "report")
    qtbot.addWidget(results)
    results.show()
    qtbot.waitUntil(lambda: not results.running, timeout=60_000)
    assert results.table.rowCount() == 1
    text = results.report_view.toPlainText()
    assert "lumbar interlaminar" in text.lower() and "1/1" in text
    html, pdf = results.export_report()
    assert "1/1" in html.read_text(encoding="utf-8") and pdf.read_bytes().startswith(b"%PDF")


def test_the_window_layout_and_the_trainees_name_are_remembered(make_window, qtbot):
    """The window's size and split come back as the trainee left them; the sign-in offers the last
    name and keeps attempts under an account made from it."""
    from simulator.app.sign_in import SignInDialog, account_for

    window = make_window(FLUORO)
    # the panels scroll, so the window fits a small screen (the virtual one is 800 x 600)
    assert window.minimumSizeHint().height() <= 600
    window.resize(700, 520)
    window.splitter.setSizes([300, 400])
    sizes = window.splitter.sizes()
    window.close()
    again = make_window(FLUORO)
    assert (again.width(), again.height()) == (700, 520)
    assert again.splitter.sizes() == sizes

    assert account_for("  Dr  Ana María Ruiz ") == "dr.ana.maria.ruiz"
    dialog = SignInDialog()
    qtbot.addWidget(dialog)
    dialog.name.setText("Ana Ruiz")
    dialog.accept()
    assert dialog.chosen() == ("ana.ruiz", "Ana Ruiz")
    from simulator.app.main import trainee

    assert trainee() == ("ana.ruiz", "Ana Ruiz")  # the next attempt is kept under her name
    offered = SignInDialog()
    qtbot.addWidget(offered)
    assert offered.name.text() == "Ana Ruiz"
    offered.name.setText("  !! ")
    assert not offered.buttons.button(offered.buttons.StandardButton.Ok).isEnabled()


def _screen_point(window, point_mm):
    """Where a world point shows in the 3D view, in the widget's coordinates (Qt: y down)."""
    from PyQt6.QtCore import QPoint

    renderer = window.plotter.renderer
    renderer.SetWorldPoint(*[float(v) for v in point_mm], 1.0)
    renderer.WorldToDisplay()
    x, y, _ = renderer.GetDisplayPoint()
    ratio = window.plotter.devicePixelRatioF()
    height_px = window.plotter.ren_win.GetSize()[1]
    return QPoint(int(round(x / ratio)), int(round((height_px - y) / ratio)))


def _right_click(qtbot, window, point_mm):
    """Zoom the 3D view onto the back round ``point_mm`` (as a trainee does before choosing), then
    right-click where the point shows."""
    point = np.asarray(point_mm, float)
    window.plotter.camera_position = [tuple(point - np.array([0.0, 250.0, 0.0])), tuple(point), (0.0, 0.0, 1.0)]
    window.plotter.render()
    qtbot.mouseClick(window.plotter, Qt.MouseButton.RightButton, pos=_screen_point(window, point))


def _press_until(qtbot, window, done, key, modifier=Qt.KeyboardModifier.NoModifier, most: int = 80, then=None):
    """Press ``key`` until ``done()`` (at most ``most`` times: a needle stopped by bone fails the
    test instead of looping)."""
    for _ in range(most):
        if done():
            return
        _press(qtbot, window, key, modifier)
        if then is not None:
            _press(qtbot, window, then)
    assert done(), f"still not there after {most} presses"


def test_a_whole_fluoroscopy_attempt_by_mouse_and_keyboard(make_window, qtbot):
    """The trainee's hands only: a right-click on the skin in the 3D view picks the entry where the
    mouse is; keys aim, advance, take images (thumbnails in the strip, each shown again on a click),
    run the pedal, inject and read contrast, and finish; the debrief shows the score, the images
    taken and the answer key."""
    from simulator.procedures.lumbar_interlaminar import clear_path_entry

    window = make_window(FLUORO)
    sim = window.sim
    target = sim.anatomy.landmark("L4-L5.epidural_target")
    entry, direction = clear_path_entry(sim.anatomy, target, 0.0)
    window.plotter.render()
    _right_click(qtbot, window, entry)
    qtbot.waitUntil(lambda: sim.needle.inserted, timeout=5_000)
    # the picked point is on the skin where the mouse was (within a few pixels' worth of mm)
    assert np.linalg.norm(sim.needle.entry_mm - entry) < 3.0
    assert "Depth" in window.depth_label.text()
    # AP image by key: a thumbnail appears in the strip
    _press(qtbot, window, Qt.Key.Key_F)
    qtbot.waitUntil(lambda: window.image_strip.count() == 1 and not window._busy, timeout=60_000)
    # aim along the planned path and go in with the syringe pressed at each millimetre near the space
    cranial_deg = float(np.degrees(np.arctan2(direction[2], direction[1])))
    for _ in range(int(round(abs(cranial_deg) / 2.0))):
        _press(qtbot, window, Qt.Key.Key_Up if cranial_deg > 0 else Qt.Key.Key_Down,
               Qt.KeyboardModifier.ControlModifier)
    depth_to_target = float(np.linalg.norm(target - sim.needle.entry_mm))
    _press_until(qtbot, window, lambda: sim.needle.depth_mm >= depth_to_target - 12.0, Qt.Key.Key_Up,
                 Qt.KeyboardModifier.ShiftModifier, most=30)
    # a lateral image to check depth (key 2, then F): a second thumbnail
    _press(qtbot, window, Qt.Key.Key_2)
    _press(qtbot, window, Qt.Key.Key_F)
    qtbot.waitUntil(lambda: window.image_strip.count() == 2 and not window._busy, timeout=60_000)
    _press_until(qtbot, window, lambda: any(e.kind == "loss_of_resistance" for e in sim.events), Qt.Key.Key_Up,
                 most=25, then=Qt.Key.Key_L)
    # the pedal held while the needle moves: the live image follows each key press at once
    qtbot.keyPress(window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: window.monitor.image is not None and "LIVE" in window.monitor._caption, timeout=60_000)
    shown = window.monitor.image.copy()
    _press(qtbot, window, Qt.Key.Key_Down)
    assert not np.array_equal(window.monitor.image, shown)
    _press(qtbot, window, Qt.Key.Key_Up)
    _press(qtbot, window, Qt.Key.Key_C)
    qtbot.keyRelease(window, Qt.Key.Key_Space)
    assert "LIH" in window.monitor._caption
    window.pattern_choice.setCurrentIndex(window.pattern_choice.findData("epidural"))
    _press(qtbot, window, Qt.Key.Key_R)
    # a click on the first thumbnail shows that image again on the monitor
    first = window.image_strip.item(0)
    qtbot.mouseClick(window.image_strip.viewport(), Qt.MouseButton.LeftButton,
                     pos=window.image_strip.visualItemRect(first).center())
    assert window.monitor._caption.startswith("#1 (review)")
    assert np.array_equal(window.monitor.image, sim.images[0].display)
    _press(qtbot, window, Qt.Key.Key_F10)
    qtbot.waitUntil(lambda: window.debrief_dialog is not None, timeout=10_000)
    debrief = window.debrief_dialog
    text = debrief.findChild(QTextBrowser, "debrief_text").toPlainText()
    assert ("PASS" in text or "FAIL" in text) and "/ 100" in text and "you read epidural spread" in text
    from PyQt6.QtWidgets import QListWidget

    assert debrief.findChild(QListWidget, "debrief_images").count() == len(sim.images) == 2
    # the 3D view reveals the spine, the needle's path and (computed off the GUI thread) the zone
    qtbot.waitUntil(lambda: "needle_path" in window.plotter.actors, timeout=5_000)
    qtbot.waitUntil(lambda: "target_zone" in window.plotter.actors, timeout=30_000)
    assert window.plotter.actors["target_zone"].GetMapper().GetInput().GetNumberOfPoints() > 0
    # the levels round the target and the needle are shown, the spine beyond them not until asked
    structures = window.scene._structure_actors
    assert structures["L4"].GetVisibility() and structures["L5"].GetVisibility()
    assert structures["L4-L5.ligamentum_flavum"].GetVisibility()
    far = ("L1", "L2", "rib_12_left")
    assert not any(structures[name].GetVisibility() for name in far)
    # the C-arm is out of the way (the View menu says so, and brings it back)
    assert not any(a.GetVisibility() for a in window.scene._carm_actors)
    assert not window.layer_actions["carm"].isChecked()
    debrief.findChild(QCheckBox, "debrief_whole_spine").setChecked(True)
    assert all(structures[name].GetVisibility() for name in far)
    debrief.findChild(QCheckBox, "debrief_whole_spine").setChecked(False)
    assert not any(structures[name].GetVisibility() for name in far)


def test_a_whole_landmark_attempt_by_mouse_and_keyboard(make_window, qtbot):
    """Landmark mode by hand: right-clicks palpate the spinous processes (markers on the skin), P
    switches the right-click to choosing the entry, the keys advance with the syringe on the hub to
    the loss of resistance; no image is ever made and the 3D view's layers stay fixed."""
    window = make_window(LANDMARK)
    sim = window.sim
    anatomy = sim.anatomy
    assert window.layer_actions and not any(a.isEnabled() for a in window.layer_actions.values())
    for level in ("L4", "L5"):
        _right_click(qtbot, window, anatomy.skin_point_behind(anatomy.landmark(f"{level}.spinous_tip")))
    qtbot.waitUntil(lambda: len(sim.palpations) == 2, timeout=5_000)
    assert all(p.finding == "spinous process" for p in sim.palpations)
    _press(qtbot, window, Qt.Key.Key_P)  # right-click now chooses the entry
    from simulator.procedures.lumbar_interlaminar import clear_path_entry

    target = anatomy.landmark("L4-L5.epidural_target")
    entry, _ = clear_path_entry(anatomy, target, 0.0)
    _right_click(qtbot, window, entry)
    qtbot.waitUntil(lambda: sim.needle.inserted, timeout=5_000)
    assert np.linalg.norm(sim.needle.entry_mm - entry) < 3.0
    # point the needle at the target as the trainee would (the redirect keys, 2 degrees a press)
    for _ in range(40):
        want = target - sim.needle.entry_mm
        error_deg = float(np.degrees(np.arctan2(want[2], want[1])
                                     - np.arctan2(sim.needle.direction[2], sim.needle.direction[1])))
        if abs(error_deg) <= 1.0:
            break
        _press(qtbot, window, Qt.Key.Key_Up if error_deg > 0 else Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    depth_to_target = float(np.linalg.norm(target - sim.needle.entry_mm))
    _press_until(qtbot, window, lambda: sim.needle.depth_mm >= depth_to_target - 12.0, Qt.Key.Key_Up,
                 Qt.KeyboardModifier.ShiftModifier, most=30)
    _press(qtbot, window, Qt.Key.Key_Y)
    _press_until(qtbot, window, lambda: any(e.kind == "loss_of_resistance" for e in sim.events), Qt.Key.Key_Up,
                 most=25)
    _press(qtbot, window, Qt.Key.Key_F)
    _press(qtbot, window, Qt.Key.Key_F10)
    qtbot.waitUntil(lambda: window.debrief_dialog is not None, timeout=10_000)
    assert sim.images == [] and window.image_strip.count() == 0
    assert sim.scorecard.placement.tissue == "epidural_fat", sim.scorecard.placement


def test_the_help_overlay_and_the_layers_of_the_3d_view(make_window, qtbot):
    """F1 lays every shortcut over the window and Esc takes it away; under fluoroscopy the View
    menu hides and shows the C-arm (the 3D picture changes) and Home brings the operator's view."""
    window = make_window(FLUORO)
    _press(qtbot, window, Qt.Key.Key_F1)
    overlay = window.help_overlay
    assert overlay.isVisible() and overlay.geometry() == window.centralWidget().geometry()
    picture = overlay.grab().toImage()
    assert picture.pixelColor(5, 5).lightness() < 40  # the window is dimmed under the keys
    qtbot.keyClick(overlay, Qt.Key.Key_Escape)
    assert not overlay.isVisible()
    before = window.plotter.screenshot(return_img=True)
    window.layer_actions["carm"].trigger()
    assert not any(a.GetVisibility() for a in window.scene._carm_actors)
    # the frame comes at the view's next paint
    qtbot.waitUntil(lambda: np.abs(before.astype(int)
                                   - window.plotter.screenshot(return_img=True).astype(int)).mean() > 1.0,
                    timeout=5_000)
    # the C-arm stays hidden when it moves
    _press(qtbot, window, Qt.Key.Key_2)
    assert not any(a.GetVisibility() for a in window.scene._carm_actors)
    window.layer_actions["carm"].trigger()
    assert all(a.GetVisibility() for a in window.scene._carm_actors)
    window.plotter.camera.azimuth = 60.0
    camera = window.plotter.camera_position
    _press(qtbot, window, Qt.Key.Key_Home)
    assert window.plotter.camera_position != camera


def test_building_a_patient_can_be_cancelled(qtbot, monkeypatch):
    """A slow first build shows a progress dialog with Cancel: cancelling gives the window back at
    once (the build goes on unseen and its result is dropped)."""
    import threading

    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication, QProgressDialog

    import simulator.anatomy.anatomy as anatomy_mod
    from simulator.app.main import BuildCancelled, build_patient

    release = threading.Event()
    finished = threading.Event()

    def slow_build(scenario):
        release.wait(30)
        finished.set()
        raise RuntimeError("dropped")

    monkeypatch.setattr(anatomy_mod, "anatomy_for_scenario", slow_build)

    def cancel():
        dialog = next(w for w in QApplication.topLevelWidgets()
                      if isinstance(w, QProgressDialog) and w.objectName() == "build_progress" and w.isVisible())
        dialog.cancel()

    QTimer.singleShot(600, cancel)
    with pytest.raises(BuildCancelled):
        build_patient(load_scenario(FLUORO))
    assert not finished.is_set()  # the window came back before the build ended
    release.set()
    qtbot.waitUntil(finished.is_set, timeout=10_000)


def test_an_unexpected_error_is_logged_and_shown_not_a_crash(monkeypatch, tmp_path):
    """The crash handler writes the traceback to the data folder's log and shows a readable message
    (the attempt is on disk already: it is written command by command)."""
    import sys

    from PyQt6.QtWidgets import QMessageBox

    from simulator.app.main import install_crash_handler

    monkeypatch.setenv("SPINESIM_DATA_DIR", str(tmp_path))
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text: shown.append(text))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    install_crash_handler()
    try:
        raise ValueError("the widget went wrong")
    except ValueError:
        sys.excepthook(*sys.exc_info())
    log = (tmp_path / "crash.log").read_text()
    assert "ValueError: the widget went wrong" in log and "Traceback" in log
    assert len(shown) == 1 and "saved" in shown[0] and "Traceback" not in shown[0]


def _answer_instructor_sign_in(qtbot, account, password):
    """Fill the instructor sign-in when it comes up (it is modal: answered from a timer)."""
    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication

    from simulator.app.instructor import InstructorSignIn

    def answer():
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, InstructorSignIn):
            QTimer.singleShot(50, answer)
            return
        qtbot.keyClicks(dialog.account, account)
        qtbot.keyClicks(dialog.password, password)
        dialog.accept()

    QTimer.singleShot(50, answer)


def _menu_action(window, menu_title, label):
    from PyQt6.QtWidgets import QMenu

    for menu in window.menuBar().findChildren(QMenu):
        if menu.title().replace("&", "") == menu_title:
            for action in menu.actions():
                if action.text() == label:
                    return action
    raise KeyError(label)


def test_the_instructor_and_trainee_flows_from_the_menus(qtbot, gui_anatomy, tmp_path, monkeypatch):
    """From the training window's menus: the instructor gives the password once, writes a scenario in
    the editor (the picker then offers it), builds a course of it, sees the trainee's attempt in the
    results; leaving instructor mode asks for the password again. The trainee's My courses starts the
    course's case, kept under the course; My progress lists the attempt."""
    from simulator.app.main import create_window
    from simulator.app.scenario_picker import ScenarioPicker
    from simulator.records.store import Store
    from simulator.scenario.loader import user_scenarios
    from simulator.simulation.reference import run_reference

    monkeypatch.setenv("SPINESIM_DATA_DIR", str(tmp_path / "data"))
    store = Store.open(f"sqlite:///{tmp_path / 'station.db'}")
    store.add_user(None, "lee", "Dr Lee", "instructor", password="a long password")
    window = create_window(FLUORO, anatomy=gui_anatomy, record_path=tmp_path / "a.jsonl", image_size_px=64,
                           store=store)
    qtbot.addWidget(window)
    window.show()
    run_reference(window.sim, finish=False)
    window.finish()

    # the scenario editor, behind the password
    _answer_instructor_sign_in(qtbot, "lee", "a long password")
    _menu_action(window, "Instructor", "Scenario editor...").trigger()
    assert window.instructor is not None and window.instructor.is_instructor
    editor = next(d for d in window.dialogs if d.objectName() == "scenario_editor")
    editor.ask_before_discarding = False
    editor.fields["id"].selectAll()
    qtbot.keyClicks(editor.fields["id"], "night_shift_l4l5")
    editor.fields["title"].selectAll()
    qtbot.keyClicks(editor.fields["title"], "Night shift, L4-L5")
    qtbot.waitUntil(lambda: editor.validation.text() == "Valid" and editor.save_button.isEnabled(), timeout=5_000)
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    assert "night_shift_l4l5" in user_scenarios()
    picker = ScenarioPicker(window)
    qtbot.addWidget(picker)
    assert any(name.endswith("night_shift_l4l5.toml") for name in picker.names())

    # the course builder opens without a second password; a course of the built-in case for the trainee
    _menu_action(window, "Instructor", "Courses...").trigger()
    builder = next(d for d in window.dialogs if d.objectName() == "course_builder")
    qtbot.keyClicks(builder.new_name, "Night block")
    qtbot.mouseClick(builder.create_button, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(builder.scenario_filter, FLUORO)
    qtbot.mouseClick(builder.add_scenario_button, Qt.MouseButton.LeftButton)
    (course,) = store.courses(window.instructor)
    (attempt,) = store.attempts(window.instructor)
    account = attempt.owner
    store.add_course_members(window.instructor, course.id, [account])
    assert store.course(window.instructor, course.id).scenario_ids == (FLUORO,)

    # the CT import dialog, also without a second password
    _menu_action(window, "Instructor", "Import a patient CT...").trigger()
    ct_import = next(d for d in window.dialogs if d.objectName() == "ct_import")
    assert ct_import.isVisible() and ct_import.import_button.isEnabled()

    # results: the attempt made in this window
    _menu_action(window, "Instructor", "Results, report and exports...").trigger()
    results = next(d for d in window.dialogs if d.objectName() == "results")
    qtbot.waitUntil(lambda: results.table.rowCount() == 1, timeout=10_000)

    # leaving instructor mode closes the instructor's dialogs; the password is asked again
    _menu_action(window, "Instructor", "Leave instructor mode").trigger()
    assert window.instructor is None and not builder.isVisible() and not ct_import.isVisible()

    # the trainee: My progress lists the attempt; My courses starts the course's case
    progress = window.my_progress()
    assert progress is not None and progress.objectName() == "progress"
    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication

    from simulator.app.courses import MyCourses

    def start_course_case():
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, MyCourses):
            QTimer.singleShot(50, start_course_case)
            return
        # the window's attempt (no course) counts for the course: its case shows passed, so none
        # is marked next; the trainee picks it to do again
        assert dialog.status(course.id, FLUORO).state == "passed"
        top = dialog.tree.topLevelItem(0)
        dialog.tree.scrollToItem(top.child(0))
        qtbot.mouseClick(dialog.tree.viewport(), Qt.MouseButton.LeftButton,
                         pos=dialog.tree.visualItemRect(top.child(0)).center())
        qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)

    QTimer.singleShot(50, start_course_case)
    _menu_action(window, "File", "My courses...").trigger()
    assert (window.next_scenario, window.next_course) == (FLUORO, course.id)
    nxt = create_window(window.next_scenario, anatomy=gui_anatomy, record_path=tmp_path / "b.jsonl",
                        image_size_px=64, store=store, course=window.next_course)
    qtbot.addWidget(nxt)
    nxt.advance(1.0)
    lee = store.unlock("lee", "a long password")
    assert [a.course for a in store.attempts(lee, course=course.id)] == ["Night block"]
