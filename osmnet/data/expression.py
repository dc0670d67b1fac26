"""The expression basis: ARKit blendshape weights -> displacements of the canonical face mesh.

Fitted from tracked real video: within each clip, landmarks (canonical space, cm) minus the
clip's mean are regressed on the 52 weights minus their clip mean (ridge least squares), which
removes each person's identity shape and leaves what the expressions do. The neutral face is
MediaPipe's canonical mesh, so `apply` gives a generic head that makes any take's expressions
visible (previews, evaluation of lip motion in landmark space, the Blender preview head).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blender_addon.core.files import atomic_path
from blender_addon.core.take import ARKIT_NAMES, HEAD_CHANNELS
from blender_addon.core.errors import UserInputError

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "default" / "expression_basis.npz"  # osmnet/default/
N_VERTS = 468
RIDGE = 0.05  # relative to the mean diagonal of X^T X; best held-out R^2 on the shared clips (1e-3..1)
HELD_OUT_EVERY = 5  # every 5th clip (sorted by name) is held out for R^2


class ExpressionError(UserInputError):
    """A basis file is missing or malformed, or there is too little data to fit one."""


@dataclass
class ExpressionBasis:
    neutral: np.ndarray  # (468, 3) float32, canonical face space (cm)
    deltas: np.ndarray  # (52, 468, 3) float32, displacement at weight 1
    meta: dict = field(default_factory=dict)

    def apply(self, weights: np.ndarray) -> np.ndarray:
        """(T, 52) or (52,) weights -> (T, 468, 3) or (468, 3) vertices."""
        w = np.asarray(weights, np.float32)
        flat = self.deltas.reshape(len(ARKIT_NAMES), -1)
        out = self.neutral.reshape(-1) + w @ flat
        return out.reshape(*w.shape[:-1], N_VERTS, 3)

    def save(self, path) -> Path:
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, neutral=self.neutral.astype(np.float32), deltas=self.deltas.astype(np.float32),
                     names=np.array(ARKIT_NAMES), **{f"meta_{k}": np.asarray(v) for k, v in self.meta.items()})
        return path

    @classmethod
    def load(cls, path=None) -> "ExpressionBasis":
        """A saved basis; None -> the copy shipped with osmnet (fitted on the shared real clips)."""
        path = Path(path) if path is not None else DEFAULT_PATH
        if not path.is_file():
            raise ExpressionError(f"expression basis {path} does not exist; build one with `osmnet prepare`")
        try:
            z = np.load(path)
            neutral, deltas = z["neutral"].astype(np.float32), z["deltas"].astype(np.float32)
            names = [str(n) for n in z["names"]]
            meta = {k[5:]: z[k].tolist() for k in z.files if k.startswith("meta_")}
        except (OSError, KeyError, ValueError) as e:
            raise ExpressionError(f"{path} is not an expression basis file ({e})") from None
        if names != list(ARKIT_NAMES) or neutral.shape != (N_VERTS, 3) or deltas.shape != (len(ARKIT_NAMES), N_VERTS, 3):
            raise ExpressionError(f"{path} has unexpected shapes or channel names; rebuild it with `osmnet prepare`")
        return cls(neutral, deltas, meta)


class _Normal:
    """Accumulates X^T X, X^T Y of clip-centred data so memory stays bounded."""

    def __init__(self, k: int, d: int):
        self.xtx, self.xty, self.n = np.zeros((k, k)), np.zeros((k, d)), 0

    def add(self, X: np.ndarray, Y: np.ndarray):
        self.xtx += X.T @ X
        self.xty += X.T @ Y
        self.n += len(X)

    def solve(self, ridge: float = RIDGE) -> np.ndarray:
        lam = ridge * max(float(np.trace(self.xtx)) / len(self.xtx), 1e-9)
        return np.linalg.solve(self.xtx + lam * np.eye(len(self.xtx)), self.xty)


def _clip_xy(path: Path):
    z = np.load(path)
    w = z["channels"][:, len(HEAD_CHANNELS):].astype(np.float64)
    y = z["landmarks"][:, :N_VERTS].reshape(len(w), -1).astype(np.float64)
    return w - w.mean(0), y - y.mean(0)


def fit_basis(clip_paths, neutral: np.ndarray, ridge: float = RIDGE) -> ExpressionBasis:
    """Ridge fit of the deltas on clip-centred (weights, landmarks) from prepared clip .npz files."""
    normal = _Normal(len(ARKIT_NAMES), N_VERTS * 3)
    for p in clip_paths:
        normal.add(*_clip_xy(Path(p)))
    if normal.n < 2 * len(ARKIT_NAMES):
        raise ExpressionError(f"only {normal.n} frames to fit the expression basis; need at least {2 * len(ARKIT_NAMES)}")
    D = normal.solve(ridge)
    return ExpressionBasis(np.asarray(neutral, np.float32), D.reshape(len(ARKIT_NAMES), N_VERTS, 3).astype(np.float32),
                           {"frames": normal.n})


def r2_score(basis: ExpressionBasis, clip_paths) -> float:
    """Share of the within-clip landmark variance that the basis explains (pooled over clips)."""
    sse = sst = 0.0
    flat = basis.deltas.reshape(len(ARKIT_NAMES), -1).astype(np.float64)
    for p in clip_paths:
        X, Y = _clip_xy(Path(p))
        sse += float(((Y - X @ flat) ** 2).sum())
        sst += float((Y ** 2).sum())
    return 1.0 - sse / max(sst, 1e-12)


def fit_dataset_basis(dataset: Path, clips: list[dict], task_path=None) -> dict:
    """Fit on all clips but every HELD_OUT_EVERY-th, report R^2 on those, then refit on all and save."""
    from osmnet.data.face_mesh import load_canonical_mesh

    neutral = load_canonical_mesh(task_path).vertices
    names = sorted(c["name"] for c in clips)
    paths = {n: Path(dataset) / "clips" / f"{n}.npz" for n in names}
    held = [n for i, n in enumerate(names) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    fit_on = [n for n in names if n not in held]
    report = {"clips": len(names), "held_out": held}
    if held and fit_on:
        part = fit_basis([paths[n] for n in fit_on], neutral)
        report["r2_held_out"] = round(r2_score(part, [paths[n] for n in held]), 4)
        report["r2_fit"] = round(r2_score(part, [paths[n] for n in fit_on]), 4)
    full = fit_basis(list(paths.values()), neutral)
    full.meta.update({k: v for k, v in report.items() if k.startswith("r2")})
    full.save(Path(dataset) / "expression_basis.npz")
    return report
