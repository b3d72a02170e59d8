"""Recording an attempt into the store as it happens: the simulation hands every command (with the
events it caused) to its recorders, and the store commits each one before the next (a station
killed mid-attempt keeps everything up to its last command)."""

from __future__ import annotations

import getpass
import os
import re

from simulator.records.attempt_file import TimedCommand
from simulator.records.store import Actor, Store


def station_account() -> str:
    """Who is at this station when nobody signed in: ``SPINESIM_USER``, else the login name (made
    a valid account name)."""
    name = os.environ.get("SPINESIM_USER") or getpass.getuser() or "trainee"
    return re.sub(r"[^a-z0-9._-]", "_", name.lower())[:60] or "trainee"


class StoreRecorder:
    """Writes one attempt into a :class:`~simulator.records.store.Store`.

    Parameters
    ----------
    store : Store
    actor : Actor
        The trainee whose attempt it is.
    course : int or str, optional
        The course it belongs to.
    """

    def __init__(self, store: Store, actor: Actor, course: int | str | None = None):
        self.store, self.actor, self.course = store, actor, course
        self.attempt_id: int | None = None
        #: Set it to ``index -> uint8 image`` (the simulation's acquired images) to keep each image
        #: in the store as it is taken (on request: the images can always be replayed).
        self.image_source = None

    @classmethod
    def resuming(cls, store: Store, actor: Actor, attempt_id: int):
        """(recorder, record so far) for an incomplete attempt taken back: replay the record
        (``Simulation.replay``), then :meth:`~simulator.simulation.simulation.Simulation.attach`
        the recorder and carry on."""
        recorder = cls(store, actor)
        record = store.resume_attempt(actor, attempt_id)
        recorder.attempt_id = attempt_id
        return recorder, record

    def start(self, header: dict, events) -> None:
        """The attempt begins (its header and the events of its start)."""
        self.attempt_id = self.store.start_attempt(self.actor, header, self.course)
        if events:
            self.store.append_events(self.attempt_id, events)

    def append(self, timed: TimedCommand, events) -> None:
        """One command done, committed with the events it caused."""
        self.store.append_command(self.attempt_id, timed)
        if events:
            self.store.append_events(self.attempt_id, events)
        if self.image_source is not None:
            for e in events:
                if e.kind == "image_acquired":
                    self.store.add_image(self.attempt_id, e.data["index"], self.image_source(e.data["index"]))

    def finish(self, scorecard: dict) -> None:
        """The attempt is finished, with its scorecard."""
        self.store.finish_attempt(self.attempt_id, scorecard)
