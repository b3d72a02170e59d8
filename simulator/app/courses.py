"""Courses in the app: the instructor builds a course (an ordered list of scenarios given to a group
of trainees) and watches the class work through it live; a trainee sees their own courses and
starts the next scenario.

Everything goes through :class:`simulator.records.store.Store` with the :class:`Actor` the dialog was
given: the store decides who may do what (an unlocked instructor edits courses and sees everyone's
results; a trainee sees their own), and its refusals (:class:`~simulator.errors.SpineSimError`) are
shown as one line in the dialog.

Which attempts count for a course
---------------------------------
A member's attempt at one of the course's scenarios counts when it was made in that course, or in no
course (free practice of the same case): a station that did not tag the attempt with the course still
shows the trainee's progress. Attempts made in another course do not count.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QBrush, QColor, QFont
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from simulator.errors import SpineSimError

#: How often the class view reads the store again, ms.
CLASS_VIEW_REFRESH_MS = 2000

_ID_ROLE = Qt.ItemDataRole.UserRole


# ------------------------------------------------------------------------------ scenarios
@dataclass(frozen=True)
class ScenarioEntry:
    """A scenario as the course dialogs name it.

    Attributes
    ----------
    id : str
    title : str
        The scenario's own title (the full name, shown in lists and tooltips).
    procedure : str
        Procedure id (``""`` for a scenario that could not be read).
    guidance : str
        ``"landmark"``, ``"fluoroscopy"`` or ``""``.
    """

    id: str
    title: str
    procedure: str = ""
    guidance: str = ""

    @property
    def short(self) -> str:
        """The title without its guidance phrase, for narrow places (the class view's columns)."""
        t = self.title
        for tail in (", under fluoroscopy", ", landmark technique", ", lateral approach"):
            t = t.replace(tail, "")
        # the landmark cases explain themselves in brackets: too long for a column header
        if ", by landmarks" in t:
            t = t.split(", by landmarks")[0]
        return t

    def header(self, prefix: str = "", width_chars: int = 22) -> str:
        """``prefix`` and the short title wrapped to ``width_chars``, the guidance mode on its own
        last line."""
        lines = textwrap.wrap(prefix + self.short, width_chars) or [prefix + self.id]
        return "\n".join(lines + ([f"[{self.guidance}]"] if self.guidance else []))

    def within(self, procedure_name: str) -> str:
        """The title without the procedure's name it starts with (under a heading of that name)."""
        if procedure_name and self.title.lower().startswith(procedure_name.lower()):
            rest = self.title[len(procedure_name):].lstrip(" ,")
            if rest:
                return rest[0].upper() + rest[1:]
        return self.title


@lru_cache(maxsize=1)
def _builtin_entries() -> dict[str, ScenarioEntry]:
    from simulator.scenario.loader import builtin_scenarios, parse_scenario

    out = {}
    for name, text in sorted(builtin_scenarios().items()):
        try:
            sc = parse_scenario(text, f"builtin:{name}").scenario
        except SpineSimError:
            continue  # `spinesim scenarios` reports a broken one; the dialogs offer the valid ones
        out[sc.id] = ScenarioEntry(sc.id, sc.title, sc.procedure, sc.guidance)
    return out


def scenario_entry(scenario_id: str) -> ScenarioEntry:
    """The built-in scenario ``scenario_id``, or an entry named by its id alone (a scenario file of
    the instructor's own, or one this version no longer ships)."""
    return _builtin_entries().get(scenario_id) or ScenarioEntry(scenario_id, scenario_id)


def builtin_scenario_ids() -> list[str]:
    """Every valid built-in scenario id, sorted."""
    return list(_builtin_entries())


# --------------------------------------------------------------------------------- status
#: The states of a member at a scenario, with the symbol that tells them apart without colour.
STATE_SYMBOLS = {"passed": "✓", "failed": "✗", "in_progress": "…", "incomplete": "○", "not_started": "–"}
#: Cell backgrounds (light, so black text stays readable; the symbol carries the meaning).
STATE_COLOURS = {"passed": "#d9f2d9", "failed": "#f9dada", "in_progress": "#fff1c2", "incomplete": "#e8e8e8",
                 "not_started": "#ffffff"}


@dataclass(frozen=True)
class ScenarioStatus:
    """One trainee's standing at one scenario.

    Attributes
    ----------
    state : {"not_started", "in_progress", "incomplete", "passed", "failed"}
        ``in_progress`` while any attempt is being done; else ``passed``/``failed`` by the best
        scored attempt (a pass beats any fail, then the higher score); ``incomplete`` when every
        attempt stopped unfinished.
    n_attempts : int
    best_score : float or None
        The best scored attempt's score.
    attempt_ids : tuple of int
        Oldest first.
    """

    state: str
    n_attempts: int = 0
    best_score: float | None = None
    attempt_ids: tuple[int, ...] = ()

    @property
    def symbol(self) -> str:
        return STATE_SYMBOLS[self.state]

    @property
    def headline(self) -> str:
        """``"✓ 86"``, ``"✗ 40"``, ``"… in progress"``, ``"○ unfinished"``, ``"– not started"``."""
        if self.state == "in_progress":
            return "… in progress"
        if self.state == "not_started":
            return "– not started"
        if self.best_score is None:
            return "○ unfinished"
        return f"{self.symbol} {self.best_score:.0f}"

    @property
    def detail(self) -> str:
        """The number of attempts and, while one is in progress, the best score so far."""
        if self.state == "not_started":
            return ""
        n = f"{self.n_attempts} attempt{'s' if self.n_attempts != 1 else ''}"
        if self.state == "in_progress" and self.best_score is not None:
            return f"{n}, best {self.best_score:.0f}"
        return n

    @property
    def text(self) -> str:
        """Headline and detail on two lines (what a cell shows)."""
        return self.headline + (f"\n{self.detail}" if self.detail else "")


def scenario_status(attempts: Iterable, scorecards: dict[int, dict | None]) -> ScenarioStatus:
    """The :class:`ScenarioStatus` of one trainee's attempts at one scenario.

    Parameters
    ----------
    attempts : iterable of AttemptInfo
    scorecards : dict
        Attempt id -> its newest scorecard (``passed``, ``score``), or None.
    """
    attempts = sorted(attempts, key=lambda a: a.id)
    if not attempts:
        return ScenarioStatus("not_started")
    scored = [scorecards[a.id] for a in attempts if a.status == "finished" and scorecards.get(a.id)]
    best = max(scored, key=lambda c: (bool(c.get("passed")), float(c.get("score") or 0.0)), default=None)
    if any(a.status == "in_progress" for a in attempts):
        state = "in_progress"
    elif best is None:
        state = "incomplete"
    else:
        state = "passed" if best.get("passed") else "failed"
    return ScenarioStatus(state, len(attempts), None if best is None else float(best.get("score") or 0.0),
                          tuple(a.id for a in attempts))


class _Progress:
    """Reads members' attempts at a course's scenarios, keeping the scorecards of finished attempts
    (they do not change, short of a rescore) so a refresh every few seconds stays cheap."""

    def __init__(self, store, actor):
        self.store, self.actor = store, actor
        self._cards: dict[int, dict | None] = {}

    def attempts(self, course, account: str | None) -> dict[str, list]:
        """Scenario id -> the attempts of ``account`` (None: the actor's own) that count for the course."""
        wanted = set(course.scenario_ids)
        out: dict[str, list] = {s: [] for s in course.scenario_ids}
        for a in self.store.attempts(self.actor, owner=account):
            if a.scenario_id in wanted and a.course in (course.name, None):
                out[a.scenario_id].append(a)
        return out

    def card(self, attempt) -> dict | None:
        if attempt.status != "finished":
            return None
        if attempt.id not in self._cards:
            self._cards[attempt.id] = self.store.scorecard(self.actor, attempt.id)
        return self._cards[attempt.id]

    def status(self, attempts: list) -> ScenarioStatus:
        return scenario_status(attempts, {a.id: self.card(a) for a in attempts})


# ------------------------------------------------------------------------------ shared bits
def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else err.__class__.__name__


class _MessageLine(QLabel):
    """One line under a dialog's controls: a refusal or error (marked, in dark red) or a plain note."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("message")
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    def error(self, text: str) -> None:
        self.setStyleSheet("color: #9b0000; font-weight: 600;")
        self.setText(f"⚠ {text}")

    def note(self, text: str) -> None:
        self.setStyleSheet("color: #24476b;")
        self.setText(text)


def instructor_actor(parent, store):
    """Ask for the instructor's account and password and unlock instructor actions: the Actor, or
    None (cancelled, or refused: the reason is shown)."""
    from simulator.app.instructor import InstructorSignIn

    if store is None:
        QMessageBox.warning(parent, "SpineSim", "The attempt database is not available.")
        return None
    dialog = InstructorSignIn(parent)
    if not dialog.exec():
        return None
    try:
        return store.unlock(dialog.account.text().strip(), dialog.password.text())
    except SpineSimError as err:
        QMessageBox.warning(parent, "SpineSim", _one_line(err))
        return None


def _list_buttons(*labels: str) -> tuple[QVBoxLayout, list[QPushButton]]:
    column = QVBoxLayout()
    column.addStretch(1)
    buttons = []
    for label in labels:
        b = QPushButton(label)
        column.addWidget(b)
        buttons.append(b)
    column.addStretch(1)
    return column, buttons


# --------------------------------------------------------------------------- course builder
class CourseBuilder(QDialog):
    """Make and edit courses (an unlocked instructor): each change is stored at once.

    Left, the courses (create, delete, open the class view); right, the chosen course's scenarios
    in order (picked from the built-in ones and ``extra_scenarios``) and its members (existing
    accounts, or a new trainee by name). A trainee's Actor gets the store's refusal shown and
    every control disabled (``refused`` is True).

    Parameters
    ----------
    store : Store
    actor : Actor
        An unlocked instructor.
    extra_scenarios : iterable of str, optional
        More scenario ids to offer (say, scenario files the instructor opened).
    parent : QWidget, optional
    """

    def __init__(self, store, actor, extra_scenarios: Iterable[str] = (), parent=None):
        super().__init__(parent)
        self.setObjectName("course_builder")
        self.setWindowTitle("Courses")
        self.store, self.actor = store, actor
        self.extra_scenarios = [s for s in dict.fromkeys(str(s) for s in extra_scenarios)
                                if s not in _builtin_entries()]
        self.courses: dict[int, object] = {}
        self.class_views: list[ClassView] = []
        self.refused = False
        #: Asked before a course is deleted (tests replace it).
        self.confirm = lambda text: QMessageBox.question(self, "Courses", text) == QMessageBox.StandardButton.Yes
        #: Asks for a course's new name, offering the old one; None when cancelled (tests replace it).
        self.ask_name = self._ask_name

        # -- left: the courses
        self.course_list = QListWidget()
        self.course_list.setObjectName("course_list")
        self.course_list.currentItemChanged.connect(lambda *_: self._show_course())
        self.new_name = QLineEdit()
        self.new_name.setObjectName("new_course_name")
        self.new_name.setPlaceholderText("New course name")
        self.new_name.returnPressed.connect(self.create_course)
        self.create_button = QPushButton("Create")
        self.create_button.setObjectName("create_course")
        self.create_button.clicked.connect(self.create_course)
        self.rename_button = QPushButton("Rename...")
        self.rename_button.setObjectName("rename_course")
        self.rename_button.clicked.connect(self.rename_course)
        self.delete_button = QPushButton("Delete course")
        self.delete_button.setObjectName("delete_course")
        self.delete_button.clicked.connect(self.delete_course)
        self.class_view_button = QPushButton("Class view")
        self.class_view_button.setObjectName("open_class_view")
        self.class_view_button.setToolTip("The live grid of this course: who has done what")
        self.class_view_button.clicked.connect(self.open_class_view)
        left = QVBoxLayout()
        left.addWidget(QLabel("<b>Courses</b>"))
        left.addWidget(self.course_list, 1)
        new_row = QHBoxLayout()
        new_row.addWidget(self.new_name, 1)
        new_row.addWidget(self.create_button)
        left.addLayout(new_row)
        course_buttons = QHBoxLayout()
        course_buttons.addWidget(self.class_view_button)
        course_buttons.addWidget(self.rename_button)
        course_buttons.addWidget(self.delete_button)
        left.addLayout(course_buttons)
        left_box = QWidget()
        left_box.setLayout(left)

        # -- right: the chosen course
        self.course_title = QLabel()
        self.course_title.setObjectName("course_title")
        self.course_title.setStyleSheet("font-size: 13pt; font-weight: 600;")
        self.tabs = QTabWidget()
        self.tabs.addTab(self._scenarios_tab(), "Scenarios")
        self.tabs.addTab(self._members_tab(), "Members")
        right = QVBoxLayout()
        right.addWidget(self.course_title)
        right.addWidget(self.tabs, 1)
        right_box = QWidget()
        right_box.setLayout(right)

        splitter = QSplitter()
        splitter.addWidget(left_box)
        splitter.addWidget(right_box)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([250, 730])
        splitter.setChildrenCollapsible(False)

        self.message = _MessageLine()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.message, 1)
        bottom.addWidget(buttons)
        layout.addLayout(bottom)
        self.resize(1000, 600)

        try:
            self._users = self.store.users(self.actor)  # the store's own check: instructors only
        except SpineSimError:
            self._refuse(SpineSimError("Courses are made and changed by an instructor who has given the instructor "
                                       "password."))
            return
        self._fill_available_scenarios()
        self.reload()

    # ------------------------------------------------------------------------- the two tabs
    def _scenarios_tab(self) -> QWidget:
        self.scenario_filter = QLineEdit()
        self.scenario_filter.setObjectName("scenario_filter")
        self.scenario_filter.setPlaceholderText("Filter, e.g.: caudal landmark")
        self.scenario_filter.setClearButtonEnabled(True)
        self.scenario_filter.textChanged.connect(self._filter_scenarios)
        self.scenario_filter.returnPressed.connect(self.add_scenario)
        self.available_scenarios = QTreeWidget()
        self.available_scenarios.setObjectName("available_scenarios")
        self.available_scenarios.setHeaderHidden(True)
        self.available_scenarios.setIndentation(14)
        self.available_scenarios.itemDoubleClicked.connect(lambda item, _c: self.add_scenario())
        self.course_scenarios = QListWidget()
        self.course_scenarios.setObjectName("course_scenarios")
        self.course_scenarios.setWordWrap(True)
        self.course_scenarios.itemDoubleClicked.connect(lambda _item: self.remove_scenario())
        column, (self.add_scenario_button, self.remove_scenario_button, self.up_button, self.down_button) = \
            _list_buttons("Add →", "← Remove", "Move up", "Move down")
        self.add_scenario_button.setObjectName("add_scenario")
        self.remove_scenario_button.setObjectName("remove_scenario")
        self.up_button.setObjectName("scenario_up")
        self.down_button.setObjectName("scenario_down")
        self.add_scenario_button.clicked.connect(self.add_scenario)
        self.remove_scenario_button.clicked.connect(self.remove_scenario)
        self.up_button.clicked.connect(lambda: self.move_scenario(-1))
        self.down_button.clicked.connect(lambda: self.move_scenario(+1))
        grid = QGridLayout()
        grid.addWidget(QLabel("Scenarios to choose from"), 0, 0)
        grid.addWidget(QLabel("The course, in order"), 0, 2)
        grid.addWidget(self.scenario_filter, 1, 0)
        grid.addWidget(self.available_scenarios, 2, 0)
        grid.addLayout(column, 2, 1)
        grid.addWidget(self.course_scenarios, 1, 2, 2, 1)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(2, 2)
        tab = QWidget()
        tab.setLayout(grid)
        return tab

    def _members_tab(self) -> QWidget:
        self.available_users = QListWidget()
        self.available_users.setObjectName("available_users")
        self.available_users.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.available_users.itemDoubleClicked.connect(lambda _item: self.add_members())
        self.members = QListWidget()
        self.members.setObjectName("course_members")
        self.members.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.members.itemDoubleClicked.connect(lambda _item: self.remove_members())
        column, (self.add_member_button, self.remove_member_button) = _list_buttons("Add →", "← Remove")
        self.add_member_button.setObjectName("add_members")
        self.remove_member_button.setObjectName("remove_members")
        self.add_member_button.clicked.connect(lambda: self.add_members())
        self.remove_member_button.clicked.connect(self.remove_members)
        self.new_trainee = QLineEdit()
        self.new_trainee.setObjectName("new_trainee_name")
        self.new_trainee.setPlaceholderText("New trainee's name, e.g. Ana Ruiz")
        self.new_trainee.returnPressed.connect(self.add_new_trainee)
        self.new_trainee_button = QPushButton("Add new trainee")
        self.new_trainee_button.setObjectName("add_new_trainee")
        self.new_trainee_button.clicked.connect(self.add_new_trainee)
        grid = QGridLayout()
        grid.addWidget(QLabel("Trainees (and instructors) not in the course"), 0, 0)
        grid.addWidget(QLabel("Members"), 0, 2)
        grid.addWidget(self.available_users, 1, 0)
        grid.addLayout(column, 1, 1)
        grid.addWidget(self.members, 1, 2)
        new_row = QHBoxLayout()
        new_row.addWidget(self.new_trainee, 1)
        new_row.addWidget(self.new_trainee_button)
        grid.addLayout(new_row, 2, 0, 1, 3)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(2, 1)
        tab = QWidget()
        tab.setLayout(grid)
        return tab

    def _fill_available_scenarios(self) -> None:
        from simulator.app.scenario_picker import PROCEDURE_NAMES

        tree = self.available_scenarios
        tree.clear()
        groups: dict[str, QTreeWidgetItem] = {}
        entries = list(_builtin_entries().values()) + [scenario_entry(s) for s in self.extra_scenarios]
        order = list(PROCEDURE_NAMES)
        for e in sorted(entries, key=lambda e: (order.index(e.procedure) if e.procedure in order else len(order),
                                                e.title)):
            key = e.procedure or "other"
            group = groups.get(key)
            if group is None:
                group = QTreeWidgetItem([PROCEDURE_NAMES.get(key, "Other scenarios")])
                group.setFlags(group.flags() & ~Qt.ItemFlag.ItemIsSelectable)
                groups[key] = group
                tree.addTopLevelItem(group)
            item = QTreeWidgetItem([e.within(group.text(0))])
            item.setData(0, _ID_ROLE, e.id)
            item.setToolTip(0, f"{e.title}\n({e.id})")
            group.addChild(item)
        tree.expandAll()

    def _filter_scenarios(self, text: str) -> None:
        typed = text.strip().lower()
        words = typed.replace("_", " ").split()
        first = exact = None
        for i in range(self.available_scenarios.topLevelItemCount()):
            group = self.available_scenarios.topLevelItem(i)
            shown = 0
            for j in range(group.childCount()):
                item = group.child(j)
                sid = str(item.data(0, _ID_ROLE))
                haystack = f"{item.text(0)} {sid} {group.text(0)}".lower().replace("_", " ")
                hide = not all(w in haystack for w in words)
                item.setHidden(hide)
                if not hide:
                    shown += 1
                    if first is None:
                        first = item
                    if sid.lower() == typed:
                        exact = item
            group.setHidden(shown == 0)
        # typing then Enter adds the best match: the scenario whose id was typed, else the first shown
        best = exact if exact is not None else first
        current = self.available_scenarios.currentItem()
        if best is not None and (words or current is None or current.isHidden()):
            self.available_scenarios.setCurrentItem(best)

    # --------------------------------------------------------------------------- state
    def _refuse(self, err: SpineSimError) -> None:
        self.refused = True
        self.message.error(_one_line(err))
        for w in (self.course_list, self.new_name, self.create_button, self.rename_button, self.delete_button,
                  self.class_view_button, self.tabs):
            w.setEnabled(False)
        self.course_title.setText("Instructors only")

    def _fail(self, err: BaseException) -> None:
        self.message.error(_one_line(err))

    def current_course(self):
        """The chosen course's :class:`~simulator.records.store.CourseInfo`, or None."""
        item = self.course_list.currentItem()
        return None if item is None else self.courses.get(item.data(_ID_ROLE))

    def reload(self, select: int | None = None) -> None:
        """Read the courses and users again; keep (or move to ``select``) the chosen course."""
        if self.refused:
            return
        keep = select if select is not None else (self.current_course().id if self.current_course() else None)
        try:
            courses = self.store.courses(self.actor)
            self._users = self.store.users(self.actor)
        except SpineSimError as err:
            self._fail(err)
            return
        self.courses = {c.id: c for c in courses}
        self.course_list.blockSignals(True)
        self.course_list.clear()
        chosen = None
        for c in courses:
            item = QListWidgetItem(c.name)
            item.setData(_ID_ROLE, c.id)
            item.setToolTip(f"{len(c.scenario_ids)} scenarios, {len(c.members)} members")
            self.course_list.addItem(item)
            if c.id == keep:
                chosen = item
        if chosen is None and self.course_list.count():
            chosen = self.course_list.item(0)
        self.course_list.setCurrentItem(chosen)
        self.course_list.blockSignals(False)
        self._show_course()

    def _show_course(self) -> None:
        course = self.current_course()
        has = course is not None
        for w in (self.tabs, self.rename_button, self.delete_button, self.class_view_button):
            w.setEnabled(has)
        self.course_title.setText(course.name if has else "Create a course on the left")
        row = self.course_scenarios.currentRow()
        self.course_scenarios.clear()
        self.members.clear()
        self.available_users.clear()
        if not has:
            return
        for i, sid in enumerate(course.scenario_ids, 1):
            e = scenario_entry(sid)
            item = QListWidgetItem(f"{i}. {e.title}")
            item.setData(_ID_ROLE, sid)
            item.setToolTip(sid)
            self.course_scenarios.addItem(item)
        if self.course_scenarios.count():
            self.course_scenarios.setCurrentRow(min(max(row, 0), self.course_scenarios.count() - 1))
        members = set(course.members)
        for account, name, role in self._users:
            item = QListWidgetItem(f"{name} ({account})" + ("  - instructor" if role == "instructor" else ""))
            item.setData(_ID_ROLE, account)
            (self.members if account in members else self.available_users).addItem(item)

    # ------------------------------------------------------------------------- actions
    def create_course(self) -> None:
        """Create a course named as typed (empty: scenarios and members are added next)."""
        name = " ".join(self.new_name.text().split())
        if not name:
            self.message.error("Type the new course's name first.")
            return
        try:
            course_id = self.store.create_course(self.actor, name, [], [])
        except SpineSimError as err:
            self._fail(err)
            return
        self.new_name.clear()
        self.reload(select=course_id)
        self.message.note(f"Course {name!r} created: add its scenarios and members on the right.")

    def _ask_name(self, old: str) -> str | None:
        name, ok = QInputDialog.getText(self, "Rename the course", "New name:", text=old)
        return name if ok else None

    def rename_course(self) -> None:
        """Give the chosen course a new name (its scenarios, members and attempts stay with it)."""
        course = self.current_course()
        if course is None:
            return
        name = self.ask_name(course.name)
        if name is None or " ".join(name.split()) == course.name:
            return
        try:
            self.store.rename_course(self.actor, course.id, name)
        except SpineSimError as err:
            self._fail(err)
            return
        self.reload(select=course.id)
        self.message.note(f"Course {course.name!r} is now {self.current_course().name!r}.")

    def delete_course(self) -> None:
        """Delete the chosen course, after asking (its attempts are kept, without the course)."""
        course = self.current_course()
        if course is None or not self.confirm(f"Delete the course {course.name!r}? Its members' attempts are kept."):
            return
        try:
            self.store.delete_course(self.actor, course.id)
        except SpineSimError as err:
            self._fail(err)
            return
        self.reload()
        self.message.note(f"Course {course.name!r} deleted.")

    def _set_scenarios(self, ids: list[str], current_row: int) -> None:
        course = self.current_course()
        try:
            self.store.set_course_scenarios(self.actor, course.id, ids)
        except SpineSimError as err:
            self._fail(err)
            return
        self.message.note("")
        self.reload()
        if 0 <= current_row < self.course_scenarios.count():
            self.course_scenarios.setCurrentRow(current_row)

    def add_scenario(self) -> None:
        """Add the scenario chosen on the left to the end of the course."""
        course = self.current_course()
        item = self.available_scenarios.currentItem()
        sid = None if item is None or item.isHidden() else item.data(0, _ID_ROLE)
        if course is None or not sid:
            self.message.error("Choose a scenario on the left to add.")
            return
        if sid in course.scenario_ids:
            self.message.error(f"{scenario_entry(sid).title}: already in the course.")
            return
        self._set_scenarios([*course.scenario_ids, sid], len(course.scenario_ids))

    def remove_scenario(self) -> None:
        """Take the chosen scenario out of the course."""
        course, row = self.current_course(), self.course_scenarios.currentRow()
        if course is None or not 0 <= row < len(course.scenario_ids):
            self.message.error("Choose one of the course's scenarios to remove.")
            return
        ids = list(course.scenario_ids)
        del ids[row]
        self._set_scenarios(ids, min(row, len(ids) - 1))

    def move_scenario(self, step: int) -> None:
        """Move the chosen scenario ``step`` places (-1: earlier, +1: later)."""
        course, row = self.current_course(), self.course_scenarios.currentRow()
        if course is None or not 0 <= row < len(course.scenario_ids):
            self.message.error("Choose one of the course's scenarios to move.")
            return
        to = row + step
        if not 0 <= to < len(course.scenario_ids):
            return
        ids = list(course.scenario_ids)
        ids[row], ids[to] = ids[to], ids[row]
        self._set_scenarios(ids, to)

    def add_members(self, accounts: Iterable[str] | None = None) -> None:
        """Add the accounts chosen on the left (or ``accounts``) to the course."""
        course = self.current_course()
        if accounts is None:
            accounts = [i.data(_ID_ROLE) for i in self.available_users.selectedItems()]
        accounts = list(accounts)
        if course is None or not accounts:
            self.message.error("Choose one or more people on the left to add.")
            return
        try:
            self.store.add_course_members(self.actor, course.id, accounts)
        except SpineSimError as err:
            self._fail(err)
            return
        self.reload()
        self.message.note(f"Added {', '.join(accounts)}.")

    def remove_members(self) -> None:
        """Take the chosen members out of the course (their attempts are kept)."""
        course = self.current_course()
        accounts = [i.data(_ID_ROLE) for i in self.members.selectedItems()]
        if course is None or not accounts:
            self.message.error("Choose one or more members to remove.")
            return
        try:
            self.store.remove_course_members(self.actor, course.id, accounts)
        except SpineSimError as err:
            self._fail(err)
            return
        self.reload()
        self.message.note(f"Removed {', '.join(accounts)}.")

    def add_new_trainee(self) -> None:
        """Add a trainee account made from the typed name (as the station's sign-in makes it) and
        put them in the course."""
        from simulator.app.sign_in import account_for

        name = " ".join(self.new_trainee.text().split())
        account = account_for(name)
        if self.current_course() is None or not account:
            self.message.error("Type the new trainee's name (letters or digits) first.")
            return
        try:
            self.store.add_user(self.actor, account, name, "trainee")
        except SpineSimError as err:
            self._fail(err)
            return
        self.new_trainee.clear()
        self.add_members([account])

    def open_class_view(self):
        """Open the live class view of the chosen course (returned; None if there is none)."""
        course = self.current_course()
        if course is None:
            return None
        # parented to the builder's own parent: the live view may stay open after the builder closes
        view = ClassView(self.store, self.actor, course.id, self.parentWidget())
        view.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        view.destroyed.connect(lambda *_: self.class_views.remove(view) if view in self.class_views else None)
        self.class_views.append(view)
        view.show()
        return view


# ------------------------------------------------------------------------------ class view
class _AttemptList(QDialog):
    """One member's attempts at one scenario: when, status, score and the broken safety rules."""

    def __init__(self, title: str, rows: list[tuple[str, ...]], parent=None):
        super().__init__(parent)
        self.setObjectName("attempt_list")
        self.setWindowTitle(title)
        self.table = QTableWidget(len(rows), 5)
        self.table.setObjectName("attempt_table")
        self.table.setHorizontalHeaderLabels(["Attempt", "Started", "Status", "Score", "Hard fails"])
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(value))
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(title))
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self.resize(640, 300)


