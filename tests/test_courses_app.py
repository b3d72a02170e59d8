"""Courses, the live class view and the instructor's results in the app, under a virtual display:
an instructor builds a course by hand, the trainee sees it in My courses, attempts recorded into the
store show in the class view's grid, and the results dialog filters, reports and exports them. A
trainee's Actor is refused by each instructor dialog with a one-line message."""

from __future__ import annotations

import csv
import json

import pytest

pytest.importorskip("PyQt6")

from PyQt6.QtCore import Qt  # noqa: E402

from simulator.records.store import Store  # noqa: E402

pytestmark = pytest.mark.gui

FLUORO = "lumbar_interlaminar_l4l5_fluoroscopy"
LANDMARK = "lumbar_interlaminar_l4l5_landmark"
PASSWORD = "a long instructor password"
LEFT = Qt.MouseButton.LeftButton


@pytest.fixture(scope="module")
def anatomy():
    """The L4-L5 scenarios' patient (seed 1), region L3-S1 at 3 mm: enough for the expert's attempt."""
    from simulator.anatomy.anatomy import build_anatomy
    from simulator.scenario.loader import load_scenario

    return build_anatomy(load_scenario(FLUORO).scenario.patient.parameters(), voxel_mm=3.0, levels=("L3", "S1"))


def _instructor(store):
    store.add_user(None, "drlee", "Dr Lee", "instructor", password=PASSWORD)
    return store.unlock("drlee", PASSWORD)


def _click(qtbot, widget):
    assert widget.isEnabled(), widget.objectName()
    qtbot.mouseClick(widget, LEFT)


def _click_item(qtbot, view, item):
    """Click a list or tree item where it is drawn (as a person would)."""
    view.scrollToItem(item)
    qtbot.mouseClick(view.viewport(), LEFT, pos=view.visualItemRect(item).center())


@pytest.fixture(scope="module")
def class_store(tmp_path_factory, anatomy):
    """A store with a course of two scenarios for ann and ben: ann passed the fluoroscopy case (the
    expert's attempt) and failed the landmark one; ben failed the fluoroscopy case and is half way
    through the landmark one (his station still writing it)."""
    from simulator.protocol import commands as cmd
    from simulator.records.recording import StoreRecorder
    from simulator.scenario.loader import load_scenario
    from simulator.simulation.reference import run_reference
    from simulator.simulation.simulation import Simulation

    store = Store.open(f"sqlite:///{(tmp_path_factory.mktemp('class') / 'store.db').as_posix()}")
    lee = _instructor(store)
    ann, ben = store.add_user(lee, "ann", "Ann Archer"), store.add_user(lee, "ben", "Ben Baker")
    course_id = store.create_course(lee, "Block 1", [FLUORO, LANDMARK], ["ann", "ben"])
    entry = tuple(float(v) for v in anatomy.skin_point_behind(anatomy.landmark("L4-L5.epidural_target")))

    def attempt(actor, scenario):
        return Simulation(load_scenario(scenario), anatomy=anatomy, image_size_px=48,
                          recorders=[StoreRecorder(store, actor, course=course_id)])

    passed = run_reference(attempt(ann, FLUORO))
    assert passed.scorecard.passed
    for actor, scenario in ((ann, LANDMARK), (ben, FLUORO)):
        sim = attempt(actor, scenario)
        sim.apply(cmd.SetEntry(point_mm=entry))
        sim.apply(cmd.Advance(distance_mm=10.0))
        sim.apply(cmd.Finish())
        assert not sim.scorecard.passed
    busy = attempt(ben, LANDMARK)
    busy.apply(cmd.SetEntry(point_mm=entry))
    yield {"store": store, "lee": lee, "ann": ann, "ben": ben, "course": course_id,
           "ann_score": passed.scorecard.score}
    store.close()


