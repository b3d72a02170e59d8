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
from simulator.imaging.carm import SOURCE_TO_DETECTOR_MM, projection_for
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
#: The organs' (pleura and lung, kidney, rectum, airway) at the debrief.
DEBRIEF_ORGAN_OPACITY = 0.35
#: The skin's opacity with the spine shown through it: its near side only is drawn (see
#: set_spine_visible), as dense as the near and far sides at 0.22 were over the background.
SEE_THROUGH_SKIN_OPACITY = 0.32
#: At the debrief, what lies within this of the target or the needle's path is shown (see
#: :meth:`SpineScene.focus_on`): the target's level and its neighbours, and any level the needle met.
REVEAL_MARGIN_MM = 20.0


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


def faces_outward(surface: pv.PolyData) -> bool:
    """Whether a body's surface has its triangles wound facing outwards (counter-clockwise seen
    from outside, OpenGL's front), judged over all of them from the surface's centre."""
    normals = surface.compute_normals(cell_normals=True, point_normals=False, auto_orient_normals=False,
                                      consistent_normals=False, split_vertices=False)
    centres = np.asarray(surface.cell_centers().points)
    outward = np.einsum("ij,ij->i", np.asarray(normals.cell_data["Normals"]), centres - centres.mean(axis=0))
    return bool(outward.sum() > 0.0)


