"""The 3D scene of an attempt (pyvista, no Qt): patient on the table, C-arm, needle.

:class:`SpineScene` builds its actors in any pyvista ``Plotter`` (an off-screen one for images and
tests, a ``QtInteractor`` in the app) and updates them from the simulation's state. It never sends
commands; the app does.
"""

from __future__ import annotations

import weakref

import numpy as np
import pyvista as pv

from simulator.anatomy.meshes import Mesh
from simulator.imaging.carm import projection_for
from simulator.imaging.views import room_up

#: Colours of the structure groups (colour-blind safe: danger structures differ in lightness and
#: hue from the target, never only red/green).
GROUP_COLOURS = {
    "bone": (236, 228, 208),
    "disc": (150, 200, 190),
    "ligament": (240, 205, 60),
    "neural": (110, 160, 235),
    "joint": (120, 200, 255),
    # danger structures shown at the debrief: vessels magenta, organs (pleura and lung, kidney,
    # rectum, airway) lilac and translucent
    "vessel": (205, 60, 165),
    "organ": (175, 150, 225),
}
#: What the debrief's colours mean (shown in the 3D view).
DEBRIEF_LEGEND = ("Target zone: green cloud.  Danger: dura, cord and roots blue; vessels magenta; "
                  "organs lilac; disc teal.  Needle path: vermilion.")
#: The target zone at the debrief (bluish green: told from every danger colour by hue and lightness,
#: also with a red-green colour deficiency; see simulator/scene/colour_vision.py).
TARGET_COLOUR = (40, 220, 120)
#: The layers of the 3D view a trainee may show or hide under fluoroscopy (landmark mode shows
#: them all: the scene is what the trainee would see at the bedside).
LAYERS = ("skin", "table", "carm", "markers")
SKIN_COLOUR = (222, 178, 150)
NEEDLE_COLOUR = (60, 60, 70)
#: The needle tip's path at the debrief (vermilion: apart from the target and every danger colour).
PATH_COLOUR = (213, 94, 0)
#: Bone's, the joints' and the ligaments' opacity at the debrief (the target zone shows through them).
DEBRIEF_BONE_OPACITY = 0.5


def _polydata(mesh: Mesh) -> pv.PolyData:
    faces = np.hstack([np.full((len(mesh.faces), 1), 3, np.int64), mesh.faces.astype(np.int64)]).ravel()
    return pv.PolyData(mesh.vertices_mm.astype(np.float64), faces)


