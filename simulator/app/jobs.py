"""Work the windows hand to Qt's thread pool, and how it reports back (queued signals)."""

from __future__ import annotations

from PyQt6.QtCore import QObject, QRunnable, QThreadPool, pyqtSignal

from simulator.scene.scene import target_zone_surface


class Signals(QObject):
    """A job's result (``done``) or its one-line error (``failed``), delivered on the GUI thread."""

    done = pyqtSignal(object)
    failed = pyqtSignal(str)


def report(signals: QObject, outcome: str, *values) -> None:
    """Emit a job's signal ``outcome`` (``done``, ``failed``, or a job's own such as a step); a
    window closed while the job ran has deleted the signals' object (an exception escaping a
    QRunnable aborts the process)."""
    try:
        getattr(signals, outcome).emit(*values)
    except RuntimeError:
        pass


class ZoneJob(QRunnable):
    """A procedure's target zone surface (the debrief's, the replay's), computed off the GUI
    thread (sampling it tissue by tissue takes about half a second)."""

    def __init__(self, sim):
        super().__init__()
        self.sim = sim
        self.signals = Signals()

    def run(self):
        try:
            surface = target_zone_surface(self.sim)
        except Exception as err:  # noqa: BLE001 - the debrief goes on without the zone
            report(self.signals, "failed", f"{err.__class__.__name__}: {err}")
        else:
            report(self.signals, "done", surface)


def start_zone_job(sim, done, failed) -> None:
    """The target zone of ``sim``'s procedure computed off the GUI thread; ``done(surface)`` or
    ``failed(message)`` is called on the GUI thread."""
    job = ZoneJob(sim)
    job.signals.done.connect(done)
    job.signals.failed.connect(failed)
    QThreadPool.globalInstance().start(job)