def test_the_instructor_builds_a_course_and_the_trainee_sees_it(qtbot, tmp_path):
    """Created by typing and clicking: a course with two scenarios in order and two trainees (one
    existing, one new by name); a refused change is one line in the dialog. The trainee's My
    courses lists it, both cases not started, the first marked next; Start hands it back."""
    from simulator.app.courses import CourseBuilder, MyCourses

    store = Store.open(f"sqlite:///{(tmp_path / 'store.db').as_posix()}")
    lee = _instructor(store)
    store.add_user(lee, "ann", "Ann Archer")
    builder = CourseBuilder(store, lee)
    qtbot.addWidget(builder)
    builder.show()
    qtbot.waitExposed(builder)
    assert not builder.refused and not builder.tabs.isEnabled()  # no course yet

    qtbot.keyClicks(builder.new_name, "Spring block")
    _click(qtbot, builder.create_button)
    (course,) = store.courses(lee)
    assert course.name == "Spring block" and builder.current_course().id == course.id

    for scenario in (LANDMARK, FLUORO):  # added in the wrong order, then put right
        builder.scenario_filter.clear()
        qtbot.keyClicks(builder.scenario_filter, scenario)
        assert builder.available_scenarios.currentItem().data(0, Qt.ItemDataRole.UserRole) == scenario
        _click(qtbot, builder.add_scenario_button)
    assert store.course(lee, course.id).scenario_ids == (LANDMARK, FLUORO)
    _click_item(qtbot, builder.course_scenarios, builder.course_scenarios.item(1))
    _click(qtbot, builder.up_button)
    assert store.course(lee, course.id).scenario_ids == (FLUORO, LANDMARK)
    assert builder.course_scenarios.currentRow() == 0  # the moved one stays chosen
    _click(qtbot, builder.add_scenario_button)  # the filter still picks FLUORO: refused in the dialog
    assert "already in the course" in builder.message.text()
    assert store.course(lee, course.id).scenario_ids == (FLUORO, LANDMARK)

    builder.tabs.setCurrentIndex(1)
    (ann_item,) = [builder.available_users.item(i) for i in range(builder.available_users.count())
                   if builder.available_users.item(i).data(Qt.ItemDataRole.UserRole) == "ann"]
    _click_item(qtbot, builder.available_users, ann_item)
    _click(qtbot, builder.add_member_button)
    qtbot.keyClicks(builder.new_trainee, "Ben Baker")
    _click(qtbot, builder.new_trainee_button)
    assert store.course(lee, course.id).members == ("ann", "ben.baker")
    assert ("ben.baker", "Ben Baker", "trainee") in store.users(lee)
    assert builder.members.count() == 2

    qtbot.keyClicks(builder.new_name, "Spring block")  # a name taken: the store's refusal, one line
    _click(qtbot, builder.create_button)
    assert "already exists" in builder.message.text() and "\n" not in builder.message.text()
    assert len(store.courses(lee)) == 1
    builder.grab().save(str(tmp_path / "course_builder.png"))
    _click(qtbot, builder.class_view_button)
    (view,) = builder.class_views
    assert view.cell_text("ben.baker", LANDMARK).startswith("– not started")
    view.close()

    mine = MyCourses(store, store.actor("ann"))
    qtbot.addWidget(mine)
    mine.show()
    qtbot.waitExposed(mine)
    assert [mine.status(course.id, s).state for s in (FLUORO, LANDMARK)] == ["not_started", "not_started"]
    assert mine.next_items == {course.id: FLUORO}
    top = mine.tree.topLevelItem(0)
    assert "Spring block" in top.text(0) and top.childCount() == 2
    assert all("not started" in top.child(i).text(2) for i in range(2))
    assert top.child(0).text(0).startswith("▶") and mine.tree.currentItem() is top.child(0)
    _click(qtbot, mine.start_button)
    assert (mine.chosen, mine.chosen_course, mine.free_practice) == (FLUORO, course.id, False)
    assert mine.result() == mine.DialogCode.Accepted

    free = MyCourses(store, store.actor("ben.baker"))
    qtbot.addWidget(free)
    _click(qtbot, free.free_button)
    assert (free.chosen, free.free_practice) == (None, True)

    # renamed by its button: the list, the store and the trainee's My courses follow
    builder.ask_name = lambda old: "Block 1 (spring)" if old == "Spring block" else None
    _click(qtbot, builder.rename_button)
    assert store.course(lee, course.id).name == "Block 1 (spring)"
    assert builder.course_list.currentItem().text() == "Block 1 (spring)" and "now" in builder.message.text()
    mine.reload()
    assert "Block 1 (spring)" in mine.tree.topLevelItem(0).text(0)

    builder.confirm = lambda question: "Block 1 (spring)" in question
    _click(qtbot, builder.delete_button)
    assert store.courses(lee) == [] and builder.course_list.count() == 0 and not builder.tabs.isEnabled()
    store.close()