def target_zone_surface(sim, step_mm: float = 0.8) -> pv.PolyData:
    """The procedure's target zone round its target point as a closed surface (what
    :meth:`SpineScene.show_target_zone` draws; no rendering, so it may be computed off the GUI
    thread).

    Parameters
    ----------
    sim : Simulation
    step_mm : float
        Sampling step of the zone's exact tissue queries.
    """
    anatomy, scenario = sim.anatomy, sim.scenario
    centre = sim.procedure.target_point(anatomy, scenario)
    half_mm = np.array([12.0, 14.0, 16.0])
    axes = [np.arange(centre[i] - half_mm[i], centre[i] + half_mm[i], step_mm) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    points = grid.reshape(-1, 3)
    labels = anatomy.tissue_at(points)
    inside = sim.procedure.in_target_zone(anatomy, scenario, labels, points).reshape(grid.shape[:3])
    image = pv.ImageData(dimensions=inside.shape, spacing=(step_mm,) * 3, origin=tuple(a[0] for a in axes))
    image.point_data["v"] = inside.astype(np.float32).ravel(order="F")
    return image.contour([0.5], scalars="v")


#: Each anatomy's display polydata (freed with the anatomy).
_SHADED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


#: The share of the skin's marching-cubes triangles the 3D view keeps: the body's surface is smooth,
#: and at full count (about 330 000 for the default case) the skin alone took 80-220 ms a frame in
#: software OpenGL; a quarter of them draws in a third of the time.
SKIN_KEEP_FRACTION = 0.25
#: The same for a bone, disc or joint of more than :data:`DECIMATE_OVER_TRIANGLES`: marching cubes at
#: 1 mm gives an ilium 190 000 triangles, and the default case's spine 900 000, which made a frame
#: with the spine shown through the skin take about 160 ms in software OpenGL (a freeze at every
#: needle step); a quarter of them keeps every process and foramen and draws in about 100 ms.
STRUCTURE_KEEP_FRACTION = 0.25
DECIMATE_OVER_TRIANGLES = 20_000


def _display_mesh(anatomy, name: str, mesh: Mesh) -> pv.PolyData:
    """One structure's surface for drawing, with point normals: decimated when it is large, and
    then cached on disk beside the anatomy's own cache (decimating the default case takes 5-8 s)."""
    from simulator.paths import cache_dir

    keep = SKIN_KEEP_FRACTION if name == "skin" else STRUCTURE_KEEP_FRACTION
    if name != "skin" and len(mesh.faces) <= DECIMATE_OVER_TRIANGLES:
        return _polydata(mesh).compute_normals(auto_orient_normals=False, split_vertices=False)
    path = cache_dir() / "scene" / f"{anatomy.info.cache_key}_{name}_{keep:g}.vtp"
    if path.exists():
        try:
            return pv.read(path)
        except Exception:  # noqa: BLE001 - an unreadable cache entry is made again
            pass
    shown = _polydata(mesh).decimate(1.0 - keep).compute_normals(auto_orient_normals=False, split_vertices=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.vtp")
        shown.save(tmp)
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache: decimated again next time
    return shown


def shaded_polydata(anatomy) -> dict[str, pv.PolyData]:
    """The anatomy's meshes as polydata with point normals (the large ones decimated), made once
    per anatomy: they are the slow part of opening a scene, so the app makes them while the patient
    loads, off the GUI thread."""
    if anatomy not in _SHADED:
        _SHADED[anatomy] = {name: _display_mesh(anatomy, name, mesh) for name, mesh in anatomy.meshes().items()}
    return _SHADED[anatomy]


def path_tube(points, radius_mm: float = 0.7) -> "pv.PolyData | None":
    """A tube along the needle tip's path, or None when the path has fewer than two distinct points
    (a needle turned at the skin repeats its point; pyvista refuses an empty tube)."""
    path = np.asarray(points, float).reshape(-1, 3)
    keep = np.ones(len(path), bool)
    keep[1:] = np.linalg.norm(np.diff(path, axis=0), axis=1) > 1e-6
    path = path[keep]
    return pv.lines_from_points(path).tube(radius=radius_mm) if len(path) >= 2 else None


class SpineScene:
    """Actors for one simulation in one plotter.

    Parameters
    ----------
    plotter : pyvista.Plotter
    sim : Simulation
    """

    def __init__(self, plotter: pv.Plotter, sim):
        self.plotter = plotter
        self.sim = sim
        self.meshes = sim.anatomy.meshes()
        self._structure_actors: dict[str, object] = {}
        self._needle_actor = None
        self._path_actor = None
        self._entry_actor = None
        self._carm_actors: list = []
        self._marker_actors: list = []
        self._target_actor = None
        self.skin_polydata: pv.PolyData | None = None
        self.hidden_layers: set[str] = set()
        self._build()

    # -------------------------------------------------------------------- building
    def _build(self) -> None:
        pl = self.plotter
        pl.set_background((32, 36, 44), top=(78, 88, 104))
        # one light at the eye, not pyvista's five-light kit: in software OpenGL every light is paid
        # per pixel, and the kit made a C-arm move's frame take over 100 ms (a felt freeze); the
        # headlight also darkens the body's outline, which reads well from the operator's side
        pl.renderer.remove_all_lights()
        pl.add_light(pv.Light(light_type="headlight"))
        self._table_actor = pl.add_mesh(self._table(), color=(70, 76, 86), pickable=False, render=False,
                                        name="table")
        shaded = shaded_polydata(self.sim.anatomy)
        for name, mesh in self.meshes.items():
            if name == "skin":
                continue
            colour = GROUP_COLOURS.get(mesh.group, (200, 200, 200))
            actor = pl.add_mesh(shaded[name], color=colour, pickable=False, render=False,
                                name=f"structure:{name}", specular=0.2 if mesh.group == "bone" else 0.05)
            actor.prop.interpolation = "phong"  # the precomputed normals: smooth, as smooth_shading would
            actor.SetVisibility(False)
            self._structure_actors[name] = actor
        if "skin" in self.meshes:
            self.skin_polydata = shaded["skin"]
            self._skin_actor = pl.add_mesh(self.skin_polydata, color=SKIN_COLOUR, pickable=True, name="skin",
                                           specular=0.1, render=False)
            self._skin_actor.prop.interpolation = "phong"
        self.update_needle()
        if self.sim.guidance == "fluoroscopy":
            self.update_carm()
        self.reset_camera()

    def _room(self) -> tuple[np.ndarray, np.ndarray]:
        """The room's up and the operator's side, in the patient's frame, for the scenario's
        patient position (prone: up is the back; supine: the front; decubitus: a flank)."""
        up = room_up(self.sim.scenario.patient_position)
        # the operator stands at the patient's left, or behind a patient lying on a side
        side = np.array([-1.0, 0.0, 0.0]) if abs(up[0]) < 0.5 else np.array([0.0, -1.0, 0.0])
        return up, side

    def _table(self) -> pv.PolyData:
        """The table top under the patient: under the front when prone, under the back when supine,
        under a flank in lateral decubitus."""
        grid = self.sim.anatomy.grid
        lo, hi = np.asarray(grid.lo_mm, float), np.asarray(grid.hi_mm, float)
        up, _ = self._room()
        axis = int(np.argmax(np.abs(up)))
        bounds = [[lo[0] - 120.0, hi[0] + 120.0], [lo[1] - 120.0, hi[1] + 120.0], [lo[2] - 700.0, hi[2] + 800.0]]
        under = lo[axis] if up[axis] > 0 else hi[axis]  # the body's side facing the floor
        thickness = 40.0 * (-1.0 if up[axis] > 0 else 1.0)
        bounds[axis] = sorted([under + 5.0 * np.sign(up[axis]), under + thickness])
        return pv.Box(bounds=[v for pair in bounds for v in pair])

    def _camera(self, distance_mm: float, caudal_mm: float) -> None:
        centre = np.asarray(self.sim.carm_pose.isocentre_mm, float)
        up, side = self._room()
        pos = centre + distance_mm * (up + 0.95 * side) - caudal_mm * np.array([0.0, 0.0, 1.0])
        self.plotter.camera_position = [tuple(pos), tuple(centre), tuple(-side if abs(up[2]) > 0.9 else up)]
        self.plotter.camera.view_angle = 30.0

    def reset_camera(self) -> None:
        """The operator's view: standing beside the table, looking at the side the needle enters."""
        self._camera(950.0, 380.0)

    def close_up_camera(self) -> None:
        """A close view of the spine at the target, from the operator's side (debrief)."""
        self._camera(230.0, 60.0)

    # -------------------------------------------------------------------- updates
    def set_layer_visible(self, layer: str, visible: bool) -> None:
        """Show or hide one of :data:`LAYERS` (a view choice: nothing of the anatomy is revealed)."""
        if layer not in LAYERS:
            raise ValueError(f"unknown layer {layer!r}; layers are {', '.join(LAYERS)}")
        (self.hidden_layers.discard if visible else self.hidden_layers.add)(layer)
        actors = {"skin": [getattr(self, "_skin_actor", None)], "table": [self._table_actor],
                  "carm": self._carm_actors, "markers": self._marker_actors}[layer]
        for actor in actors:
            if actor is not None:
                actor.SetVisibility(visible)
        if layer == "markers":
            for name, actor in self.plotter.actors.items():
                if name.startswith("palpation_label:") or name == "tuffier_line":
                    actor.SetVisibility(visible)

    def set_spine_visible(self, visible: bool) -> None:
        """See-through skin with the spine inside (or opaque skin)."""
        for name, actor in self._structure_actors.items():
            group = self.meshes[name].group
            actor.SetVisibility(visible and group in ("bone", "disc", "neural", "ligament"))
        if hasattr(self, "_skin_actor"):
            self._skin_actor.GetProperty().SetOpacity(0.22 if visible else 1.0)

    def update_needle(self) -> None:
        """Redraw the needle (shaft, hub) from the simulation's needle."""
        pl = self.plotter
        needle = self.sim.needle
        if not needle.inserted:
            for attr in ("_needle_actor", "_entry_actor"):
                actor = getattr(self, attr)
                if actor is not None:
                    pl.remove_actor(actor, render=False)
                    setattr(self, attr, None)
            return
        pts = needle.shaft_polyline()
        tube = pv.lines_from_points(pts).tube(radius=max(needle.spec.radius_mm, 0.6), n_sides=12)
        hub = pv.Cylinder(center=needle.hub_mm - needle.direction * 10.0, direction=needle.direction,
                          radius=3.2, height=20.0)
        combined = tube.merge(hub)
        self._needle_actor = pl.add_mesh(combined, color=NEEDLE_COLOUR, specular=0.8, pickable=False, render=False,
                                         name="needle", smooth_shading=True)
        self._entry_actor = pl.add_mesh(pv.Sphere(radius=2.0, center=needle.entry_mm), color=(255, 120, 40),
                                        pickable=False, render=False, name="entry")

    def update_carm(self) -> None:
        """Draw the C-arm at the simulation's pose: tube under the table, detector over the back."""
        for actor in self._carm_actors:
            self.plotter.remove_actor(actor, render=False)
        self._carm_actors = []
        if self.sim.guidance != "fluoroscopy":
            return
        proj = projection_for(self.sim.carm_pose, 16)
        d = proj.detector_normal
        source = proj.source_mm
        detector = source + d * 1020.0
        up = -proj.row_step_mm / np.linalg.norm(proj.row_step_mm)
        right = np.cross(-d, up)
        # the C: a semicircle from the tube to the detector, on the side away from the operator
        radius = 0.5 * 1020.0
        centre = 0.5 * (source + detector)
        side = right
        angles = np.linspace(-np.pi / 2, np.pi / 2, 40)
        arc = centre + np.outer(np.sin(angles), d * radius) + np.outer(np.cos(angles), side * (radius * 0.95))
        add = self.plotter.add_mesh
        self._carm_actors.append(add(pv.Spline(arc, 80).tube(radius=28.0), color=(205, 210, 218),
                                     pickable=False, render=False, name="carm_arc", specular=0.4))
        self._carm_actors.append(add(pv.Cylinder(center=detector - d * 40.0, direction=d, radius=160.0,
                                                 height=80.0), color=(225, 228, 235), pickable=False, render=False,
                                     name="carm_detector"))
        self._carm_actors.append(add(pv.Cylinder(center=source + d * 60.0, direction=d, radius=90.0,
                                                 height=180.0), color=(190, 196, 206), pickable=False, render=False,
                                     name="carm_source"))
        beam = pv.Line(source, detector)
        self._carm_actors.append(add(beam, color=(255, 240, 120), line_width=1, opacity=0.35, pickable=False,
                                     render=False, name="carm_beam"))
        if "carm" in self.hidden_layers:
            for actor in self._carm_actors:
                actor.SetVisibility(False)

    def add_palpation_marker(self, point_mm, finding: str, depth_mm: float | None = None) -> None:
        """A marker on the skin where the trainee pressed, labelled with the felt depth of bone."""
        colour = {"spinous process": (80, 170, 255), "vertebra prominens": (80, 170, 255),
                  "iliac crest": (255, 170, 40), "posterior superior iliac spine": (255, 170, 40),
                  "sacrum": (200, 120, 255), "sacral cornu": (200, 120, 255)}.get(finding, (200, 200, 200))
        index = len(self._marker_actors)
        point = np.asarray(point_mm, float)
        actor = self.plotter.add_mesh(pv.Sphere(radius=3.0, center=point), color=colour,
                                      pickable=False, render=False, name=f"palpation:{index}")
        self._marker_actors.append(actor)
        actor.SetVisibility("markers" not in self.hidden_layers)
        label = "no bone" if depth_mm is None else f"{depth_mm:.0f} mm"
        self.plotter.add_point_labels(point[None] - np.array([0.0, 4.0, 0.0]), [label], font_size=12,
                                      show_points=False, shape_opacity=0.5, always_visible=True,
                                      name=f"palpation_label:{index}", pickable=False, reset_camera=False,
                                      render=False)

    def show_tuffier_line(self, left_mm, right_mm) -> None:
        """The intercristal (Tuffier's) line across the back between two palpated crest tops."""
        left = np.asarray(left_mm, float)
        right = np.asarray(right_mm, float)
        height = 0.5 * (left[2] + right[2])
        xs = np.linspace(left[0], right[0], 60)
        pts = np.stack([xs, np.zeros_like(xs), np.full_like(xs, height)], axis=1)
        # lay the line on the skin of the back
        for p in pts:
            hit = self.sim.anatomy.skin_entry(p - np.array([0.0, 300.0, 0.0]), [0.0, 1.0, 0.0])
            if hit is not None:
                p[1] = hit[1] - 1.0
        self.plotter.add_mesh(pv.lines_from_points(pts).tube(radius=1.2), color=(255, 170, 40),
                              pickable=False, render=False, name="tuffier_line")

    def reveal(self, target_interspace: str | None = None, zone_later: bool = False) -> None:
        """The debrief view: spine revealed, needle path drawn, the target zone shown (unless
        ``zone_later``: the caller computes :func:`target_zone_surface` off the GUI thread and
        passes it to :meth:`show_target_zone`)."""
        self.set_spine_visible(True)
        # the target zone often lies in bone's shadow (a joint between two processes, a medial
        # branch on the transverse process): bone goes translucent so the zone shows through
        for name, actor in self._structure_actors.items():
            group = self.meshes[name].group
            if group in ("bone", "joint", "ligament"):
                actor.GetProperty().SetOpacity(DEBRIEF_BONE_OPACITY)
            if group in ("vessel", "organ", "joint"):
                actor.SetVisibility(True)
                if group == "organ":
                    actor.GetProperty().SetOpacity(0.35)
        self.plotter.add_text(DEBRIEF_LEGEND, position="lower_left", font_size=9, color=(235, 235, 235),
                              name="debrief_legend", render=False)
        tube = path_tube(self.sim.tip_path)
        if tube is not None:
            self._path_actor = self.plotter.add_mesh(tube, color=PATH_COLOUR, pickable=False,
                                                     render=False, name="needle_path")
        if target_interspace and not zone_later:
            self.show_target_zone()

    def show_target_zone(self, surface: "pv.PolyData | None" = None) -> None:
        """The procedure's target zone round its target point as a translucent cloud
        (``surface``: :func:`target_zone_surface` already computed)."""
        if surface is None:
            surface = target_zone_surface(self.sim)
        if surface.n_points:
            self._target_actor = self.plotter.add_mesh(surface, color=TARGET_COLOUR, opacity=0.7, pickable=False,
                                                       render=False, name="target_zone")