def debrief_focus_points(sim) -> np.ndarray:
    """Where the debrief looks (for :meth:`SpineScene.focus_on`): the procedure's target point and
    every place the needle's tip went, in patient millimetres, shape (n, 3)."""
    target = np.asarray(sim.procedure.target_point(sim.anatomy, sim.scenario), float).reshape(1, 3)
    path = np.asarray(sim.tip_path, float).reshape(-1, 3)
    return np.vstack([target, path])


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
        self._needle_mesh: pv.PolyData | None = None
        self._path_actor = None
        self._entry_actor = None
        self._carm_actors: list = []
        self._marker_actors: list = []
        self._target_actor = None
        self._revealed: set[str] = set()  # the structures the debrief shows (see reveal)
        self._outward: dict[str, bool] = {}  # whose triangles face outwards (faces_outward), by name
        self.skin_polydata: pv.PolyData | None = None
        self._skin_faces_outward = True
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
            self._skin_faces_outward = faces_outward(self.skin_polydata)
        self.update_needle()
        if self.sim.guidance == "fluoroscopy":
            self.update_carm()
        self.reset_camera()

    def warm_up(self) -> None:
        """Draw the spine through the skin, then as the debrief shows it, into the back buffer
        (never shown), and put the scene back as it was.

        The first frame that shows the structures uploads their half a million triangles to OpenGL
        and builds their shaders (see-through ones too): done when the spine is first shown (V) or
        revealed (the debrief), it held the window 100-250 ms in software OpenGL. Call it while the
        window opens, after its first frame.
        """
        ren_win, renderer = self.plotter.ren_win, self.plotter.renderer
        actors = self._structure_actors
        visible = {name: bool(actor.GetVisibility()) for name, actor in actors.items()}
        opacity = {name: actor.GetProperty().GetOpacity() for name, actor in actors.items()}
        spine_shown = any(visible.values())
        use_oit = renderer.GetUseOIT()
        swap = ren_win.GetSwapBuffers()
        ren_win.SetSwapBuffers(False)  # drawn, not shown (a shown frame would flash the spine)
        try:
            self.set_spine_visible(True)
            for actor in actors.values():
                actor.SetVisibility(True)
            ren_win.Render()  # the spine through the skin (V)
            self._debrief_opacities()
            renderer.SetUseOIT(True)
            ren_win.Render()  # and see-through, as the debrief blends it
        finally:
            ren_win.SetSwapBuffers(swap)
            self.set_spine_visible(spine_shown)
            for name, actor in actors.items():
                actor.SetVisibility(visible[name])
                actor.GetProperty().SetOpacity(opacity[name])
            renderer.SetUseOIT(use_oit)

    def _shown_surface(self, name: str) -> pv.PolyData:
        """The surface a structure is drawn with (decimated when large)."""
        return self._structure_actors[name].GetMapper().GetInput()

    def _debrief_opacities(self) -> None:
        # the target zone often lies in bone's shadow (a joint between two processes, a medial
        # branch on the transverse process): bone goes translucent so the zone shows through
        for name, actor in self._structure_actors.items():
            group = self.meshes[name].group
            if group in ("bone", "joint", "ligament"):
                actor.GetProperty().SetOpacity(DEBRIEF_BONE_OPACITY)
            elif group == "organ":
                # a see-through organ (a lung fills the view) drawn on its near side only: a tenth
                # less of a thoracic debrief's frame, and one veil, not two
                prop = actor.GetProperty()
                prop.SetOpacity(DEBRIEF_ORGAN_OPACITY)
                if name not in self._outward:
                    self._outward[name] = faces_outward(self._shown_surface(name))
                prop.SetBackfaceCulling(self._outward[name])
                prop.SetFrontfaceCulling(not self._outward[name])

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
            self._skin_actor.GetProperty().SetOpacity(SEE_THROUGH_SKIN_OPACITY if visible else 1.0)
            # one see-through layer over opaque bone needs no order-independent blending, nor the
            # skin's far side: without them the frame took 52 ms, not 70, in software OpenGL
            # (see-through bone at the debrief turns the blending back on: see reveal). Which side
            # OpenGL calls the back follows the triangles' winding, which marching cubes may turn in.
            prop = self._skin_actor.GetProperty()
            prop.SetBackfaceCulling(visible and self._skin_faces_outward)
            prop.SetFrontfaceCulling(visible and not self._skin_faces_outward)
        self.plotter.renderer.SetUseOIT(not visible)

    def update_needle(self) -> None:
        """Redraw the needle (shaft, hub) from the simulation's needle.

        The needle's polydata is refilled in place and the entry marker moved, not new actors added
        at every step: adding and removing actors cost 6-15 ms of the GUI thread a key press."""
        pl = self.plotter
        needle = self.sim.needle
        if not needle.inserted:
            for attr in ("_needle_actor", "_entry_actor"):
                actor = getattr(self, attr)
                if actor is not None:
                    actor.SetVisibility(False)
            return
        pts = needle.shaft_polyline()
        tube = pv.lines_from_points(pts).tube(radius=max(needle.spec.radius_mm, 0.6), n_sides=12)
        hub = pv.Cylinder(center=needle.hub_mm - needle.direction * 10.0, direction=needle.direction,
                          radius=3.2, height=20.0)
        combined = tube.merge(hub).compute_normals(auto_orient_normals=False, split_vertices=False)
        if self._needle_actor is None:
            self._needle_mesh = combined
            self._needle_actor = pl.add_mesh(combined, color=NEEDLE_COLOUR, specular=0.8, pickable=False,
                                             render=False, name="needle")
            self._needle_actor.prop.interpolation = "phong"
            self._entry_actor = pl.add_mesh(pv.Sphere(radius=2.0), color=(255, 120, 40), pickable=False,
                                            render=False, name="entry")
        else:
            self._needle_mesh.copy_from(combined)
        self._entry_actor.SetPosition(*(float(v) for v in needle.entry_mm))
        self._needle_actor.SetVisibility(True)
        self._entry_actor.SetVisibility(True)

    def update_carm(self) -> None:
        """Draw the C-arm at the simulation's pose: tube under the table, detector over the back.

        The C-arm is built once in its own frame (the X-ray source at the origin, the beam along
        +z) and placed by its actors' matrix, so a C-arm move costs the GUI thread no geometry."""
        if self.sim.guidance != "fluoroscopy":
            return
        if not self._carm_actors:
            self._build_carm()
        proj = projection_for(self.sim.carm_pose, 16)
        d = np.asarray(proj.detector_normal, float)
        up = -np.asarray(proj.row_step_mm, float) / np.linalg.norm(proj.row_step_mm)
        right = np.cross(up, d)
        world_from_carm = np.eye(4)
        world_from_carm[:3, :3] = np.column_stack([right, up, d])
        world_from_carm[:3, 3] = proj.source_mm
        for actor in self._carm_actors:
            actor.user_matrix = world_from_carm

    def _build_carm(self) -> None:
        """The C-arm's actors in its own frame (millimetres; source at the origin, beam along +z)."""
        sid_mm = SOURCE_TO_DETECTOR_MM
        # the C: a semicircle from the tube to the detector, on the side away from the operator (+x)
        radius = 0.5 * sid_mm
        angles = np.linspace(-np.pi / 2, np.pi / 2, 40)
        arc = np.column_stack([0.95 * radius * np.cos(angles), np.zeros_like(angles),
                               radius + radius * np.sin(angles)])
        z = (0.0, 0.0, 1.0)
        add = self.plotter.add_mesh
        self._carm_actors = [
            add(pv.Spline(arc, 80).tube(radius=28.0), color=(205, 210, 218), pickable=False, render=False,
                name="carm_arc", specular=0.4),
            add(pv.Cylinder(center=(0.0, 0.0, sid_mm - 40.0), direction=z, radius=160.0, height=80.0),
                color=(225, 228, 235), pickable=False, render=False, name="carm_detector"),
            add(pv.Cylinder(center=(0.0, 0.0, 60.0), direction=z, radius=90.0, height=180.0),
                color=(190, 196, 206), pickable=False, render=False, name="carm_source"),
            add(pv.Line((0.0, 0.0, 0.0), (0.0, 0.0, sid_mm)), color=(255, 240, 120), line_width=1, opacity=0.35,
                pickable=False, render=False, name="carm_beam"),
        ]
        for actor in self._carm_actors:
            actor.SetVisibility("carm" not in self.hidden_layers)

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
        self.plotter.renderer.SetUseOIT(True)  # see-through bone over see-through bone
        self._debrief_opacities()
        for name, actor in self._structure_actors.items():
            if self.meshes[name].group in ("vessel", "organ", "joint"):
                actor.SetVisibility(True)
        self._revealed = {name for name, actor in self._structure_actors.items() if actor.GetVisibility()}
        self.plotter.add_text(DEBRIEF_LEGEND, position="lower_left", font_size=9, color=(235, 235, 235),
                              name="debrief_legend", render=False)
        tube = path_tube(self.sim.tip_path)
        if tube is not None:
            self._path_actor = self.plotter.add_mesh(tube, color=PATH_COLOUR, pickable=False,
                                                     render=False, name="needle_path")
        if target_interspace and not zone_later:
            self.show_target_zone()

    def focus_on(self, points_mm=None, margin_mm: float = REVEAL_MARGIN_MM) -> list[str]:
        """Keep only the revealed structures within ``margin_mm`` of any of ``points_mm`` (the
        target and the needle's path: the levels the debrief is about); ``None`` shows them all
        again. Returns the names of the structures shown.

        Every structure translucent took 100-110 ms a frame in software OpenGL, a lag felt at
        each turn of the debrief's view; the levels round the target and the needle take about half.
        """
        revealed = self._revealed
        if points_mm is None:
            shown = sorted(revealed)
        else:
            points = np.asarray(points_mm, float).reshape(-1, 3)
            shown = []
            for name in sorted(revealed):
                box = np.asarray(self._structure_actors[name].GetBounds(), float).reshape(3, 2)
                outside_mm = np.maximum(np.maximum(box[:, 0] - points, 0.0), points - box[:, 1])
                if points.size and float(np.linalg.norm(outside_mm, axis=1).min()) <= margin_mm:
                    shown.append(name)
        for name in revealed:
            self._structure_actors[name].SetVisibility(name in shown)
        return shown

    def show_target_zone(self, surface: "pv.PolyData | None" = None) -> None:
        """The procedure's target zone round its target point as a translucent cloud
        (``surface``: :func:`target_zone_surface` already computed)."""
        if surface is None:
            surface = target_zone_surface(self.sim)
        if surface.n_points:
            self._target_actor = self.plotter.add_mesh(surface, color=TARGET_COLOUR, opacity=0.7, pickable=False,
                                                       render=False, name="target_zone")