class ClassView(QDialog):
    """The live grid of one course: a row per member, a column per scenario, each cell the member's
    :class:`ScenarioStatus` there (symbol, best score, number of attempts), read again from the store
    every :data:`CLASS_VIEW_REFRESH_MS` while shown. Double-click a cell for the attempts behind it.

    Parameters
    ----------
    store : Store
    actor : Actor
        An unlocked instructor (anyone else sees the store's refusal).
    course : int or str
        The course's id or name.
    parent : QWidget, optional
    """

    def __init__(self, store, actor, course: int | str, parent=None):
        super().__init__(parent)
        self.setObjectName("class_view")
        self.store, self.actor, self.course_ref = store, actor, course
        self.course = None
        self.statuses: dict[tuple[str, str], ScenarioStatus] = {}
        self.attempt_list: _AttemptList | None = None
        self._progress = _Progress(store, actor)
        self._names: dict[str, str] = {}
        self.setWindowTitle("Class view")

        self.title = QLabel("Class view")
        self.title.setObjectName("class_title")
        self.title.setStyleSheet("font-size: 13pt; font-weight: 600;")
        self.updated = QLabel()
        self.updated.setObjectName("class_updated")
        legend = QLabel("✓ passed (best score)   ✗ not passed yet (best score)   … in progress   "
                        "○ stopped unfinished   – not started.   Double-click a cell for its attempts.")
        legend.setWordWrap(True)
        legend.setStyleSheet("color: #444;")
        self.table = QTableWidget()
        self.table.setObjectName("class_grid")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setWordWrap(True)
        self.table.horizontalHeader().setDefaultAlignment(Qt.AlignmentFlag.AlignCenter)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.cellDoubleClicked.connect(self.show_attempts)
        self.message = _MessageLine()
        refresh = QPushButton("Refresh now")
        refresh.setObjectName("refresh")
        refresh.clicked.connect(self.refresh)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.updated)
        layout = QVBoxLayout(self)
        layout.addLayout(head)
        layout.addWidget(legend)
        layout.addWidget(self.table, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.message, 1)
        bottom.addWidget(refresh)
        bottom.addWidget(buttons)
        layout.addLayout(bottom)
        self.resize(960, 520)

        self.timer = QTimer(self)
        self.timer.setInterval(CLASS_VIEW_REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        self.refresh()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.timer.start()

    def hideEvent(self, event) -> None:
        # a hidden view need not keep reading the database
        self.timer.stop()
        super().hideEvent(event)

    def refresh(self) -> bool:
        """Read the course and its members' attempts again and redraw the grid; True if it could
        (else the store's message is shown and the last grid kept)."""
        try:
            users = self.store.users(self.actor)  # first: the store's refusal of anyone but an instructor
        except SpineSimError:
            self.message.error("The class view is for an instructor who has given the instructor password.")
            return False
        try:
            course = self.store.course(self.actor, self.course_ref)
            attempts = {m: self._progress.attempts(course, m) for m in course.members}
            statuses = {(m, s): self._progress.status(attempts[m][s]) for m in course.members
                        for s in course.scenario_ids}
        except SpineSimError as err:
            self.message.error(_one_line(err))
            return False
        self._names = {a: n for a, n, _r in users}
        self.course_ref = course.id  # a name given by the caller is read once; the id is what stays
        shape_changed = (self.course is None or self.course.members != course.members
                         or self.course.scenario_ids != course.scenario_ids)
        self.course, self.statuses = course, statuses
        if shape_changed:
            self._layout_grid()
        self._fill_grid()
        self.message.note("")
        n_in = sum(s.state == "in_progress" for s in statuses.values())
        self.title.setText(f"{course.name}: {len(course.members)} trainees, {len(course.scenario_ids)} scenarios"
                           + (f", {n_in} in progress now" if n_in else ""))
        self.updated.setText(f"updated {time.strftime('%H:%M:%S')}")
        return True

    def _layout_grid(self) -> None:
        course = self.course
        t = self.table
        t.clear()
        t.setRowCount(len(course.members))
        t.setColumnCount(len(course.scenario_ids) + 1)
        for c, sid in enumerate(course.scenario_ids):
            e = scenario_entry(sid)
            head = QTableWidgetItem(e.header(f"{c + 1}. "))
            head.setToolTip(f"{e.title}\n({sid})")
            t.setHorizontalHeaderItem(c, head)
        t.setHorizontalHeaderItem(len(course.scenario_ids), QTableWidgetItem("Passed"))
        for r, m in enumerate(course.members):
            t.setVerticalHeaderItem(r, QTableWidgetItem(self._names.get(m, m)))
            t.verticalHeaderItem(r).setToolTip(m)
        for c in range(len(course.scenario_ids)):
            t.setColumnWidth(c, 150)
        t.setColumnWidth(len(course.scenario_ids), 80)
        t.horizontalHeader().setMinimumSectionSize(60)

    def _fill_grid(self) -> None:
        course, t = self.course, self.table
        for r, m in enumerate(course.members):
            for c, sid in enumerate(course.scenario_ids):
                st = self.statuses[(m, sid)]
                item = t.item(r, c) or QTableWidgetItem()
                item.setText(st.text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                item.setBackground(QBrush(QColor(STATE_COLOURS[st.state])))
                item.setForeground(QBrush(QColor("#1a1a1a" if st.state != "not_started" else "#777777")))
                item.setData(_ID_ROLE, (m, sid))
                item.setToolTip(f"{self._names.get(m, m)} - {scenario_entry(sid).title}\n{st.headline}  "
                                f"{st.detail}".rstrip())
                if t.item(r, c) is None:
                    t.setItem(r, c, item)
            n_passed = sum(self.statuses[(m, s)].state == "passed" for s in course.scenario_ids)
            total = t.item(r, len(course.scenario_ids)) or QTableWidgetItem()
            total.setText(f"{n_passed} of {len(course.scenario_ids)}")
            total.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            if t.item(r, len(course.scenario_ids)) is None:
                t.setItem(r, len(course.scenario_ids), total)
        t.resizeRowsToContents()

    def cell_text(self, account: str, scenario_id: str) -> str:
        """What the grid shows for ``account`` at ``scenario_id``."""
        r = self.course.members.index(account)
        c = self.course.scenario_ids.index(scenario_id)
        return self.table.item(r, c).text()

    def show_attempts(self, row: int, column: int):
        """List the attempts behind a cell (opened by a double-click); the list dialog, or None."""
        if self.course is None or not (0 <= row < len(self.course.members)
                                       and 0 <= column < len(self.course.scenario_ids)):
            return None
        account, sid = self.course.members[row], self.course.scenario_ids[column]
        rows = []
        try:
            for a in self._progress.attempts(self.course, account)[sid]:
                card = self._progress.card(a)
                score = "" if card is None else (f"{'✓' if card.get('passed') else '✗'} "
                                                 f"{float(card.get('score') or 0):.0f}")
                fails = "; ".join(str(f) for f in (card or {}).get("hard_fails") or [])
                status = a.status.replace("_", " ") + ("" if a.course else " (free practice)")
                rows.append((str(a.id), a.started_at.astimezone().strftime("%Y-%m-%d %H:%M"), status, score, fails))
        except SpineSimError as err:
            self.message.error(_one_line(err))
            return None
        title = f"{self._names.get(account, account)}: {scenario_entry(sid).title}"
        if self.attempt_list is not None:
            self.attempt_list.close()
        self.attempt_list = _AttemptList(title, rows, self)
        if not rows:
            self.attempt_list.table.setRowCount(1)
            self.attempt_list.table.setItem(0, 0, QTableWidgetItem("not started yet"))
        self.attempt_list.show()
        return self.attempt_list

    def closeEvent(self, event) -> None:
        self.timer.stop()
        super().closeEvent(event)


# ------------------------------------------------------------------------------- my courses
class MyCourses(QDialog):
    """A trainee's courses: each course's scenarios in order with the trainee's own result there,
    the next one to do marked. "Start" accepts with ``chosen`` (scenario id) and ``chosen_course``
    (course id, for the attempt's recorder); "Free practice" accepts with ``chosen`` None and
    ``free_practice`` True.

    Parameters
    ----------
    store : Store
    actor : Actor
        The signed-in trainee (an instructor sees every course, with their own results).
    parent : QWidget, optional
    """

    def __init__(self, store, actor, parent=None):
        super().__init__(parent)
        self.setObjectName("my_courses")
        self.setWindowTitle("My courses")
        self.store, self.actor = store, actor
        self.chosen: str | None = None
        self.chosen_course: int | None = None
        self.free_practice = False
        self.next_items: dict[int, str] = {}
        self.statuses: dict[tuple[int, str], ScenarioStatus] = {}
        self._progress = _Progress(store, actor)

        self.heading = QLabel(f"<b>{actor.display_name}</b>: your courses. The next case of each is marked "
                              "▶; start it, or any other, or practise freely.")
        self.heading.setWordWrap(True)
        self.tree = QTreeWidget()
        self.tree.setObjectName("my_courses_tree")
        self.tree.setHeaderLabels(["Scenario", "Guidance", "Your result"])
        self.tree.setRootIsDecorated(False)
        self.tree.header().setStretchLastSection(False)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.header().setMinimumSectionSize(90)
        self.tree.setWordWrap(True)
        self.tree.currentItemChanged.connect(lambda *_: self._update_buttons())
        self.tree.itemDoubleClicked.connect(lambda item, _c: self.start() if item.parent() else None)
        self.message = _MessageLine()
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("start_scenario")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.free_button = QPushButton("Free practice")
        self.free_button.setObjectName("free_practice")
        self.free_button.setToolTip("Choose any scenario, outside your courses")
        self.free_button.clicked.connect(self.practise_freely)
        cancel = QPushButton("Cancel")
        cancel.clicked.connect(self.reject)
        bottom = QHBoxLayout()
        bottom.addWidget(self.free_button)
        bottom.addWidget(self.message, 1)
        bottom.addWidget(self.start_button)
        bottom.addWidget(cancel)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.tree, 1)
        layout.addLayout(bottom)
        self.resize(860, 480)
        self.reload()

    def reload(self) -> None:
        """Read the trainee's courses and attempts again."""
        self.tree.clear()
        self.next_items, self.statuses = {}, {}
        try:
            courses = self.store.courses(self.actor)
            progress = {c.id: self._progress.attempts(c, None) for c in courses}
            for c in courses:
                for s in c.scenario_ids:
                    self.statuses[(c.id, s)] = self._progress.status(progress[c.id][s])
        except SpineSimError as err:
            self.message.error(_one_line(err))
            courses = []
        if not courses:
            self.message.note("You are not in a course yet: choose Free practice.")
        bold = QFont()
        bold.setBold(True)
        first_next = None
        for c in courses:
            done = sum(self.statuses[(c.id, s)].state == "passed" for s in c.scenario_ids)
            top = QTreeWidgetItem([f"{c.name}  ({done} of {len(c.scenario_ids)} passed)", "", ""])
            top.setFont(0, bold)
            top.setFlags(top.flags() & ~Qt.ItemFlag.ItemIsSelectable)
            self.tree.addTopLevelItem(top)
            # the next case: the first not passed yet (one in progress counts: it is to be finished)
            next_sid = next((s for s in c.scenario_ids if self.statuses[(c.id, s)].state != "passed"), None)
            if next_sid is not None:
                self.next_items[c.id] = next_sid
            for i, sid in enumerate(c.scenario_ids, 1):
                e, st = scenario_entry(sid), self.statuses[(c.id, sid)]
                is_next = sid == next_sid
                item = QTreeWidgetItem([f"{'▶ ' if is_next else '    '}{i}. {e.title}", e.guidance,
                                        st.headline + (f"  ({st.detail})" if st.detail else "")])
                item.setData(0, _ID_ROLE, (c.id, sid))
                item.setToolTip(0, f"{e.title}\n({sid})")
                item.setBackground(2, QBrush(QColor(STATE_COLOURS[st.state])))
                if is_next:
                    for col in range(3):
                        item.setFont(col, bold)
                        if col < 2:
                            item.setBackground(col, QBrush(QColor("#dbe9f7")))
                    if first_next is None:
                        first_next = item
                top.addChild(item)
        self.tree.expandAll()
        self.tree.resizeColumnToContents(1)
        self.tree.resizeColumnToContents(2)
        if first_next is None and self.tree.topLevelItemCount() and self.tree.topLevelItem(0).childCount():
            first_next = self.tree.topLevelItem(0).child(0)  # all passed: any case may be done again
        if first_next is not None:
            self.tree.setCurrentItem(first_next)
        self._update_buttons()

    def _update_buttons(self) -> None:
        item = self.tree.currentItem()
        self.start_button.setEnabled(item is not None and item.data(0, _ID_ROLE) is not None)

    def status(self, course_id: int, scenario_id: str) -> ScenarioStatus:
        """The trainee's :class:`ScenarioStatus` at a course's scenario."""
        return self.statuses[(course_id, scenario_id)]

    def select(self, course_id: int, scenario_id: str) -> None:
        """Make a course's scenario the current item."""
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            for j in range(top.childCount()):
                if top.child(j).data(0, _ID_ROLE) == (course_id, scenario_id):
                    self.tree.setCurrentItem(top.child(j))
                    return
        raise KeyError((course_id, scenario_id))

    def start(self) -> None:
        """Accept with the chosen scenario (and its course)."""
        item = self.tree.currentItem()
        data = None if item is None else item.data(0, _ID_ROLE)
        if not data:
            self.message.error("Choose a scenario of a course first.")
            return
        self.chosen_course, self.chosen = data
        self.free_practice = False
        self.accept()

    def practise_freely(self) -> None:
        """Accept with no scenario chosen: the main window offers every scenario."""
        self.chosen, self.chosen_course, self.free_practice = None, None, True
        self.accept()


# ------------------------------------------------------------------------------- for menus
def open_course_builder(parent, store, actor=None, extra_scenarios: Iterable[str] = ()) -> CourseBuilder | None:
    """Show the course builder (non-modal); without an ``actor`` the instructor signs in first.
    None if cancelled or refused (the reason is shown)."""
    actor = actor or instructor_actor(parent, store)
    if actor is None:
        return None
    dialog = CourseBuilder(store, actor, extra_scenarios, parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog


def open_class_view(parent, store, actor=None, course: int | str | None = None) -> ClassView | None:
    """Show the live class view of ``course`` (asked for when None); without an ``actor`` the
    instructor signs in first. None if cancelled or refused (the reason is shown)."""
    actor = actor or instructor_actor(parent, store)
    if actor is None:
        return None
    if course is None:
        try:
            courses = store.courses(actor)
        except SpineSimError as err:
            QMessageBox.warning(parent, "SpineSim", _one_line(err))
            return None
        if not courses:
            QMessageBox.information(parent, "SpineSim", "There are no courses yet: make one in the course builder.")
            return None
        name, ok = QInputDialog.getItem(parent, "Class view", "Course", [c.name for c in courses], 0, False)
        if not ok:
            return None
        course = next(c.id for c in courses if c.name == name)
    view = ClassView(store, actor, course, parent)
    view.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    view.show()
    return view


__all__ = [
    "CLASS_VIEW_REFRESH_MS",
    "ClassView",
    "CourseBuilder",
    "MyCourses",
    "ScenarioEntry",
    "ScenarioStatus",
    "builtin_scenario_ids",
    "instructor_actor",
    "open_class_view",
    "open_course_builder",
    "scenario_entry",
    "scenario_status",
]
