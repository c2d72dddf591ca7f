"""bestiary.viz: the decision-region plot colours the plane by the classifier it is given."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bestiary.viz import plot_decision_regions  # noqa: E402

X = np.array([[-1.0, -2.0], [3.0, 0.5], [0.0, 4.0]])
Y = np.array([0, 1, 2])


def quadrant(points):
    """Class 1 right of x = 1, class 0 left of it, class 2 above y = 3 (overrides)."""
    cls = (points[:, 0] > 1.0).astype(int)
    cls[points[:, 1] > 3.0] = 2
    return cls


def test_grid_covers_the_data_and_its_classes_are_predict_at_every_point():
    fig, ax = plt.subplots()
    grid = plot_decision_regions(ax, quadrant, X, Y, resolution=41, margin=0.25)
    assert grid.xx.shape == grid.classes.shape == (41, 41)
    # the grid spans the bounding box of the data plus the margin on each side
    assert grid.xx.min() == pytest.approx(-1 - 0.25 * 4) and grid.xx.max() == pytest.approx(3 + 0.25 * 4)
    assert grid.yy.min() == pytest.approx(-2 - 0.25 * 6) and grid.yy.max() == pytest.approx(4 + 0.25 * 6)
    points = np.stack([grid.xx.ravel(), grid.yy.ravel()], 1)
    np.testing.assert_array_equal(grid.classes.ravel(), quadrant(points))
    # a known point on each side of each boundary
    for (px, py), expected in [((-1.5, 0.0), 0), ((3.5, 0.0), 1), ((0.0, 5.0), 2)]:
        i, j = np.abs(grid.yy[:, 0] - py).argmin(), np.abs(grid.xx[0] - px).argmin()
        assert grid.classes[i, j] == expected
    assert np.all(grid.confidence == 1.0)  # hard labels: full confidence
    assert ax.get_title() == "" and len(ax.collections) >= 2  # boundary contour + scatter
    plt.close(fig)


def test_probabilities_give_argmax_classes_and_max_confidence():
    def proba(points):
        # class 1 becomes more likely to the right: p1 = sigmoid(2 x)
        p1 = 1 / (1 + np.exp(-2 * points[:, 0]))
        return np.stack([1 - p1, p1], 1)

    fig, ax = plt.subplots()
    grid = plot_decision_regions(ax, proba, X[:2], Y[:2], resolution=30, title="soft")
    assert ax.get_title() == "soft"
    np.testing.assert_array_equal(grid.classes, (grid.xx > 0).astype(int))
    p1 = 1 / (1 + np.exp(-2 * grid.xx))
    np.testing.assert_allclose(grid.confidence, np.maximum(p1, 1 - p1), rtol=1e-5)
    plt.close(fig)


def test_predict_receives_the_requested_dtype_and_bad_output_is_rejected():
    seen = {}

    def spy(points):
        seen["dtype"] = points.dtype
        return np.zeros(len(points), int)

    fig, ax = plt.subplots()
    plot_decision_regions(ax, spy, X, Y, resolution=5, dtype=np.float64)
    assert seen["dtype"] == np.float64
    with pytest.raises(ValueError, match="values for"):
        plot_decision_regions(ax, lambda p: np.zeros(3), X, Y, resolution=5)
    with pytest.raises(ValueError, match="integer class labels"):
        plot_decision_regions(ax, lambda p: np.full(len(p), 0.3), X, Y, resolution=5)
    plt.close(fig)
