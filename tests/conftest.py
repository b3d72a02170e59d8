"""Shared fixtures for the headless test suite.

Every test runs with its own cache and data folders (never the user's), and the slow things (an
anatomy volume, a CLI run that builds the scenario's phantom) are built once per session.
"""

from __future__ import annotations

import os

import pytest

from spine_helpers import FLUORO_L4L5, FLUORO_L5S1


@pytest.fixture(scope="session", autouse=True)
def isolated_user_folders(tmp_path_factory):
    """SPINESIM_CACHE_DIR and SPINESIM_DATA_DIR point to session temporary folders before any
    anatomy is built, so the tests never read or write the user's cache or attempt records."""
    mp = pytest.MonkeyPatch()
    cache = tmp_path_factory.mktemp("spinesim-cache")
    data = tmp_path_factory.mktemp("spinesim-data")
    mp.setenv("SPINESIM_CACHE_DIR", str(cache))
    mp.setenv("SPINESIM_DATA_DIR", str(data))
    yield {"cache": cache, "data": data}
    mp.undo()


def _small_anatomy(scenario_name: str):
    from simulator.anatomy.anatomy import build_anatomy
    from simulator.scenario.loader import load_scenario

    patient = load_scenario(scenario_name).scenario.patient.parameters()
    # region L3..S1 at 1.5 mm: every interspace the tests aim at (L3-L4 .. L5-S1), a few seconds to
    # build; the needle reads the exact phantom, so only the images are coarser than the app's
    return build_anatomy(patient, voxel_mm=1.5, levels=("L3", "S1"))


@pytest.fixture(scope="session")
def small_anatomy(isolated_user_folders):
    """The L4-L5 scenarios' patient (seed 1), region L3-S1 at 1.5 mm."""
    return _small_anatomy(FLUORO_L4L5)


@pytest.fixture(scope="session")
def small_anatomy_l5s1(isolated_user_folders):
    """The L5-S1 scenarios' patient (seed 2), region L3-S1 at 1.5 mm."""
    return _small_anatomy(FLUORO_L5S1)


@pytest.fixture(scope="session")
def coarse_anatomy(isolated_user_folders):
    """``coarse_anatomy(seed, levels=("L3", "S1"))``: a seeded patient's anatomy with a coarse (4 mm) volume, for tests
    that only need exact tissue queries, landmarks and the skin (built once per seed)."""
    from simulator.anatomy.anatomy import build_anatomy
    from simulator.anatomy.patient import PatientParameters

    built = {}

    def get(seed: int, levels: tuple[str, str] = ("L3", "S1"), **patient):
        key = (seed, levels, tuple(sorted(patient.items())))
        if key not in built:
            built[key] = build_anatomy(PatientParameters(seed=seed, **patient), voxel_mm=4.0, levels=levels)
        return built[key]

    return get


@pytest.fixture
def make_sim(request):
    """``make_sim(scenario_name)``: a fresh simulation on the matching small anatomy, 96 px images."""
    from simulator.scenario.loader import load_scenario
    from simulator.simulation.simulation import Simulation

    def make(name: str = FLUORO_L4L5, image_size_px: int = 96, **kwargs):
        loaded = load_scenario(name)
        anatomy = request.getfixturevalue("small_anatomy_l5s1" if "l5s1" in name else "small_anatomy")
        assert loaded.scenario.patient.seed == anatomy.patient.seed
        return Simulation(loaded, anatomy=anatomy, image_size_px=image_size_px, **kwargs)

    return make


@pytest.fixture(scope="session")
def cli_env(isolated_user_folders):
    """Environment for CLI subprocesses: the session's cache and data folders."""
    env = dict(os.environ)
    env["SPINESIM_CACHE_DIR"] = str(isolated_user_folders["cache"])
    env["SPINESIM_DATA_DIR"] = str(isolated_user_folders["data"])
    return env
