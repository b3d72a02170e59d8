"""Starting the desktop app: load the scenario, build the patient off the GUI thread, open the window."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PyQt6.QtCore import QObject, QThread, QThreadPool, pyqtSignal
from PyQt6.QtWidgets import QApplication, QMessageBox, QProgressDialog

from simulator.errors import SpineSimError
from simulator.paths import data_dir


class _Loader(QObject):
    """Builds the anatomy and its meshes (the slow part of a first start) in a worker thread."""

    finished = pyqtSignal(object)
    failed = pyqtSignal(str)

    def __init__(self, loaded):
        super().__init__()
        self.loaded = loaded

    def run(self):
        try:
            from simulator.anatomy.anatomy import anatomy_for_scenario

            sc = self.loaded.scenario
            anatomy = anatomy_for_scenario(sc)
            from simulator.scene.scene import shaded_polydata

            shaded_polydata(anatomy)  # the meshes with their normals, ready for the 3D view
            _ = anatomy.landmarks  # computed now, off the GUI thread
            # load the compiled ray casters now (numba's on-disk cache) on a tiny volume, so the first
            # X-ray is not slow; the patient's attenuation volume is made after the window shows
            import numpy as np

            from simulator.imaging.carm import CArmPose
            from simulator.imaging.fluoroscope import Fluoroscope
            from simulator.imaging.overlay import Overlay

            centre = np.array([16.0, 16.0, 16.0])
            wire = Overlay(np.stack([centre, centre + np.array([0.0, 8.0, 0.0])]), 0.5)
            Fluoroscope(np.zeros((32, 32, 32), np.float32), np.eye(4), 16).render(
                CArmPose(0.0, 0.0, tuple(float(v) for v in centre)), [wire], None, (0,))
        except SpineSimError as err:
            self.failed.emit(str(err))
        except Exception as err:  # noqa: BLE001 - shown to the user as a message
            self.failed.emit(f"{err.__class__.__name__}: {err}")
        else:
            self.finished.emit(anatomy)


class BuildCancelled(SpineSimError):
    """The user cancelled building the patient (not an error to report)."""


#: Builds the user walked away from: their threads run to the end in the background (a Python
#: thread cannot be killed), and are kept referenced until then so Qt does not destroy them running.
_ABANDONED: list = []


def build_patient(loaded, title: str = "SpineSim"):
    """The scenario's patient, built (or loaded from the cache) off the GUI thread while a progress
    dialog shows.

    Raises
    ------
    BuildCancelled
        The user pressed Cancel (the window is free at once; the build finishes unseen).
    SpineSimError
        The patient cannot be built.
    """
    progress = QProgressDialog("Building the patient (first start only; later starts use the cache)...",
                               "Cancel", 0, 0)
    progress.setObjectName("build_progress")
    progress.setWindowTitle(title)
    progress.setMinimumDuration(300)
    thread = QThread()
    loader = _Loader(loaded)
    loader.moveToThread(thread)
    thread.started.connect(loader.run)
    state = {}

    def done(anatomy):
        state["anatomy"] = anatomy
        thread.quit()

    def failed(message):
        state["error"] = message
        thread.quit()

    loader.finished.connect(done)
    loader.failed.connect(failed)
    thread.finished.connect(progress.reset)
    thread.start()
    if thread.isRunning():
        progress.exec()
    if "anatomy" not in state and "error" not in state and progress.wasCanceled():
        _ABANDONED.append((thread, loader))
        thread.finished.connect(lambda: _ABANDONED.remove((thread, loader)))
        raise BuildCancelled("building the patient was cancelled")
    thread.wait()
    if "error" in state:
        raise SpineSimError(f"The patient could not be built: {state['error']}")
    return state["anatomy"]


def default_record_path(scenario_id: str) -> Path:
    """Where the app keeps an attempt record: the user data folder, one file per attempt."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return data_dir() / "attempts" / f"{stamp}_{scenario_id}.jsonl"


def create_window(scenario_ref: str | None = None, anatomy=None, record_path=None, image_size_px: int = 512,
                  store=None, course: int | str | None = None):
    """Build the training window synchronously (tests and scripts). Needs a QApplication. With a
    ``store``, the attempt is also recorded there, under the station's trainee (and ``course``)."""
    from simulator.app.main_window import MainWindow
    from simulator.scenario.loader import DEFAULT_SCENARIO, load_scenario
    from simulator.simulation.simulation import Simulation

    loaded = load_scenario(scenario_ref or DEFAULT_SCENARIO)
    path = record_path or default_record_path(loaded.scenario.id)
    sim = Simulation(loaded, anatomy=anatomy, record_path=path, image_size_px=image_size_px,
                     recorders=_store_recorders(store, course))
    window = MainWindow(sim, record_path=str(path))
    window.store = store
    return window


#: Who signed in at this station (account, display name); None: the station's user.
_TRAINEE: tuple[str, str] | None = None


def trainee() -> tuple[str, str | None]:
    """(account, display name) the next attempt is kept under: who signed in (File > Sign in),
    else the name last signed in at this station, else the station's user."""
    from simulator.app.settings import app_settings
    from simulator.app.sign_in import account_for
    from simulator.records.recording import station_account

    if _TRAINEE is not None:
        return _TRAINEE
    name = str(app_settings().value("trainee/name", "") or "")
    return (account_for(name), name) if account_for(name) else (station_account(), None)


def _store_recorders(store, course: int | str | None = None) -> list:
    if store is None:
        return []
    from simulator.records.recording import StoreRecorder

    account, name = trainee()
    return [StoreRecorder(store, store.sign_in(account, name), course=course)]


