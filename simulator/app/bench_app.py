"""The app's speed as a trainee feels it, for ``spinesim bench``: start-up to an interactive window,
a needle key press to the updated X-ray on the monitor and to the updated 3D view, and the longest
time the window stops answering during an attempt.

Each figure is measured in a fresh process (``python -m simulator.app.bench_app MODE``) on the
real window, under the display the bench finds (Xvfb on a headless machine), and printed as JSON.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

#: perf_counter() at the moment this module was imported: the start-up clock starts in the parent
#: (``SPINESIM_BENCH_T0``, wall time) so the interpreter's own start and the imports count.
_T0_WALL = float(os.environ.get("SPINESIM_BENCH_T0", time.time()))


def _median(values: list[float]) -> dict:
    if not values:
        return {"median_ms": None, "runs_ms": []}
    return {"median_ms": round(1000.0 * statistics.median(values), 2),
            "runs_ms": [round(1000.0 * v, 2) for v in values]}


def _open_default_window(scenario: str | None = None):
    from PyQt6.QtWidgets import QApplication

    from simulator.app.main import _open_window

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = _open_window(scenario, None, store=None)
    if window is None:
        raise SystemExit("the window could not be opened")
    deadline = time.monotonic() + 30.0
    while not window.isVisible() or not window.isActiveWindow():
        app.processEvents()
        window.activateWindow()
        if time.monotonic() > deadline:
            break
    window.plotter.render()
    app.processEvents()
    return app, window


class _Heartbeat:
    """5 ms beats, each tagged with the part of the attempt under way: the gaps between them are
    the window's freezes. ``wait_until`` and ``between_keys`` drive the event loop meanwhile."""

    def __init__(self, app):
        from PyQt6.QtCore import QTimer

        self.app = app
        self.phase = "start"
        self.beats: list[tuple[float, str]] = []
        self.timeouts: dict[str, int] = {}
        self.timer = QTimer()
        self.timer.timeout.connect(lambda: self.beats.append((time.perf_counter(), self.phase)))
        self.timer.start(5)

    def wait_until(self, flag, timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while not flag() and time.monotonic() < deadline:
            self.app.processEvents()
        if not flag():
            # counted, not timed: a press that never showed is no latency
            self.timeouts[self.phase] = self.timeouts.get(self.phase, 0) + 1
            return False
        return True

    def between_keys(self, s: float = 0.05) -> None:
        # a hand goes from one key to the next in no less than this: the window gets to paint what
        # the last key changed before the next key's work (back to back, two keys' frames would
        # be timed as one freeze no trainee could make)
        deadline = time.monotonic() + s
        while time.monotonic() < deadline:
            self.app.processEvents()

    def stalls(self) -> dict:
        """Stop; the longest gap, those over 0.1 s, both by part of the attempt."""
        import numpy as np

        self.timer.stop()
        times = np.array([t for t, _ in self.beats])
        gaps = np.diff(times) if len(self.beats) > 1 else np.array([0.0])
        stalls_by_phase: dict[str, int] = {}
        longest_by_phase: dict[str, float] = {}
        for gap, (_, name) in zip(gaps, self.beats[1:]):
            longest_by_phase[name] = max(longest_by_phase.get(name, 0.0), round(1000.0 * float(gap), 1))
            if gap > 0.1:
                stalls_by_phase[name] = stalls_by_phase.get(name, 0) + 1
        return {"gui_longest_stall_ms": round(1000.0 * float(gaps.max()), 1),
                "gui_stalls_over_100ms": int((gaps > 0.1).sum()),
                "gui_stalls_over_100ms_by_phase": stalls_by_phase,
                "gui_longest_stall_ms_by_phase": longest_by_phase,
                "waits_timed_out_by_phase": self.timeouts}


def startup() -> dict:
    """Seconds from the process's start (set by the parent) to the default scenario's window shown,
    rendered and taking events, with the patient in the cache and the compiled code warm."""
    _open_default_window()
    return {"startup_s": time.time() - _T0_WALL}


def latency(repeats: int = 30, scenario: str | None = None) -> dict:
    """Key press to picture, measured on the real window (medians over ``repeats`` presses), on the
    default scenario or ``scenario``."""
    from PyQt6.QtCore import Qt
    from PyQt6.QtTest import QTest

    from simulator.protocol import commands as cmd

    app, window = _open_default_window(scenario)
    sim = window.sim
    anatomy = sim.anatomy
    target = sim.procedure.target_point(anatomy, sim.scenario)
    entry = anatomy.skin_point_behind(target)
    window.execute(cmd.SetEntry(point_mm=tuple(float(v) for v in entry), direction=(0.0, 1.0, 0.0)))
    window.advance(5.0)

    rendered = {"at": 0.0}
    window.plotter.ren_win.AddObserver("EndEvent", lambda *_: rendered.__setitem__("at", time.perf_counter()))

    # the longest gap between 5 ms heartbeats while the attempt goes on (the window's freezes)
    heart = _Heartbeat(app)
    wait_until, between_keys = heart.wait_until, heart.between_keys

    # a single X-ray (F) at an unchanged pose: the first one sets the pose, the next ones time it
    heart.phase = "xray_same_pose"
    window.take_image()
    wait_until(lambda: len(sim.images) == 1 and not window._busy)
    shot_s = []
    for _ in range(max(3, repeats // 5)):
        n = len(sim.images)
        t0 = time.perf_counter()
        QTest.keyClick(window, Qt.Key.Key_F)
        # the next X-ray key is pressed once this one is done (a press while busy is refused); the
        # paint timed is the one that showed the new image (the monitor may repaint the last one
        # before it arrives)
        if wait_until(lambda n=n: window.monitor.painted_caption.startswith(f"#{n + 1} ") and not window._busy):
            shot_s.append(window.monitor.painted_at_s - t0)

    # the pedal down, then needle key presses: each one to the live image on the monitor and to
    # the 3D view
    heart.phase = "needle_keys_pedal_down"
    window.pedal_down()
    wait_until(lambda: window.monitor.painted_at_s > 0.0)
    to_image_s, to_3d_s = [], []
    for i in range(repeats):
        key = Qt.Key.Key_Up if i % 2 == 0 else Qt.Key.Key_Down
        t0 = time.perf_counter()
        QTest.keyClick(window, key)
        # the first paint of the monitor after the press is the one timed: the live pulses paint it
        # again while the 3D frame is awaited
        if wait_until(lambda: window.monitor.painted_at_s > t0, 5.0):
            to_image_s.append(window.monitor.painted_at_s - t0)
        if wait_until(lambda: rendered["at"] > t0, 5.0):
            to_3d_s.append(rendered["at"] - t0)
    window.pedal_up()
    between_keys()
    # C-arm keys (each a new pose: the 3D C-arm moves) and the spine shown and hidden (V)
    heart.phase = "carm_keys"
    for key in (Qt.Key.Key_BracketRight, Qt.Key.Key_BracketRight, Qt.Key.Key_BracketLeft, Qt.Key.Key_PageUp,
                Qt.Key.Key_PageDown, Qt.Key.Key_BracketLeft):
        QTest.keyClick(window, key)
        between_keys(0.2)
    heart.phase = "spine_toggle"
    for _ in range(2):
        QTest.keyClick(window, Qt.Key.Key_V)
        between_keys(0.2)
    heart.phase = "new_pose_xray"
    # a new C-arm pose (the slow image, taken off the GUI thread) and the debrief, in the heartbeat
    QTest.keyClick(window, Qt.Key.Key_3)
    n = len(sim.images)
    QTest.keyClick(window, Qt.Key.Key_F)
    wait_until(lambda: len(sim.images) > n and not window._busy)
    between_keys()
    heart.phase = "debrief"
    QTest.keyClick(window, Qt.Key.Key_F10)
    # the debrief: its dialog, the revealed 3D view, then the target zone (computed off-thread)
    wait_until(lambda: window.debrief_dialog is not None and window.target_zone_shown)
    between_keys(0.2)
    return {
        "xray_key_to_monitor_same_pose": _median(shot_s),
        "needle_key_to_live_image_on_monitor": _median(to_image_s),
        "needle_key_to_3d_view": _median(to_3d_s),
        **heart.stalls(),
        "image_size_px": sim.image_size_px,
    }


#: The case the landmark run uses (the default case's landmark twin: the same patient).
LANDMARK_CASE = "lumbar_interlaminar_l4l5_landmark"


def landmark(scenario: str = LANDMARK_CASE) -> dict:
    """The window's freezes in landmark mode: palpation by right-click along the back, the entry,
    needle keys with the loss-of-resistance syringe pressed, the debrief until its zone is in."""
    import numpy as np
    from PyQt6.QtCore import Qt
    from PyQt6.QtTest import QTest

    from simulator.errors import SpineSimError

    app, window = _open_default_window(scenario)
    sim = window.sim
    anatomy = sim.anatomy
    target = sim.procedure.target_point(anatomy, sim.scenario)
    heart = _Heartbeat(app)
    heart.phase = "palpation"
    for dx, dz in ((0, -60), (0, -30), (0, 0), (0, 30), (0, 60), (-50, 40), (50, 40)):
        try:
            point = anatomy.skin_point_behind(target + np.array([dx, 0.0, dz]))
        except SpineSimError:
            continue  # beyond the region built (a narrow neck, the end of the region)
        window._on_pick(point)  # the right-click's pick on the skin, as VTK reports it
        heart.between_keys(0.2)
    heart.phase = "entry"
    QTest.keyClick(window, Qt.Key.Key_P)  # right-click now chooses the entry
    window._on_pick(anatomy.skin_point_behind(target))
    heart.between_keys(0.2)
    heart.phase = "needle_keys_syringe"
    QTest.keyClick(window, Qt.Key.Key_Y)
    for i in range(24):
        QTest.keyClick(window, Qt.Key.Key_Up if i % 4 != 3 else Qt.Key.Key_Down)
        heart.between_keys(0.1)
        if i % 3 == 0:
            QTest.keyClick(window, Qt.Key.Key_L)
            heart.between_keys(0.1)
    heart.phase = "debrief"
    QTest.keyClick(window, Qt.Key.Key_F10)
    heart.wait_until(lambda: window.debrief_dialog is not None and window.target_zone_shown)
    heart.between_keys(0.2)
    return {"scenario": scenario, "palpations": sum(e.kind == "palpated" for e in sim.events), **heart.stalls()}


def main(argv: list[str]) -> int:
    mode = argv[0] if argv else "startup"
    if mode == "startup":
        result = startup()
    elif mode == "landmark":
        result = landmark(*argv[1:2])
    else:
        result = latency(int(argv[1]) if len(argv) > 1 else 30, argv[2] if len(argv) > 2 else None)
    print(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)  # the window's VTK context needs no tidy exit; the figures are out


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
