"""``spinesim bench``: the speed figures, as medians of repeated runs (machines are noisy)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def _timed(fn, repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return {"median_s": round(statistics.median(runs), 6), "runs_s": [round(r, 6) for r in runs]}


def full_spine_child(use_cache: bool) -> None:
    """Build the default patient's whole spine (C2 to coccyx) at the default voxel size and print
    the seconds it took and the process's peak memory as JSON (run in a fresh process)."""
    from simulator.anatomy.anatomy import DEFAULT_VOXEL_MM, build_anatomy
    from simulator.anatomy.patient import PatientParameters

    t0 = time.perf_counter()
    anatomy = build_anatomy(PatientParameters(), DEFAULT_VOXEL_MM, None, use_cache=use_cache)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "shape": list(anatomy.grid.shape),
                      "voxel_mm": DEFAULT_VOXEL_MM, "from_cache": anatomy.info.from_cache}))


def _peak_rss_mb() -> float:
    """This process's peak resident memory, MB. Read from ``VmHWM`` (Linux), which belongs to the
    process's own address space: ``ru_maxrss`` would carry over the forking parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux; elsewhere an upper bound


def _full_spine_run(use_cache: bool, cache_dir: str) -> dict:
    # a fresh interpreter per run: the build's own peak memory, and a cached load as the app sees it
    env = dict(os.environ, SPINESIM_CACHE_DIR=cache_dir)
    code = f"from simulator.bench import full_spine_child; full_spine_child({use_cache!r})"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _summary(runs: list[dict]) -> dict:
    seconds = [r["seconds"] for r in runs]
    return {"median_s": round(statistics.median(seconds), 3), "runs_s": [round(v, 3) for v in seconds],
            "peak_rss_mb_max": round(max(r["peak_rss_mb"] for r in runs), 1)}


def bench_full_spine(repeats: int = 3, cold_repeats: int = 3) -> dict:
    """Cold build and cached load of the default patient's whole spine, each in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        cold = [_full_spine_run(False, tmp) for _ in range(cold_repeats)]
        _full_spine_run(True, tmp)  # fill the cache
        cached = [_full_spine_run(True, tmp) for _ in range(repeats)]
    return {"shape": cold[0]["shape"], "voxel_mm": cold[0]["voxel_mm"],
            "cold_build": _summary(cold), "cached_load": _summary(cached)}


def _app_child(args: list[str], env: dict) -> dict:
    command = [sys.executable, "-m", "simulator.app.bench_app", *args]
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        import shutil

        if shutil.which("xvfb-run") is None:
            raise RuntimeError("no display and no xvfb-run: the app cannot be measured here")
        command = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", *command]
    env = dict(env, SPINESIM_BENCH_T0=repr(time.time()))
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"the app bench failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(lines[-1])


def bench_app(repeats: int = 5, presses: int = 30) -> dict:
    """The app on the default scenario, each run in a fresh process: start-up to an interactive
    window (patient cached, compiled code warm: one unmeasured start fills both), a needle key
    press to the X-ray on the monitor and to the 3D view, and the window's freezes in a scripted
    fluoroscopy attempt and (``"landmark"``) a landmark one."""
    try:
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as data:
            env = dict(os.environ, SPINESIM_CACHE_DIR=cache, SPINESIM_DATA_DIR=data)
            _app_child(["startup"], env)  # builds and caches the patient
            starts = [_app_child(["startup"], env)["startup_s"] for _ in range(repeats)]
            result = {"startup_cached": {"median_s": round(statistics.median(starts), 3),
                                         "runs_s": [round(s, 3) for s in starts]}}
            result.update(_app_child(["latency", str(presses)], env))
            result["landmark"] = _app_child(["landmark"], env)
            return result
    except (RuntimeError, subprocess.SubprocessError) as err:
        return {"skipped": str(err)}


def bench_study(patients: int = 3) -> dict:
    """Virtual attempts per second per core: the study's four procedures in both modes on
    ``patients`` patients of a seeded population, one patient at a time in this process, each
    patient's region builds included (as a study runs them). Per core: attempts per second of this
    process's CPU time (a busy shared machine slows the wall clock, not the CPU time), and per
    second of wall time beside it."""
    from simulator.study.operators import MODES, PROCEDURES
    from simulator.study.runner import StudyPlan, run_patient

    plan = StudyPlan(PROCEDURES, MODES, patients + 1, seed=2026).as_dict()
    run_patient(plan, patients)  # warm: compiled code and imports, not timed
    per_cpu_s, per_wall_s, attempt_s = [], [], []
    for index in range(patients):
        t0, c0 = time.perf_counter(), time.process_time()
        attempts = run_patient(plan, index)
        per_cpu_s.append(len(attempts) / (time.process_time() - c0))
        per_wall_s.append(len(attempts) / (time.perf_counter() - t0))
        attempt_s.extend(a["seconds"] for a in attempts)
    return {"virtual_attempts_per_s_per_core": {"median": round(statistics.median(per_cpu_s), 3),
                                                "runs": [round(r, 3) for r in per_cpu_s]},
            "virtual_attempts_per_s_wall": {"median": round(statistics.median(per_wall_s), 3),
                                            "runs": [round(r, 3) for r in per_wall_s]},
            "median_attempt_s": round(statistics.median(attempt_s), 3),
            "attempts_per_patient": len(PROCEDURES) * len(MODES)}


