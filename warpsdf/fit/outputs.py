"""What a fit leaves in its run folder (:class:`warpsdf.io.layout.RunFolder`):
the checkpoint (with the log and the GIF frames, so a resume loses nothing),
log.csv, the optimisation GIF, the showcase renders, metrics.json and a
dataset's normalisation (dataset_transform.json). Every
file is written atomically."""

from __future__ import annotations

import ast
import csv
import io
import zipfile
import zlib
from pathlib import Path

import numpy as np
from numpy.lib.npyio import NpzFile

from warpsdf.camera import read_dataset, showcase_cameras
from warpsdf.errors import InputFileError
from warpsdf.fit.fitter import Fitter
from warpsdf.fit.history import ADDED_COLUMNS, LOG_COLUMNS
from warpsdf.io.files import atomic_file, write_json
from warpsdf.io.images import to_uint8, write_gif, write_png
from warpsdf.io.layout import RunFolder
from warpsdf.io.plots import error_image, side_by_side, upscale
from warpsdf.march import polish_for
from warpsdf.metrics import trace_views, xyz_errors
from warpsdf.render import RenderMode, render, to_display, xyz_to_unit
from warpsdf.scene import SupervisionMode, TargetKind

# The optimisation GIF: frames upscaled to at least this height, at this rate.
ANIMATION_HEIGHT = 192
ANIMATION_FPS = 10


# What each key of a checkpoint.npz holds: the numpy dtype kinds it may have
# and its number of dimensions (None: any).
CHECKPOINT_KEYS: dict[str, tuple[str, int | None]] = {
    "params": ("fiu", None),
    "adam_m": ("fiu", None),
    "adam_v": ("fiu", None),
    "adam_t": ("iu", 0),
    "iteration": ("iu", 0),
    "rng_state": ("U", 0),
    "log_columns": ("U", 1),  # (checked before log, which it describes)
    "log": ("fiu", 2),
    "frames": ("u", 4),
    "focus_predicted": ("iu", 1),  # focused ray sampling's kept predictions (fit/focus.py)
}
_KIND_WORDS = {"fiu": "numbers", "iu": "integers", "U": "text", "u": "unsigned integers"}
# The keys a resume needs; log, log_columns, frames and focus_predicted are optional.
RESUME_KEYS = ("params", "adam_m", "adam_v", "adam_t", "iteration", "rng_state")
RESUME_OPTIONAL = ("log", "log_columns", "frames", "focus_predicted")

# What reading a damaged .npz (a zip of .npy files) can raise.
_DAMAGED = (
    OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError,
)  # fmt: skip


def read_checkpoint(
    path: str | Path, required: tuple[str, ...] = ("params",), optional: tuple[str, ...] = ()
) -> dict[str, np.ndarray]:
    """The ``required`` arrays of a checkpoint.npz and those of ``optional``
    that it holds, each checked against :data:`CHECKPOINT_KEYS` (and against
    each other); one line naming the file, and the key, if any is missing,
    unreadable or of the wrong kind."""
    path = Path(path)
    state: dict[str, np.ndarray] = {}
    if not zipfile.is_zipfile(path):  # empty, truncated, or another format
        raise InputFileError(f"{path}: unreadable checkpoint (not a complete .npz archive)")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, NpzFile):
            raise ValueError("not an .npz archive")
        with data:
            for key in (*required, *optional):
                if key in data.files:
                    try:
                        state[key] = data[key]
                    except _DAMAGED as err:
                        raise InputFileError(f"{path}: {key}: unreadable ({err})") from None
                elif key in required:
                    raise InputFileError(f"{path}: not a complete checkpoint (no {key!r} array)")
    except _DAMAGED as err:
        reason = str(err) or type(err).__name__
        raise InputFileError(f"{path}: unreadable checkpoint ({reason})") from None
    for key in (k for k in CHECKPOINT_KEYS if k in state):
        if problem := _checkpoint_problem(key, state[key], state):
            raise InputFileError(f"{path}: {key}: {problem}")
    return state


def _checkpoint_problem(key: str, array: np.ndarray, state: dict[str, np.ndarray]) -> str:
    kinds, ndim = CHECKPOINT_KEYS.get(key, ("", None))
    if kinds and array.dtype.kind not in kinds:
        return f"holds {array.dtype} values, expected {_KIND_WORDS[kinds]}"
    if ndim is not None and array.ndim != ndim:
        return f"has shape {array.shape}, expected {ndim} dimension(s)"
    if key in ("adam_m", "adam_v") and "params" in state and array.size != state["params"].size:
        return f"has {array.size} values but params has {state['params'].size}"
    if key in ("adam_t", "iteration") and int(array) < 0:
        return f"is {int(array)}, expected a count >= 0"
    if key == "rng_state":
        try:
            np.random.default_rng().bit_generator.state = ast.literal_eval(str(array))
        except (ValueError, TypeError, KeyError, SyntaxError, MemoryError, RecursionError):
            return "not a random-generator state"
    if key == "log_columns" and not _known_columns([str(c) for c in array]):
        return f"expected the columns {', '.join(LOG_COLUMNS)}"
    if key == "log":
        width = state["log_columns"].size if "log_columns" in state else len(LOG_COLUMNS)
        if array.shape[1] != width:
            return f"has {array.shape[1]} columns, expected {width}"
        columns = [str(c) for c in state.get("log_columns", LOG_COLUMNS)]
        if not np.isfinite(array[:, columns.index("iteration")]).all():
            return "has an iteration that is not a finite number"
    if key == "frames" and array.shape[-1] != 3:
        return f"has shape {array.shape}, expected (count, height, width, 3)"
    return ""


