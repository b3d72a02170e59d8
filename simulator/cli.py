"""The ``spinesim`` command line.

``spinesim`` alone opens the desktop app on the default scenario. Subcommands work headless:

- ``spinesim landmarks SCENARIO --json``: named landmarks of the scenario's patient (world mm);
- ``spinesim attempt SCENARIO --actions FILE --json``: apply recorded commands, print the outcome
  and the scorecard (``--reference`` runs the expert's attempt instead);
- ``spinesim render SCENARIO --oblique DEG --tilt DEG --out image.png``: one X-ray image;
- ``spinesim scenarios``: list and validate the built-in scenarios (or given files); ``--schema``
  prints the scenario file's JSON Schema;
- ``spinesim bench``: benchmark medians as JSON;
- ``spinesim import-ct CT --labels SEG --name NAME``: import a patient CT (NIfTI or a DICOM series
  folder) with its TotalSegmentator segmentation; ``NAME`` is then usable as a scenario's
  ``[anatomy] ct``;
- ``spinesim anatomy export ANATOMY DIR``: write an anatomy (an imported name, or a scenario's
  patient) as NIfTI volumes and VTP/STL meshes (``--format totalsegmentator``: TotalSegmentator's
  multi-label conventions).

Every JSON printed has ``format`` and ``format_version`` fields; the formats are documented in the
README. Errors are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

from simulator import __version__, cli_records, cli_study
from simulator.errors import SpineSimError

FRAME_DESCRIPTION = ("patient frame RAS in mm: +x patient's right, +y anterior, +z cranial; origin at the "
                     "centre of the S1 superior endplate")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spinesim", description="SpineSim: spinal injection simulator "
                                "(for training only, not for clinical use).")
    p.add_argument("--version", action="version", version=f"spinesim {__version__}")
    p.add_argument("--cache-dir", help="folder for built phantoms (default: the platform's cache folder; "
                   "or set SPINESIM_CACHE_DIR)")
    p.add_argument("--database", help="the attempt store's URL: sqlite:///FILE or postgresql://USER@HOST/DB (default: "
                   "SPINESIM_DATABASE_URL, the settings file, else SQLite in the user's data folder)")
    sub = p.add_subparsers(dest="cmd")

    run = sub.add_parser("run", help="open the desktop app (the default)")
    run.add_argument("scenario", nargs="?", default=None, help="scenario file or built-in name")
    run.add_argument("--record", help="write the attempt record here (default: the user data folder)")
    run.add_argument("--resume", type=int, metavar="ATTEMPT",
                     help="carry on an incomplete stored attempt (a station that stopped mid-attempt)")

    lm = sub.add_parser("landmarks", help="print the named landmarks of a scenario's patient")
    lm.add_argument("scenario")
    lm.add_argument("--json", action="store_true", help="print JSON (the default is a table)")
    lm.add_argument("--patient-seed", type=int, help="use another seeded patient")

    at = sub.add_parser("attempt", help="apply a file of commands and print the outcome and score")
    at.add_argument("scenario")
    src = at.add_mutually_exclusive_group(required=True)
    src.add_argument("--actions", help="attempt record or JSON Lines file of commands")
    src.add_argument("--reference", action="store_true", help="run the expert's attempt")
    at.add_argument("--json", action="store_true", help="print JSON (the default is a summary)")
    at.add_argument("--record", help="also write the attempt record (JSON Lines) here")
    at.add_argument("--patient-seed", type=int, help="use another seeded patient")
    at.add_argument("--store", action="store_true", help="also keep the attempt in the attempt store")
    at.add_argument("--user", help="with --store: whose attempt it is (default: the station's user)")
    at.add_argument("--course", help="with --store: the course (id or name) the attempt belongs to")
    at.add_argument("--images", action="store_true", help="with --store: keep the X-ray images in the store too")

    rd = sub.add_parser("render", help="write an X-ray image of a scenario's patient or an imported CT")
    rd.add_argument("scenario", help="a scenario (name or file), or ct:NAME for an imported CT")
    rd.add_argument("--oblique", type=float, default=0.0,
                    help="degrees; positive moves the detector towards the patient's left (0 = AP)")
    rd.add_argument("--tilt", type=float, default=0.0,
                    help="degrees; positive tilts the detector towards the head")
    rd.add_argument("--size", type=int, default=512, help="image rows and columns (default 512)")
    rd.add_argument("--isocentre", "--isocenter", dest="isocentre",
                    help="x,y,z in mm or a landmark name (default: the target interspace)")
    rd.add_argument("--out", required=True, help="PNG file to write")
    rd.add_argument("--raw", help="also write the anatomy's line integrals (.npy, float32)")
    rd.add_argument("--geometry", help="also write the projection geometry (.json)")
    rd.add_argument("--patient-seed", type=int, help="use another seeded patient")

    sc = sub.add_parser("scenarios", help="list and validate scenarios")
    sc.add_argument("files", nargs="*", help="scenario files (default: the built-in ones)")
    sc.add_argument("--schema", action="store_true",
                    help="print the scenario file's JSON Schema (for editors; scenarios/scenario.schema.json)")

    ic = sub.add_parser("import-ct", help="import a patient CT with its TotalSegmentator segmentation")
    ic.add_argument("ct", help="CT: a NIfTI file (.nii, .nii.gz) or a folder holding one DICOM series")
    ic.add_argument("--labels", required=True, help="TotalSegmentator segmentation: a multi-label NIfTI of the "
                    "'total' task (v2) or a folder of per-structure masks (vertebrae_L4.nii.gz, ...)")
    ic.add_argument("--name", required=True, help="name to give the anatomy (use it as [anatomy] ct = \"NAME\")")
    ic.add_argument("--voxel-mm", type=float, default=1.0, help="voxel size of the imported anatomy (default 1)")

    an = sub.add_parser("anatomy", help="inspect anatomies")
    an_sub = an.add_subparsers(dest="anatomy_cmd", required=True)
    ex = an_sub.add_parser("export", help="write an anatomy as NIfTI volumes and VTP/STL meshes")
    ex.add_argument("anatomy", help="an imported anatomy's name, or a scenario file or built-in name")
    ex.add_argument("dir", help="folder to write into (created)")
    ex.add_argument("--patient-seed", type=int, help="a scenario's anatomy: use another seeded patient")
    ex.add_argument("--format", choices=("native", "totalsegmentator"), default="native",
                    help="native: SpineSim labels, HU and meshes (default); totalsegmentator: "
                    "segmentations.nii.gz with the 'total' task's v2 class ids, and ct.nii.gz")

    cli_records.add_parsers(sub)
    cli_study.add_parser(sub)
    bn = sub.add_parser("bench", help="benchmark medians, printed as JSON")
    bn.add_argument("--repeats", type=int, default=5, help="runs of each timed step (default 5)")
    bn.add_argument("--cold-repeats", type=int, default=3, help="cold phantom builds (default 3)")
    bn.add_argument("--no-full-spine", action="store_true",
                    help="skip the whole-spine build and load (several minutes)")
    bn.add_argument("--no-study", action="store_true",
                    help="skip the virtual operators' attempts per second per core")
    bn.add_argument("--no-app", action="store_true",
                    help="skip the app's start-up and key-to-picture figures (they need a display or xvfb-run)")
    return p


def _load(ref: str, patient_seed: int | None):
    from simulator.scenario.loader import load_scenario, parse_scenario

    loaded = load_scenario(ref)
    if patient_seed is not None:
        if patient_seed < 0:
            raise SpineSimError("--patient-seed: must be a non-negative whole number")
        # same scenario, another patient: change the seed and clear the fixed parameters
        import tomllib

        import tomli_w

        data = tomllib.loads(loaded.text)
        data["patient"] = {"seed": patient_seed}
        loaded = parse_scenario(tomli_w.dumps(data), f"{loaded.source} (patient seed {patient_seed})")
    return loaded


def _anatomy_for(loaded):
    from simulator.anatomy.anatomy import anatomy_for_scenario

    sc = loaded.scenario
    return anatomy_for_scenario(sc)


def cmd_landmarks(args) -> int:
    loaded = _load(args.scenario, args.patient_seed)
    from simulator.anatomy.patient import GENERATOR_VERSION
    from simulator.anatomy.landmarks import compute_landmarks
    from simulator.anatomy.phantom import SpinePhantom

    patient = loaded.scenario.patient.parameters().resolved()
    landmarks = compute_landmarks(SpinePhantom(patient))
    if args.json:
        print(json.dumps({
            "format": "spinesim-landmarks", "format_version": 1, "scenario": loaded.scenario.id,
            "frame": FRAME_DESCRIPTION, "units": "mm", "generator_version": GENERATOR_VERSION,
            "patient": patient.as_dict(),
            "landmarks": {k: [round(float(x), 3) for x in v] for k, v in sorted(landmarks.items())},
        }, indent=1))
    else:
        for k, v in sorted(landmarks.items()):
            print(f"{k:36s} {v[0]:9.2f} {v[1]:9.2f} {v[2]:9.2f}")
    return 0


def cmd_attempt(args) -> int:
    loaded = _load(args.scenario, args.patient_seed)
    from simulator.records.attempt_file import read_record
    from simulator.simulation.reference import run_reference
    from simulator.simulation.simulation import Simulation

    anatomy = _anatomy_for(loaded)
    recorders = []
    if args.store:
        from simulator.records.recording import StoreRecorder, station_account
        from simulator.records.store import Store

        store = Store.open(args.database)
        course = int(args.course) if args.course and args.course.isdigit() else args.course
        recorders.append(StoreRecorder(store, store.sign_in(args.user or station_account()), course))
    if args.reference:
        sim = Simulation(loaded, anatomy=anatomy, record_path=args.record, recorders=recorders)
        _keep_images(sim, recorders, args.images)
        run_reference(sim)
    else:
        record = read_record(args.actions)
        if record.header is not None and record.header["scenario"].get("sha256") != loaded.sha256:
            print(f"spinesim: warning: {args.actions} was recorded on a different version of the scenario",
                  file=sys.stderr)
        sim = Simulation(loaded, anatomy=anatomy, record_path=args.record, recorders=recorders)
        _keep_images(sim, recorders, args.images)
        from simulator.errors import CommandRefused

        for number, timed in enumerate(record.commands, start=1):
            if sim.finished:
                break
            try:
                sim.apply(timed.command, timed.t_s)
            except CommandRefused as err:
                print(f"spinesim: warning: {args.actions}: command {number} ({timed.command.command}) "
                      f"refused: {err}", file=sys.stderr)
        if not sim.finished:
            from simulator.protocol.commands import Finish

            sim.apply(Finish())
    sim.close()
    card = sim.scorecard
    if recorders:
        print(f"spinesim: stored as attempt {recorders[0].attempt_id}", file=sys.stderr)
    if args.json:
        print(json.dumps({
            "format": "spinesim-attempt-result", "format_version": 1,
            "scenario": loaded.scenario.id, "scenario_sha256": loaded.sha256,
            "guidance": loaded.scenario.guidance, "target_level": loaded.scenario.target_level,
            "patient": sim.anatomy.patient.as_dict(),
            "outcome": card.placement.as_dict(),
            "scorecard": card.as_dict(),
            "events": [e.as_dict() for e in sim.events],
        }, indent=1))
    else:
        p = card.placement
        print(f"{'PASS' if card.passed else 'FAIL'}  score {card.score:.0f}/100  outcome: {p.outcome} "
              f"({p.tissue}, {p.interspace})")
        for line in card.feedback:
            print(f"  - {line}")
    return 0


def _keep_images(sim, recorders, wanted: bool) -> None:
    """With --images, each X-ray goes into the store as it is taken."""
    if wanted:
        for recorder in recorders:
            recorder.image_source = lambda index: sim.images[index].display


def _isocentre(text: str | None, anatomy, scenario):
    import numpy as np

    if text is None:
        from simulator.procedures.registry import procedure_for

        return tuple(float(v) for v in procedure_for(scenario.procedure).centre_point(anatomy, scenario))
    parts = text.split(",")
    if len(parts) == 3:
        try:
            values = tuple(float(v) for v in parts)
        except ValueError:
            raise SpineSimError(f"--isocentre: '{text}' is not x,y,z in mm") from None
        if not all(np.isfinite(values)):
            raise SpineSimError("--isocentre: must be finite numbers")
        return values
    return tuple(float(v) for v in anatomy.landmark(text))


def cmd_render(args) -> int:
    import numpy as np

    ct_name = args.scenario[3:] if args.scenario.startswith("ct:") else None
    loaded = None if ct_name else _load(args.scenario, args.patient_seed)
    if not (-100.0 <= args.oblique <= 100.0) or not np.isfinite(args.oblique):
        raise SpineSimError("--oblique: must be between -100 and 100 degrees")
    if not (-45.0 <= args.tilt <= 45.0) or not np.isfinite(args.tilt):
        raise SpineSimError("--tilt: must be between -45 and 45 degrees")
    if not (32 <= args.size <= 2048):
        raise SpineSimError("--size: must be between 32 and 2048 pixels")
    from PIL import Image

    from simulator.imaging import dose
    from simulator.imaging.carm import CArmPose
    from simulator.imaging.fluoroscope import Fluoroscope

    if ct_name:
        from simulator.anatomy.ct_import import load_imported

        anatomy = load_imported(ct_name)
        middle = anatomy.levels[len(anatomy.levels) // 2] if anatomy.levels else None
        default_iso = f"{middle}.body_center" if middle else None
        isocentre = _isocentre(args.isocentre or default_iso, anatomy, None) if (args.isocentre or default_iso) \
            else tuple(float(v) for v in 0.5 * (anatomy.grid.lo_mm + anatomy.grid.hi_mm))
        seed = 0
    else:
        anatomy = _anatomy_for(loaded)
        isocentre = _isocentre(args.isocentre, anatomy, loaded.scenario)
        seed = loaded.scenario.patient.seed
    pose = CArmPose(args.oblique, args.tilt, isocentre)
    scope = Fluoroscope(anatomy.mu_volume(), anatomy.world_from_voxel, args.size)
    # the picture as the app takes an acquisition: the exposure control's kVp and dose
    exposure = dose.exposure(scope.central_integral(pose), "acquisition", 1, pixel_mm=scope.pixel_mm(pose))
    image = scope.render(pose, [], None, (seed, 7, 0), photons_per_pixel=exposure.photons_per_pixel_unattenuated,
                         kvp=exposure.kvp)
    out = Path(args.out)
    try:
        Image.fromarray(image.display).save(out, format="PNG")
        if args.raw:
            np.save(args.raw, scope.exact_anatomy_integrals(image.projection))
        if args.geometry:
            geometry = {"format": "spinesim-projection", "format_version": 1, **image.projection.as_dict(),
                        "energy_kev": 60.0, "frame": FRAME_DESCRIPTION,
                        "world_from_voxel": anatomy.world_from_voxel.tolist(),
                        "oblique_deg": args.oblique, "tilt_deg": args.tilt,
                        "isocentre_mm": list(pose.isocentre_mm)}
            if ct_name:
                geometry.update(ct_geometry_fields(anatomy))
            Path(args.geometry).write_text(json.dumps(geometry, indent=1))
    except OSError as err:
        raise SpineSimError(f"{err.filename or out}: cannot write ({err.strerror})") from None
    print(str(out))
    return 0


def ct_geometry_fields(anatomy) -> dict:
    """What an independent renderer needs to recompute an imported CT's line integrals exactly:
    the stored CT numbers (``world_from_voxel`` maps their indices), the HU to attenuation mapping
    and the smoothing applied to it."""
    import numpy as np

    from simulator.anatomy.ct_import import HU_TO_MU, MU_SMOOTHING_VOXELS

    table = [[upper if np.isfinite(upper) else "inf", material, mu_rho] for upper, material, mu_rho in HU_TO_MU]
    return {
        "frame": "the CT's own RAS frame (mm), as stored in its header",
        "hu_volume": str(anatomy.folder / "hu.npy"),
        "hu_to_mu": {
            "table": table,
            "table_columns": ["hu_upper_bound (inclusive)", "material", "mass_attenuation_cm2_per_g"],
            "density_g_per_cm3": "max(0, min(0.001029 * HU + 1.030, 0.0005886 * HU + 1.03))",
            "mu_per_mm": "density_g_per_cm3 * mass_attenuation_cm2_per_g / 10",
            "then_gaussian_sigma_voxels": MU_SMOOTHING_VOXELS,
            "interpolation": "trilinear, voxel centres at integer indices",
        },
    }


def cmd_scenarios(args) -> int:
    from simulator.scenario.loader import builtin_scenarios, load_scenario, parse_scenario

    if args.schema:
        import json

        from simulator.scenario.schema import json_schema

        print(json.dumps(json_schema(), indent=1))
        return 0
    failures = 0
    if args.files:
        items = [(f, None) for f in args.files]
    else:
        items = sorted(builtin_scenarios().items())
    for name, text in items:
        try:
            loaded = load_scenario(name) if text is None else parse_scenario(text, f"builtin:{name}")
            s = loaded.scenario
            print(f"ok    {name}: {s.title} [{s.procedure}, {s.target_level}, {s.guidance}]")
        except SpineSimError as err:
            failures += 1
            print(f"error {err}")
    return 2 if failures else 0


def cmd_import_ct(args) -> int:
    from simulator.anatomy.ct_import import import_ct, load_imported

    if not (0.3 <= args.voxel_mm <= 4.0):
        raise SpineSimError(f"--voxel-mm: {args.voxel_mm} is outside 0.3-4 mm")
    folder = import_ct(args.ct, args.labels, args.name, voxel_mm=args.voxel_mm)
    anatomy = load_imported(args.name)
    print(f"imported '{args.name}' into {folder}")
    print(f"  levels: {', '.join(anatomy.levels) or 'none whole in the scan'}")
    print(f"  use it in a scenario: [anatomy] ct = \"{args.name}\"")
    return 0


def _is_scenario_ref(ref: str) -> bool:
    from simulator.scenario.loader import builtin_scenarios

    path = Path(ref)
    return path.suffix == ".toml" or path.is_file() or ref in builtin_scenarios()


def cmd_anatomy(args) -> int:
    from simulator.anatomy.export import export_anatomy

    if _is_scenario_ref(args.anatomy):
        anatomy = _anatomy_for(_load(args.anatomy, args.patient_seed))
    else:
        if args.patient_seed is not None:
            raise SpineSimError("--patient-seed: applies to a scenario's phantom, not to an imported CT")
        from simulator.anatomy.ct_import import load_imported

        anatomy = load_imported(args.anatomy)
    written = export_anatomy(anatomy, args.dir, args.format)
    meshes = sum(1 for p in written if p.suffix == ".vtp")
    print(f"wrote {len(written)} files to {args.dir}" + (f" ({meshes} meshes as VTP and STL)" if meshes else ""))
    return 0


def cmd_run(args) -> int:
    from simulator.app.main import run_app

    return run_app(args.scenario, record_path=args.record, resume=getattr(args, "resume", None))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cache_dir:
        os.environ["SPINESIM_CACHE_DIR"] = args.cache_dir
    if args.database:  # the app and every records command open the store by this URL
        os.environ["SPINESIM_DATABASE_URL"] = args.database
    handlers = {"landmarks": cmd_landmarks, "attempt": cmd_attempt, "render": cmd_render,
                "scenarios": cmd_scenarios, "bench": _bench, "run": cmd_run, None: cmd_run,
                "import-ct": cmd_import_ct, "anatomy": cmd_anatomy, "study": cli_study.cmd_study,
                **cli_records.HANDLERS}
    if args.cmd is None:
        args.scenario = None
        args.record = None
        args.resume = None
    try:
        return handlers[args.cmd](args)
    except SpineSimError as err:
        print(f"spinesim: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # noqa: BLE001 - last resort: one line for the user, the trace in a log
        log = _write_crash_log()
        print(f"spinesim: internal error: {err.__class__.__name__}: {err} (details in {log})", file=sys.stderr)
        return 3


def _bench(args) -> int:
    from simulator.bench import run_bench

    print(json.dumps(run_bench(repeats=args.repeats, cold_repeats=args.cold_repeats,
                                full_spine=not args.no_full_spine, app=not args.no_app,
                                study=not args.no_study), indent=1))
    return 0


def _write_crash_log() -> str:
    from simulator.paths import data_dir

    path = data_dir() / "crash.log"
    with open(path, "a", encoding="utf-8") as f:
        f.write(traceback.format_exc() + "\n")
    return str(path)


if __name__ == "__main__":
    raise SystemExit(main())