def run_bench(repeats: int = 5, cold_repeats: int = 3, full_spine: bool = True, app: bool = True,
              study: bool = True) -> dict:
    """Benchmark the default scenario's patient (and the default patient's whole spine); returns a
    JSON-friendly dict."""
    from simulator import __version__
    from simulator.anatomy.anatomy import build_anatomy
    from simulator.imaging.carm import CArmPose
    from simulator.imaging.fluoroscope import Fluoroscope
    from simulator.imaging.overlay import Overlay
    from simulator.protocol import commands as cmd
    from simulator.scenario.loader import DEFAULT_SCENARIO, load_scenario
    from simulator.simulation.reference import run_reference
    from simulator.simulation.simulation import Simulation

    loaded = load_scenario(DEFAULT_SCENARIO)
    sc = loaded.scenario
    params = sc.patient.parameters()
    results: dict[str, dict] = {}

    # phantom build: cold (no cache) and cached, in a private cache folder
    previous = os.environ.get("SPINESIM_CACHE_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SPINESIM_CACHE_DIR"] = tmp
        try:
            results["phantom_build_cold"] = _timed(
                lambda: build_anatomy(params, sc.anatomy.voxel_mm, sc.anatomy.levels, use_cache=False), cold_repeats)
            build_anatomy(params, sc.anatomy.voxel_mm, sc.anatomy.levels)  # fill the cache
            results["phantom_build_cached"] = _timed(
                lambda: build_anatomy(params, sc.anatomy.voxel_mm, sc.anatomy.levels), repeats)
            anatomy = build_anatomy(params, sc.anatomy.voxel_mm, sc.anatomy.levels)
        finally:
            if previous is None:
                os.environ.pop("SPINESIM_CACHE_DIR", None)
            else:
                os.environ["SPINESIM_CACHE_DIR"] = previous

    mu = anatomy.mu_volume()
    scope = Fluoroscope(mu, anatomy.world_from_voxel, 512)
    target = tuple(float(v) for v in anatomy.landmark(f"{sc.target_level}.interlaminar_center"))
    scope.render(CArmPose(0.0, 0.0, target), [], None, (0, 0))  # compile the kernels once
    poses = iter([CArmPose(float(o), float(t), target) for o, t in
                  [(5 * i - 20, 3 * (i % 7) - 9) for i in range(100)]])
    # at a typical kVp, as the app renders (the spectrum's lookup included)
    results["image_512_new_pose"] = _timed(lambda: scope.render(next(poses), [], None, (0, 1), kvp=80.0), repeats)

    needle = Overlay(np.array([[0.0, -120.0, target[2]], [0.0, -40.0, target[2] + 5.0]]), 0.455)
    counter = iter(range(10_000))
    fixed_pose = CArmPose(0.0, 0.0, target)
    scope.render(fixed_pose, [needle], None, (0, 2))

    def live_frame():
        k = next(counter)
        moved = Overlay(needle.points_mm + np.array([0.0, 0.1 * k, 0.0]), needle.radius_mm)
        scope.render(fixed_pose, [moved], None, (0, 3, k), kvp=80.0)

    results["image_512_same_pose_needle_moved"] = _timed(live_frame, repeats * 4)

    # one needle step (tissue tracking, events) in the middle of a real attempt
    sim = Simulation(loaded, anatomy=anatomy)
    entry = anatomy.skin_point_behind(anatomy.landmark(f"{sc.target_level}.interlaminar_center"))
    sim.apply(cmd.SetEntry(point_mm=tuple(float(v) for v in entry), direction=(0.0, 1.0, 0.0)))
    sim.apply(cmd.Advance(distance_mm=5.0))
    results["needle_step_0p5mm"] = _timed(lambda: sim.apply(cmd.Advance(distance_mm=0.5)), repeats * 6)

    # live fluoroscopy (pedal down, 15 pulses/s, 512 x 512): a 0.5 mm needle step and the next frame
    live = Simulation(loaded, anatomy=anatomy, image_size_px=512)
    live.apply(cmd.SetEntry(point_mm=tuple(float(v) for v in entry), direction=(0.0, 1.0, 0.0)))
    live.apply(cmd.Advance(distance_mm=5.0))
    live.apply(cmd.FluoroscopyOn(pulse_rate_pps=15.0))
    live.live_frame()

    def live_step():
        live.apply(cmd.Advance(distance_mm=0.5))
        live.live_frame()

    results["fluoroscopy_live_step_and_frame_512"] = _timed(live_step, repeats * 4)

    # the same while 2 mL of contrast spreads from the tip: each frame a 1/15 s later
    live.apply(cmd.InjectContrast(volume_ml=2.0))
    frame_times = iter(live.t_s + np.arange(1, 10_000) / 15.0)
    live.live_frame(live.t_s + 0.5)

    def spreading_step():
        t = float(next(frame_times))
        live.apply(cmd.Advance(distance_mm=0.1), t_s=t)
        live.live_frame(t)

    results["fluoroscopy_live_step_and_frame_contrast_spreading_512"] = _timed(spreading_step, repeats * 4)

    def reference_attempt():
        run_reference(Simulation(loaded, anatomy=anatomy, image_size_px=512))

    results["reference_attempt_headless"] = _timed(reference_attempt, max(1, repeats // 2))
    if study:
        results["study"] = bench_study(max(2, repeats // 2 + 1))
    if app:
        results["app"] = bench_app(repeats)
    if full_spine:
        results["full_spine"] = bench_full_spine(min(repeats, 3), cold_repeats)
    return {
        "format": "spinesim-bench",
        "format_version": 1,
        "app_version": __version__,
        "scenario": sc.id,
        "anatomy": {"voxel_mm": sc.anatomy.voxel_mm, "levels": sc.anatomy.levels,
                    "shape": list(anatomy.grid.shape)},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "results": results,
    }
