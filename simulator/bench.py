"""``spinesim bench``: the speed figures, as medians of repeated runs (machines are noisy)."""

from __future__ import annotations

import os
import platform
import statistics
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


def run_bench(repeats: int = 5, cold_repeats: int = 3) -> dict:
    """Benchmark the default scenario's patient; returns a JSON-friendly dict."""
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
    results["image_512_new_pose"] = _timed(lambda: scope.render(next(poses), [], None, (0, 1)), repeats)

    needle = Overlay(np.array([[0.0, -120.0, target[2]], [0.0, -40.0, target[2] + 5.0]]), 0.455)
    counter = iter(range(10_000))
    fixed_pose = CArmPose(0.0, 0.0, target)
    scope.render(fixed_pose, [needle], None, (0, 2))

    def live_frame():
        k = next(counter)
        moved = Overlay(needle.points_mm + np.array([0.0, 0.1 * k, 0.0]), needle.radius_mm)
        scope.render(fixed_pose, [moved], None, (0, 3, k))

    results["image_512_same_pose_needle_moved"] = _timed(live_frame, repeats * 4)

    # one needle step (tissue tracking, events) in the middle of a real attempt
    sim = Simulation(loaded, anatomy=anatomy)
    entry = anatomy.skin_point_behind(anatomy.landmark(f"{sc.target_level}.interlaminar_center"))
    sim.apply(cmd.SetEntry(point_mm=tuple(float(v) for v in entry), direction=(0.0, 1.0, 0.0)))
    sim.apply(cmd.Advance(distance_mm=5.0))
    results["needle_step_0p5mm"] = _timed(lambda: sim.apply(cmd.Advance(distance_mm=0.5)), repeats * 6)

    def reference_attempt():
        run_reference(Simulation(loaded, anatomy=anatomy, image_size_px=512))

    results["reference_attempt_headless"] = _timed(reference_attempt, max(1, repeats // 2))
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
