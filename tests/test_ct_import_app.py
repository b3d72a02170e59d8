"""Importing a patient CT in the app, under a virtual display: from the scenario editor an
instructor picks the CT and its segmentation, names the patient and imports it off the GUI thread
(progress shown, the window answering); the scenario then uses it. Wrong fields are refused in one
line naming the field; Cancel stops the import and nothing is stored."""

from __future__ import annotations

import tomllib

import pytest

pytest.importorskip("PyQt6")
pytest.importorskip("pyvistaqt")

from PyQt6.QtCore import Qt, QThreadPool  # noqa: E402

from simulator.anatomy.ct_import import anatomies_dir, imported_names  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def ts_export(small_anatomy, tmp_path_factory):
    """The small phantom written as a CT with TotalSegmentator's segmentation."""
    from simulator.anatomy.export import export_anatomy

    out = tmp_path_factory.mktemp("ts-export-app")
    export_anatomy(small_anatomy, out, "totalsegmentator")
    return out


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    monkeypatch.setenv("SPINESIM_DATA_DIR", str(folder))
    return folder


def _type(qtbot, line_edit, text: str) -> None:
    line_edit.selectAll()
    qtbot.keyClicks(line_edit, text)


def _fill(qtbot, dialog, ct, labels, name: str) -> None:
    _type(qtbot, dialog.ct_path, str(ct))
    _type(qtbot, dialog.labels_path, str(labels))
    _type(qtbot, dialog.name, name)
    dialog.voxel_mm.setValue(1.5)  # the export's own voxel: no resampling


def test_a_ct_imported_from_the_scenario_editor_becomes_the_scenario_s_patient(qtbot, data_dir, ts_export):
    from simulator.app.scenario_editor import ScenarioEditor

    editor = ScenarioEditor()
    editor.ask_before_discarding = False
    qtbot.addWidget(editor)
    editor.show()
    qtbot.waitExposed(editor)
    qtbot.waitUntil(lambda: editor.validation.text() == "Valid", timeout=5_000)
    ct_choice = editor.fields["anatomy.ct"]
    assert ct_choice.count() == 1 and ct_choice.currentData() is None  # nothing imported yet

    qtbot.mouseClick(editor.import_ct_button, Qt.MouseButton.LeftButton)
    dialog = editor.ct_import_dialog
    qtbot.waitExposed(dialog)
    _fill(qtbot, dialog, ts_export / "ct.nii.gz", ts_export / "segmentations.nii.gz", "smith")
    steps = []
    qtbot.mouseClick(dialog.import_button, Qt.MouseButton.LeftButton)
    assert dialog.running and not dialog.import_button.isEnabled() and dialog.cancel_button.isEnabled()
    # the window answers while the import runs, and shows each step
    qtbot.waitUntil(lambda: steps.append(dialog.step_label.text()) or not dialog.running, timeout=180_000)
    assert dialog.outcome == "imported", dialog.message.text()
    assert any(text.startswith("Deriving the tissues") for text in steps)
    assert "Imported 'smith'" in dialog.message.text() and "L4" in dialog.message.text()
    assert imported_names() == ["smith"]
    # the editor offers it and the scenario now uses it
    assert ct_choice.currentData() == "smith"
    assert tomllib.loads(editor.text())["anatomy"]["ct"] == "smith"
    qtbot.waitUntil(lambda: editor.validation.text() == "Valid", timeout=5_000)
    dialog.close()


def test_wrong_fields_are_named_and_cancel_stores_nothing(qtbot, data_dir, ts_export, tmp_path):
    from simulator.app.ct_import_dialog import CtImportDialog

    dialog = CtImportDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    qtbot.mouseClick(dialog.import_button, Qt.MouseButton.LeftButton)
    assert dialog.message.text() == "CT: choose a file or a folder" and not dialog.running
    _fill(qtbot, dialog, tmp_path / "nowhere.nii.gz", ts_export / "segmentations.nii.gz", "smith")
    qtbot.mouseClick(dialog.import_button, Qt.MouseButton.LeftButton)
    assert dialog.message.text().startswith("CT: ") and "no such file" in dialog.message.text()
    _fill(qtbot, dialog, ts_export / "ct.nii.gz", ts_export / "segmentations.nii.gz", "../smith")
    qtbot.mouseClick(dialog.import_button, Qt.MouseButton.LeftButton)
    assert dialog.message.text().startswith("Patient name: ") and "\n" not in dialog.message.text()
    # a segmentation that is not one: the import's own one-line refusal, naming the file
    _fill(qtbot, dialog, ts_export / "ct.nii.gz", ts_export / "ct.nii.gz", "smith")
    qtbot.mouseClick(dialog.import_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.running, timeout=60_000)
    assert dialog.outcome == "failed" and "ct.nii.gz" in dialog.message.text()

    _fill(qtbot, dialog, ts_export / "ct.nii.gz", ts_export / "segmentations.nii.gz", "jones")
    qtbot.mouseClick(dialog.import_button, Qt.MouseButton.LeftButton)
    assert dialog.running
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    # free at once, and nothing stored once the import's running step has ended
    assert not dialog.running and dialog.outcome == "cancelled" and dialog.import_button.isEnabled()
    assert "nothing was stored" in dialog.message.text()
    assert QThreadPool.globalInstance().waitForDone(120_000)
    assert imported_names() == [] and not (anatomies_dir() / "jones").exists()