def test_the_class_view_shows_each_members_standing(qtbot, class_store, tmp_path):
    """After refresh(): ann's score in her passed case, ben's landmark case in progress, ann's
    failed case with its cross; a double-click lists the attempts behind a cell. ann's My courses
    now marks the landmark case next."""
    from simulator.app.courses import ClassView, MyCourses

    store, lee = class_store["store"], class_store["lee"]
    view = ClassView(store, lee, "Block 1")
    qtbot.addWidget(view)
    view.show()
    qtbot.waitExposed(view)
    assert view.timer.isActive()
    assert view.refresh()
    score = f"{class_store['ann_score']:.0f}"
    assert view.cell_text("ann", FLUORO).startswith(f"✓ {score}")
    assert view.cell_text("ann", LANDMARK).startswith("✗ ")
    assert view.cell_text("ben", LANDMARK).startswith("… in progress")
    assert view.cell_text("ben", FLUORO).startswith("✗ ")
    assert "1 attempt" in view.cell_text("ann", FLUORO)
    assert view.table.item(0, 2).text() == "1 of 2"  # ann: passed one of two
    assert view.table.verticalHeaderItem(0).text() == "Ann Archer"

    cell = view.table.item(1, 1)  # ben, landmark
    where = view.table.visualItemRect(cell).center()
    # an item view takes a double-click on the item it saw pressed: press first, as a mouse does
    qtbot.mouseClick(view.table.viewport(), LEFT, pos=where)
    qtbot.mouseDClick(view.table.viewport(), LEFT, pos=where)
    listing = view.attempt_list
    assert listing is not None and listing.table.rowCount() == 1
    assert listing.table.item(0, 2).text() == "in progress"
    view.grab().save(str(tmp_path / "class_view.png"))
    view.close()
    assert not view.timer.isActive()

    mine = MyCourses(store, class_store["ann"])
    qtbot.addWidget(mine)
    assert mine.status(class_store["course"], FLUORO).state == "passed"
    assert mine.next_items == {class_store["course"]: LANDMARK}


def test_results_filtered_to_one_trainee_and_exported(qtbot, class_store, tmp_path):
    """The results of everyone (the attempt in progress left out, and said so), then of ann alone;
    the report is built off the GUI thread; CSV, xAPI and the report are written to the folder and
    read back. Cancel drops the run under way."""
    from simulator.app.results import ResultsDialog

    store, lee = class_store["store"], class_store["lee"]
    out = tmp_path / "exports"
    dialog = ResultsDialog(store, lee, export_folder=out)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert dialog.running and dialog.busy_row.isVisible()
    qtbot.waitUntil(lambda: not dialog.running, timeout=60_000)
    assert dialog.message.text() == ""
    assert dialog.table.rowCount() == 3 and "1 still in progress" in dialog.left_out.text()
    assert "landmark" in dialog.report_view.toPlainText().lower()

    dialog.set_trainees(["ann"])
    _click(qtbot, dialog.show_button)
    qtbot.waitUntil(lambda: not dialog.running, timeout=60_000)
    trainees = {dialog.table.item(r, 0).text() for r in range(dialog.table.rowCount())}
    assert dialog.table.rowCount() == 2 and trainees == {"Ann Archer"}
    assert {dialog.table.item(r, 5).text() for r in range(2)} == {"✓ pass", "✗ fail"}
    assert dialog.report is not None and "ann" in dialog.report_view.toPlainText()
    dialog.tabs.setCurrentIndex(1)
    dialog.grab().save(str(tmp_path / "results.png"))

    _click(qtbot, dialog.csv_button)
    (csv_path,) = out.glob("*.csv")
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and {r["owner"] for r in rows} == {"ann"}
    _click(qtbot, dialog.xapi_button)
    (xapi_path,) = out.glob("*.json")
    statements = json.loads(xapi_path.read_text(encoding="utf-8"))
    assert statements and {s["actor"]["account"]["name"] for s in statements} == {"ann"}
    html, pdf = dialog.export_report()
    assert "Ann" in html.read_text(encoding="utf-8") or "ann" in html.read_text(encoding="utf-8")
    assert pdf.read_bytes().startswith(b"%PDF")
    assert "Wrote the report" in dialog.message.text()

    # Cancel: the run is dropped, whatever it brings back later is ignored
    dialog.set_trainees([])
    _click(qtbot, dialog.show_button)
    _click(qtbot, dialog.cancel_button)
    assert not dialog.running and dialog.report is None
    qtbot.wait(1500)
    assert dialog.report is None and "cancelled" in dialog.report_view.toPlainText().lower()


def test_a_trainee_cannot_open_the_instructor_dialogs(qtbot, class_store):
    """A trainee's Actor: each instructor dialog shows the refusal in one line and offers nothing."""
    from simulator.app.courses import ClassView, CourseBuilder
    from simulator.app.results import ResultsDialog

    store, ann = class_store["store"], class_store["ann"]
    builder = CourseBuilder(store, ann)
    qtbot.addWidget(builder)
    assert builder.refused and "instructor password" in builder.message.text()
    assert not builder.create_button.isEnabled() and builder.course_list.count() == 0
    results = ResultsDialog(store, ann)
    qtbot.addWidget(results)
    assert results.refused and not results.running and "instructor password" in results.message.text()
    assert not results.show_button.isEnabled() and not results.csv_button.isEnabled()
    view = ClassView(store, ann, "Block 1")
    qtbot.addWidget(view)
    assert view.course is None and "instructor password" in view.message.text()