def sign_in(parent=None) -> bool:
    """Ask who is at the station (the last name offered); True if someone signed in."""
    global _TRAINEE
    from simulator.app.sign_in import SignInDialog

    dialog = SignInDialog(parent)
    dialog.exec()
    chosen = dialog.chosen()
    _TRAINEE = chosen or _TRAINEE
    return chosen is not None


def open_store():
    """The attempt store (the database URL from the environment or settings, else SQLite in the
    user's data folder); ``None``, after telling the user, if it cannot be opened (the attempt is
    then kept in its file only)."""
    from simulator.records.store import Store

    try:
        return Store.open()
    except SpineSimError as err:
        QMessageBox.warning(None, "SpineSim", f"The attempt database could not be opened: {err}\n\nAttempts are "
                            "kept as files in the data folder until it can.")
        return None


def install_crash_handler() -> None:
    """An unexpected error in the app is logged and shown as a message; the attempt is already on
    disk (it is written command by command), and the window stays open."""
    import traceback

    def handler(kind, value, tb):
        log = data_dir() / "crash.log"
        with open(log, "a", encoding="utf-8") as f:
            f.write("".join(traceback.format_exception(kind, value, tb)) + "\n")
        QMessageBox.warning(None, "SpineSim", f"Something went wrong: {value}\n\nYour attempt so far is "
                            f"saved. Details are in {log}.")

    sys.excepthook = handler


def resume_window(store, attempt_id: int, anatomy=None, image_size_px: int = 512):
    """The training window on an incomplete stored attempt of the signed-in trainee: its commands
    replayed on its own patient, then carried on (each new command committed to the same attempt).
    ``anatomy``: the patient, already built (else built here with a progress dialog)."""
    from simulator.app.main_window import MainWindow
    from simulator.records.recording import StoreRecorder
    from simulator.scenario.loader import parse_scenario
    from simulator.simulation.simulation import Simulation

    recorder, record = StoreRecorder.resuming(store, store.sign_in(*trainee()), attempt_id)
    scenario = record.header["scenario"]
    loaded = parse_scenario(scenario["text"], scenario.get("source", f"attempt {attempt_id}"))
    sim = Simulation.replay(loaded, record, anatomy=anatomy or build_patient(loaded), image_size_px=image_size_px)
    sim.attach(recorder)
    window = MainWindow(sim, record_path=f"attempt {attempt_id} in the database")
    window.store = store
    return window


def run_app(scenario_ref: str | None = None, record_path: str | None = None, resume: int | None = None) -> int:
    """Open the app on a scenario (default: the built-in lumbar interlaminar, L4-L5, fluoroscopy),
    or on an incomplete stored attempt (``resume``); when the trainee chooses another scenario,
    open that one in turn."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("SpineSim")
    install_crash_handler()
    store = open_store()
    if resume is not None:
        try:
            if store is None:
                raise SpineSimError("the attempt database is not available")
            window = resume_window(store, resume)
        except SpineSimError as err:
            QMessageBox.critical(None, "SpineSim", f"Attempt {resume} cannot be resumed: {err}")
            return 2
        window.show()
        status = app.exec()
        if not window.next_scenario:
            return status
        scenario_ref, record_path, course = window.next_scenario, None, window.next_course
    else:
        course = None
    from simulator.scenario.loader import DEFAULT_SCENARIO

    previous = None
    while True:
        window = _open_window(scenario_ref, record_path, store, course)
        if window is None:
            if previous is None:
                return 2
            # the new case could not be opened (or its build was cancelled): back to the last one
            scenario_ref, record_path, previous, course = previous, None, None, None
            continue
        status = app.exec()
        if not window.next_scenario:
            return status
        previous = scenario_ref or DEFAULT_SCENARIO
        scenario_ref, record_path, course = window.next_scenario, None, window.next_course


def _prepare_scoring(sim) -> None:
    try:
        sim.procedure.prepare(sim.anatomy, sim.scenario)
    except Exception:  # noqa: BLE001 - only a head start: the finish meets any error itself, and says it
        pass


def _open_window(scenario_ref: str | None, record_path: str | None, store=None, course: int | None = None):
    """Load the scenario, build its patient off the GUI thread (with a progress dialog) and show
    the training window; ``None`` if the patient cannot be built."""
    from simulator.scenario.loader import DEFAULT_SCENARIO, load_scenario

    try:
        loaded = load_scenario(scenario_ref or DEFAULT_SCENARIO)
    except SpineSimError as err:
        QMessageBox.critical(None, "SpineSim", f"{err}\n\nStarting the default scenario instead.")
        loaded = load_scenario(DEFAULT_SCENARIO)

    try:
        anatomy = build_patient(loaded)
    except BuildCancelled:
        return None
    except SpineSimError as err:
        QMessageBox.critical(None, "SpineSim", str(err))
        return None
    from simulator.app.main_window import MainWindow
    from simulator.simulation.simulation import Simulation

    path = Path(record_path) if record_path else default_record_path(loaded.scenario.id)
    try:
        recorders = _store_recorders(store, course)
    except SpineSimError as err:
        QMessageBox.warning(None, "SpineSim", f"This attempt cannot be kept in the database: {err}\n\nIt is "
                            f"kept in {path}.")
        recorders = []
    sim = Simulation(loaded, anatomy=anatomy, record_path=path, recorders=recorders)
    window = MainWindow(sim, record_path=str(path))
    window.store = store
    window.show()
    window.plotter.render()
    window.scene.warm_up()
    # the attenuation volume the X-rays need (0.5-1 s), and what scoring the finish will search the
    # tissue for (up to 0.3 s), made while the trainee looks at the case
    QThreadPool.globalInstance().start(anatomy.mu_volume)
    QThreadPool.globalInstance().start(lambda: _prepare_scoring(sim))
    return window
