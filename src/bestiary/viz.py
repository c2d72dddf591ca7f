"""Plotting helpers shared by the notebooks (matplotlib only).

    fig, ax = plt.subplots()
    grid = plot_decision_regions(ax, lambda pts: model_proba(pts), X_test, y_test, title="MLP")

`plot_decision_regions` evaluates a classifier on a dense grid that covers the data, colours the
plane by the predicted class (shaded by confidence when probabilities are given), draws the
boundaries between classes and scatters the points on top. It returns the grid it evaluated, so a
notebook can reuse the predictions (or a test can check them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

__all__ = ["DecisionGrid", "plot_decision_regions"]


class DecisionGrid(NamedTuple):
    """The grid `plot_decision_regions` evaluated: coordinates, predicted class, confidence."""

    xx: np.ndarray  # (resolution, resolution) x-coordinates
    yy: np.ndarray  # (resolution, resolution) y-coordinates
    classes: np.ndarray  # (resolution, resolution) int predicted class
    confidence: np.ndarray  # (resolution, resolution) in [1/C, 1] (all ones for hard labels)


def _classes_and_confidence(out: np.ndarray, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    out = np.asarray(out)
    if out.ndim == 2 and out.shape == (n_points, out.shape[1]) and out.shape[1] > 1:
        return out.argmax(1).astype(np.int64), out.max(1).astype(np.float64)  # probabilities
    out = out.reshape(-1)
    if out.shape[0] != n_points:
        raise ValueError(f"predict returned {out.shape[0]} values for {n_points} grid points")
    if not np.all(np.equal(np.mod(out, 1), 0)):
        raise ValueError("predict must return integer class labels (N,) or probabilities (N, C)")
    return out.astype(np.int64), np.ones(n_points)


def plot_decision_regions(
    ax,
    predict: Callable[[np.ndarray], np.ndarray],
    X: np.ndarray,
    y: np.ndarray,
    *,
    title: str | None = None,
    resolution: int = 200,
    margin: float = 0.3,
    cmap: str = "coolwarm",
    n_classes: int | None = None,
    dtype=np.float32,
    point_size: float = 8,
) -> DecisionGrid:
    """Colour the plane by `predict`'s class and scatter the points (X, y) on top.

    Args:
        ax: a matplotlib Axes.
        predict: maps grid points (N, 2) of `dtype` to class labels (N,) or probabilities (N, C);
            with probabilities the colour is paler where the model is less sure.
        X, y: the points to show (N, 2) and their labels; the grid covers their bounding box plus
            `margin` (as a fraction of its size) on every side.
        resolution: grid points per axis (the classifier is called on resolution**2 points).
        n_classes: number of colours; default: inferred from y and the predictions.

    Returns:
        the `DecisionGrid` that was evaluated.
    """
    import matplotlib.pyplot as plt

    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X must be (N, 2), got {X.shape}")
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution}")
    lo, hi = X.min(0), X.max(0)
    pad = margin * np.maximum(hi - lo, 1e-6)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
    xx, yy = np.meshgrid(xs, ys)
    points = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(dtype)  # (resolution**2, 2)
    out = np.asarray(predict(points))
    cls, conf = _classes_and_confidence(out, len(points))
    n_colours = n_classes or int(max(cls.max(), y.max(), (out.shape[1] - 1) if out.ndim == 2 else 0) + 1)
    cls, conf = cls.reshape(xx.shape), conf.reshape(xx.shape)

    colours = plt.get_cmap(cmap)(cls / max(1, n_colours - 1))  # (res, res, 4): one colour per class
    chance = 1.0 / n_colours
    colours[..., 3] = 0.15 + 0.45 * np.clip((conf - chance) / (1 - chance), 0, 1)  # pale = unsure
    extent = (xs[0], xs[-1], ys[0], ys[-1])
    ax.imshow(colours, extent=extent, origin="lower", aspect="auto", interpolation="nearest")
    if len(np.unique(cls)) > 1:
        ax.contour(xx, yy, cls, levels=np.arange(n_colours - 1) + 0.5, colors="k", linewidths=0.8)
    ax.scatter(
        X[:, 0],
        X[:, 1],
        c=y,
        cmap=cmap,
        vmin=0,
        vmax=max(1, n_colours - 1),
        s=point_size,
        edgecolor="k",
        linewidth=0.2,
    )
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    ax.set_aspect("equal")
    if title is not None:
        ax.set_title(title)
    return DecisionGrid(xx, yy, cls, conf)