def _known_columns(columns: list[str]) -> bool:
    """Whether a checkpoint's log columns are LOG_COLUMNS, or those of an older
    release (without some of ADDED_COLUMNS), each once."""
    have, want = set(columns), set(LOG_COLUMNS)
    return len(have) == len(columns) and have <= want and want - have <= set(ADDED_COLUMNS)


class RunRecorder:
    """The run folder's in-memory side (log rows and GIF frames) and the
    writers of its files."""

    def __init__(self, folder: RunFolder, fitter: Fitter):
        self.folder = folder
        self.fitter = fitter
        self.rows: list[dict[str, float]] = []
        self.frames: list[np.ndarray] = []

    # checkpoint ---------------------------------------------------------------

    def save_checkpoint(self) -> None:
        state = self.fitter.state()
        state["log"] = np.array(
            [[row[c] for c in LOG_COLUMNS] for row in self.rows], np.float64
        ).reshape(-1, len(LOG_COLUMNS))
        state["log_columns"] = np.array(LOG_COLUMNS)
        if self.frames:
            state["frames"] = np.stack(self.frames)
        with atomic_file(self.folder.checkpoint) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **state)
        self.write_log()

    def load_checkpoint(self) -> None:
        state = read_checkpoint(self.folder.checkpoint, RESUME_KEYS, RESUME_OPTIONAL)
        self.fitter.load_state(state, str(self.folder.checkpoint))
        columns = [str(c) for c in state.get("log_columns", np.array(LOG_COLUMNS))]
        self.rows = [
            {c: 0.0 for c in ADDED_COLUMNS}  # absent from an older checkpoint's log
            | {
                c: (int(v) if c == "iteration" else float(v))
                for c, v in zip(columns, row, strict=True)
            }
            for row in state.get("log", np.zeros((0, len(columns))))
        ]
        self.frames = list(state["frames"]) if "frames" in state else []

    # outputs ------------------------------------------------------------------

    def write_log(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        for row in self.rows:
            writer.writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            )
        with atomic_file(self.folder.log) as tmp:
            tmp.write_text(buf.getvalue(), encoding="utf-8")

    def snapshot(self) -> None:
        """One GIF frame: prediction | target | error for training view 0."""
        f = self.fitter
        view = f.views[0]
        scene = f.scene
        xyz = SupervisionMode.XYZ in scene.supervision.mode and view.xyz is not None
        # masks alone for a silhouette fit: no Newton polish (march.polish_for)
        pred = trace_views(f.field, [view.camera], scene.march, polish_for(scene.supervision))[0]
        if xyz:
            both, err = xyz_errors(pred, view)
            p_img = np.where(pred["mask"][..., None], xyz_to_unit(pred["points"]), 0)
            t_img = np.where(view.mask[..., None], xyz_to_unit(view.xyz), 0)
            e_img = error_image(pred["mask"], view.mask, np.where(both, err, 0.0))
        else:
            p_img = np.repeat(pred["mask"][..., None], 3, -1).astype(np.float32)
            t_img = np.repeat(view.mask[..., None], 3, -1).astype(np.float32)
            e_img = error_image(pred["mask"], view.mask)
        self.frames.append(side_by_side([to_uint8(i) for i in (p_img, t_img, e_img)], gap=1))

    def write_animation(self) -> None:
        if self.frames:
            frames = [upscale(f, ANIMATION_HEIGHT) for f in self.frames]
            write_gif(self.folder.animation, frames, fps=ANIMATION_FPS)

    def write_finals(self) -> None:
        """Shaded showcase renders (:func:`warpsdf.camera.showcase_cameras`) at
        ``output.final_scale`` x the training resolution (:meth:`OutputConfig.
        render_scale`), and the XYZ render of the training view for XYZ fits."""
        f = self.fitter
        scene = f.scene
        first = f.cameras[0]
        cameras = showcase_cameras(first, scene.output.render_scale(first.width, first.height))
        views = [(name, cam, RenderMode.SHADED) for name, cam in cameras.items()]
        if SupervisionMode.XYZ in scene.supervision.mode:
            train = RunFolder.TRAIN_VIEW
            views.append((f"{train}_xyz", cameras[train], RenderMode.XYZ))
        for name, cam, mode in views:
            image = render(f.field, cam, mode, scene.march)
            write_png(self.folder.final(name), to_uint8(to_display(image, mode)))

    def write_dataset_transform(self) -> None:
        """A transforms.json target's normalisation (world = scale * dataset +
        offset), so meshes map back (``warpsdf export --frame dataset``)."""
        scene = self.fitter.scene
        if scene.target.kind is TargetKind.TRANSFORMS:
            transform = read_dataset(scene).transform
            write_json(self.folder.dataset_transform, transform.to_json())

    def write_metrics(self, metrics: dict) -> None:
        """Strict JSON: a non-finite value (no surface: infinite Chamfer) is null."""
        write_json(self.folder.metrics, metrics)
