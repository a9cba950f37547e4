"""The figures of analysis.plots, drawn from small synthetic histories."""

import numpy as np
import pytest
from matplotlib.colors import to_rgba

import analysis.plots as plots
from analysis.plots import (
    Columns,
    Curve,
    plot_batch_size_grid,
    plot_cap_sweep,
    plot_four_panels,
    plot_panels,
    plot_phase_portrait,
    plot_polyak_zoom,
    plot_spectral_densities,
    running_mean,
    running_median,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def history(
    num_steps=120,
    *,
    stepsize=None,
    every=10,
    measured=True,
    diverge_at=None,
    zero_steps=(),
    minibatch=False,
):
    """A history shaped as `eqtuners.train` returns it: a decaying loss, a step
    size (`stepsize`, or one that jumps between 1 and 0.1 at every step, as
    Polyak's does), and sharpness and training loss every `every` steps."""
    step = np.arange(num_steps)
    loss = 0.5 * np.exp(-step / 40) + 0.01
    if stepsize is None:
        steps = np.where(step % 2 == 0, 1.0, 0.1)
    else:
        steps = np.full(num_steps, float(stepsize))
    steps[list(zero_steps)] = 0.0
    if minibatch:
        train_loss = loss.copy()
        loss = loss * (1 + 0.2 * np.sin(step * 1.7))
    else:
        train_loss = loss.copy()
    sharp = 3.0 + np.sin(step / 20)
    on = step % every == 0 if measured else np.zeros(num_steps, bool)
    h = {
        "step": step,
        "loss": loss,
        "stepsize": steps,
        "grad_sq_norm": loss * 2,
        "train_loss": np.where(on, train_loss, np.nan),
        "sharpness": np.where(on, sharp, np.nan),
        "stepsize_x_sharpness": np.where(on, steps * sharp, np.nan),
    }
    if diverge_at is not None:
        h = {k: v[: diverge_at + 1].copy() for k, v in h.items()}
        h["loss"][-6:-1] = 10.0 ** np.arange(2, 7)
        h["loss"][-1] = np.inf
    return h


@pytest.fixture
def figures(monkeypatch):
    """The Figure objects the plot functions save, in order."""
    drawn = []
    original = plots.save

    def save(fig, path):
        drawn.append(fig)
        return original(fig, path)

    monkeypatch.setattr(plots, "save", save)
    return drawn


def legend_texts(fig):
    (legend,) = fig.legends
    return [t.get_text() for t in legend.get_texts()], legend.get_title().get_text()


def assert_labelled(fig):
    axes = fig.get_axes()
    assert axes
    for ax in axes:
        assert ax.get_xlabel(), ax
        assert ax.get_ylabel(), ax
        assert ax.get_legend() is None  # the one legend is the figure's
    for ax in axes:
        for label in ax.get_yticklabels(which="both") + ax.get_xticklabels():
            text = label.get_text()
            assert "$" not in text and "10^" not in text, text


def assert_png(path):
    assert path.exists()
    assert path.read_bytes()[:8] == PNG_MAGIC


def deterministic_curves():
    return [
        Curve("GD 0.5", history(stepsize=0.5), 0.5),
        Curve("Polyak", history()),
    ]


def test_panels_write_labelled_figure_with_reference_lines(tmp_path, figures):
    path = plot_panels(deterministic_curves(), tmp_path / "sub" / "panels.png")
    assert path == tmp_path / "sub" / "panels.png"
    assert_png(path)
    (fig,) = figures
    assert len(fig.get_axes()) == 4
    assert_labelled(fig)
    labels, _ = legend_texts(fig)
    assert "GD 0.5" in labels and "Polyak" in labels
    assert any(label.startswith("2 / step size") for label in labels)
    assert any("= 2" in label for label in labels)
    # The dashed 2 / step line is drawn at 2 / 0.5 in the colour of the GD run.
    sharp_ax = fig.get_axes()[1]
    dashed = [line for line in sharp_ax.get_lines() if line.get_linestyle() == "--"]
    assert [line.get_ydata()[0] for line in dashed] == [4.0]
    runs = {to_rgba(line.get_color()) for line in fig.get_axes()[0].get_lines()}
    assert to_rgba(dashed[0].get_color()) in runs


def test_panels_state_the_averaging(tmp_path, figures):
    plot_panels(deterministic_curves(), tmp_path / "a.png", window=20)
    _, note = legend_texts(figures[0])
    assert "running median over windows of 20 steps" in note
    assert "measured every 10 steps" in note
    plot_panels(deterministic_curves(), tmp_path / "b.png", window=1)
    _, note = legend_texts(figures[1])
    assert "running median" not in note


def test_jumping_step_size_drawn_light_under_its_median(tmp_path, figures):
    plot_panels([Curve("Polyak", history())], tmp_path / "a.png", window=20)
    step_ax = figures[0].get_axes()[2]
    light = [line for line in step_ax.get_lines() if (line.get_alpha() or 1) < 1]
    solid = [line for line in step_ax.get_lines() if line.get_alpha() is None]
    assert len(light) == 1 and len(solid) == 1
    assert light[0].get_linewidth() < solid[0].get_linewidth()
    assert light[0].get_zorder() < solid[0].get_zorder()
    # Between 0.1 and 1 at every step, its median sits in between.
    median = solid[0].get_ydata()[20:-20]
    assert np.all((median > 0.1) & (median < 1.0))


def test_minibatch_panels_in_epochs_never_call_the_batch_loss_training_loss(
    tmp_path, figures
):
    curves = [
        Curve("SGD 0.5", history(stepsize=0.5, minibatch=True), 0.5, 5),
        Curve("Polyak-SGD", history(minibatch=True), steps_per_epoch=5),
    ]
    plot_panels(curves, tmp_path / "mb.png", window=20)
    (fig,) = figures
    assert_labelled(fig)
    assert {ax.get_xlabel() for ax in fig.get_axes()} == {"epoch"}
    loss_label = fig.get_axes()[0].get_ylabel()
    assert "mini-batch loss" in loss_label and "training loss" in loss_label
    _, note = legend_texts(fig)
    assert "Mini-batch loss: mean over windows of 20 steps" in note
    assert "Training loss: the full objective, measured every 10 steps" in note
    # The epoch axis: 120 steps at 5 per epoch end at epoch 23.8.
    xmax = max(line.get_xdata().max() for line in fig.get_axes()[0].get_lines())
    assert xmax == pytest.approx(119 / 5)


def test_minibatch_without_training_loss_is_a_minibatch_loss(tmp_path, figures):
    h = history(minibatch=True, measured=False)
    plot_panels([Curve("SGD", h, 0.1, 5)], tmp_path / "a.png")
    ylabel = figures[0].get_axes()[0].get_ylabel()
    assert ylabel.startswith("mini-batch loss") and "training" not in ylabel


def test_diverged_unmeasured_and_failed_runs(tmp_path, figures):
    diverged = history(stepsize=4.0, diverge_at=30)
    diverged["stepsize"][-1] = 0.0  # where the run stopped: no step, not a failure
    curves = [
        Curve("GD 0.5", history(stepsize=0.5), 0.5),
        Curve("GD 4", diverged, 4.0),
        Curve("unmeasured", history(measured=False)),
        Curve("Armijo", history(stepsize=0.03, zero_steps=[5, 50, 51])),
    ]
    plot_panels(curves, tmp_path / "a.png")
    (fig,) = figures
    assert_labelled(fig)
    labels, _ = legend_texts(fig)
    assert "GD 4 (diverged at step 30)" in labels
    assert "step size 0 (failed line search)" in labels
    assert any("diverged" in label and "after" in label for label in labels)
    # The diverged run's 1e6 does not stretch the loss axis.
    assert fig.get_axes()[0].get_ylim()[1] < 10
    # Step sizes from 0.03 to 1 are on a log axis, their zeros marked on its edge.
    step_ax = fig.get_axes()[2]
    assert step_ax.get_yscale() == "log"
    marks = [line for line in step_ax.get_lines() if line.get_marker() == "|"]
    assert [list(line.get_xdata()) for line in marks] == [[5, 50, 51]]


def test_single_run_without_measurements(tmp_path, figures):
    h = history(measured=False)
    del h["sharpness"], h["train_loss"], h["stepsize_x_sharpness"]
    plot_panels(Curve("only", h), tmp_path / "a.png")
    (fig,) = figures
    assert_labelled(fig)
    texts = [t.get_text() for ax in fig.get_axes() for t in ax.texts]
    assert texts.count("not measured") == 2  # sharpness and step x sharpness


def test_every_run_diverged_at_once(tmp_path):
    h = history(stepsize=10.0, diverge_at=5)
    path = plot_panels([Curve("GD 10", h, 10.0)], tmp_path / "a.png")
    assert_png(path)


def test_other_columns_by_name(tmp_path, figures):
    h = history()
    h["batch_sharpness"] = h["sharpness"] * 2
    path = tmp_path / "a.png"
    plot_panels(
        [Curve("Polyak", h)], path, columns=Columns(sharpness="batch_sharpness")
    )
    axes = figures[0].get_axes()
    assert axes[1].get_ylabel() == "batch sharpness"
    product = axes[3].get_lines()[0].get_ydata()
    assert np.allclose(product, (h["stepsize"] * h["batch_sharpness"])[::10])
    labels, _ = legend_texts(figures[0])
    assert "step size × batch sharpness = 2 (edge of stability)" in labels


def test_batch_size_grid_keeps_colours_across_rows(tmp_path, figures):
    groups = {
        bs: [
            Curve("SGD 0.5", history(stepsize=0.5, minibatch=True), 0.5, spe),
            Curve("Polyak-SGD", history(minibatch=True), steps_per_epoch=spe),
        ]
        for bs, spe in [(1024, 2), (256, 8), (4096, 1)]
    }
    del groups[256][0]  # a row without the first run keeps the others' colours
    path = plot_batch_size_grid(groups, tmp_path / "grid.png", title="grid")
    assert_png(path)
    (fig,) = figures
    assert len(fig.get_axes()) == 12
    assert_labelled(fig)
    titles = [sub.get_suptitle() for sub in fig.subfigs]
    assert [t.split(" (")[0] for t in titles] == [
        "batch size 256",
        "batch size 1024",
        "batch size 4096",
    ]
    labels, note = legend_texts(fig)
    assert labels.count("Polyak-SGD") == 1
    assert "mean over windows of 20 steps" in note
    polyak_colors = []
    for row in range(3):
        loss_ax = fig.get_axes()[4 * row]
        colors = [to_rgba(line.get_color()) for line in loss_ax.get_lines()]
        polyak_colors.append(colors[-1])  # Polyak-SGD is drawn last in every row
    assert len(set(polyak_colors)) == 1


def test_polyak_zoom(tmp_path, figures):
    h = history(300, every=1)
    path = plot_polyak_zoom(Curve("Polyak-GD", h), tmp_path / "zoom.png", stop=200)
    assert_png(path)
    (fig,) = figures
    assert len(fig.get_axes()) == 4
    assert_labelled(fig)
    labels, note = legend_texts(fig)
    assert any(label.startswith("edge of stability 2 / sharpness") for label in labels)
    assert any("= 2" in label for label in labels)
    assert "nothing averaged" in note and "measured at 200 of these 200 steps" in note
    step_ax = fig.get_axes()[2]
    assert max(line.get_xdata().max() for line in step_ax.get_lines()) == 199
    edge = [line for line in step_ax.get_lines() if line.get_color() == "black"]
    assert np.allclose(edge[0].get_ydata(), 2 / h["sharpness"][:200])


def test_polyak_zoom_without_measurements(tmp_path, figures):
    plot_polyak_zoom(Curve("Polyak-GD", history(measured=False)), tmp_path / "z.png")
    _, note = legend_texts(figures[0])
    assert "measured at 0 of these 120 steps" in note


def test_cap_sweep_colours_ordered_by_cap(tmp_path, figures):
    caps = [10.0, 0.1, 1.0]
    polyak = {cap: history() for cap in caps}
    constant = {
        0.1: history(stepsize=0.1),
        1.0: history(stepsize=1.0),
        10.0: history(stepsize=10.0, diverge_at=8),
    }
    path = plot_cap_sweep(polyak, tmp_path / "caps.svg", constant=constant)
    assert path.read_text().lstrip().startswith("<?xml")
    (fig,) = figures
    assert_labelled(fig)
    labels, note = legend_texts(fig)
    assert labels[:3] == ["cap = step = 0.1", "cap = step = 1", "cap = step = 10"]
    assert "GD, step 10 (diverged at step 8)" in labels
    assert any(label.startswith("2 / step size") for label in labels)
    assert "running median over windows of 20 steps" in note
    # Constant runs are dashed, in the colour of the cap of the same value.
    loss_ax = fig.get_axes()[0]
    solid = {to_rgba(ln.get_color()) for ln in loss_ax.get_lines()}
    dashed = [ln for ln in loss_ax.get_lines() if ln.get_linestyle() == "--"]
    assert dashed and {to_rgba(ln.get_color()) for ln in dashed} <= solid
    handles = fig.legends[0].legend_handles[:3]
    colors = [to_rgba(h.get_color()) for h in handles]
    assert len(set(colors)) == 3


def test_legacy_entry_points(tmp_path):
    curves = deterministic_curves()
    assert_png(plot_four_panels(curves, tmp_path / "a.png", title="t", smooth=20))
    assert_png(plot_phase_portrait(curves, tmp_path / "b.png", title="t"))


def test_spectral_densities_share_a_grid_and_keep_colours(tmp_path, figures):
    rng = np.random.default_rng(0)

    def quadrature(top):
        nodes = np.sort(rng.normal(0, 0.1, (2, 10)), axis=1)[:, ::-1]
        nodes[:, 0] = top
        weights = np.full((2, 10), 0.099)
        weights[:, 0] = 0.001
        return nodes, weights

    panels = {
        "batch 64": {"start": quadrature(5.0), "end: GD": quadrature(2.0)},
        "batch 256": {"end: Armijo": quadrature(9.0), "end: GD": quadrature(3.0)},
    }
    path = plot_spectral_densities(panels, tmp_path / "s.png", title="spectra")
    assert_png(path)
    (fig,) = figures
    left, right = fig.get_axes()
    assert left.get_yscale() == "log" and left.get_title() == "batch 64"
    lines = {line.get_label(): line for line in left.get_lines()}
    assert lines["start"].get_linestyle() == "--"
    grid = lines["start"].get_xdata()
    np.testing.assert_array_equal(lines["end: GD"].get_xdata(), grid)
    assert grid.min() < -0.1 and grid.max() > 5.0  # covers every node of the panel
    # The outlier's bump (weight 0.001 at 5.0) stands above the axis's bottom.
    at_outlier = lines["start"].get_ydata()[np.argmin(np.abs(grid - 5.0))]
    assert at_outlier > 10 * left.get_ylim()[0]
    colours = {
        line.get_label(): to_rgba(line.get_color()) for line in right.get_lines()
    }
    assert colours["end: GD"] == to_rgba(lines["end: GD"].get_color())
    assert colours["end: Armijo"] != colours["end: GD"]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda p: plot_panels([], p), "`curves` is empty"),
        (lambda p: plot_panels(deterministic_curves(), p, window=0), "`window`"),
        (
            lambda p: plot_panels([Curve("x", {"step": np.arange(3)})], p),
            "lacks the column",
        ),
        (
            lambda p: plot_panels(
                [
                    Curve("a", history()),
                    Curve("b", history(minibatch=True), steps_per_epoch=5),
                ],
                p,
            ),
            "mixes full-batch",
        ),
        (lambda p: plot_batch_size_grid({256: deterministic_curves()}, p), "steps_"),
        (lambda p: plot_cap_sweep({}, p), "`polyak`"),
        (lambda p: plot_polyak_zoom(deterministic_curves(), p), "`curve`"),
        (lambda p: plot_spectral_densities({}, p), "`panels`"),
        (
            lambda p: plot_panels(deterministic_curves(), p, columns="sharpness"),
            "`columns` must be an analysis.plots.Columns",
        ),
        (lambda p: plot_spectral_densities({"a": {}}, p), "Each panel"),
        (
            lambda p: plot_spectral_densities(
                {"a": {"x": (np.ones((2, 3)), np.ones((2, 4)))}}, p
            ),
            "one shape",
        ),
    ],
)
def test_bad_input(tmp_path, call, match):
    with pytest.raises(ValueError, match=match):
        call(tmp_path / "x.png")


def test_the_public_names_are_exported():
    assert set(plots.__all__) >= {"Columns", "Curve", "plot_spectral_densities"}
    assert all(hasattr(plots, name) for name in plots.__all__)


def test_columns_are_read_by_every_figure(tmp_path, figures):
    """One `Columns` names the columns of every figure that reads them."""
    h = history(every=1)
    renamed = {("measured_" + k if k == "sharpness" else k): v for k, v in h.items()}
    columns = Columns(sharpness="measured_sharpness")
    plot_polyak_zoom(Curve("Polyak", renamed), tmp_path / "z.png", columns=columns)
    plot_cap_sweep({1.0: renamed}, tmp_path / "c.png", columns=columns)
    for fig in figures:
        sharp_ax = fig.get_axes()[1]
        drawn = np.concatenate([line.get_ydata() for line in sharp_ax.get_lines()])
        assert (
            np.isfinite(drawn).any() and sharp_ax.get_ylabel() == "measured sharpness"
        )


def test_running_statistics():
    monotone = np.exp(-np.arange(50) / 7.0)
    odd = running_median(monotone, 21)  # entries i - 10 to i + 10
    assert np.array_equal(odd[10:-10], monotone[10:-10])
    assert odd[0] == np.median(monotone[:11]) and odd[-1] == np.median(monotone[-11:])
    even = running_median(monotone, 20)  # entries i - 10 to i + 9
    assert np.allclose(even[10:-10], (monotone[9:-11] + monotone[10:-10]) / 2)
    alternating = np.where(np.arange(100) % 2 == 0, 1.0, 0.1)
    assert np.allclose(running_median(alternating, 20)[10:-10], 0.55)
    assert np.allclose(running_mean(alternating, 20)[10:-10], 0.55)
    with_nan = alternating.copy()
    with_nan[40] = np.nan
    with_nan[41] = np.inf
    assert np.all(np.isfinite(running_mean(with_nan, 20)))
    assert np.array_equal(running_median(alternating, 1), alternating)


def test_dense_measurements_smoothed_only_where_dense(tmp_path, figures):
    h = history(200)
    zoom = h["step"] < 60  # every step up to 60, then every 10
    h["sharpness"] = np.where(zoom, 3.0 + (h["step"] % 2), h["sharpness"])
    plot_panels([Curve("Polyak", h)], tmp_path / "a.png", window=20)
    _, note = legend_texts(figures[0])
    assert "Where measured at least every 5 steps" in note
    sharp_ax = figures[0].get_axes()[1]
    light = [ln for ln in sharp_ax.get_lines() if (ln.get_alpha() or 1) < 1]
    (solid,) = [ln for ln in sharp_ax.get_lines() if ln.get_alpha() is None]
    assert len(light) == 1
    x, y = solid.get_xdata(), solid.get_ydata()
    # The alternation 3, 4, 3, ... under its median; the sparse rows as measured.
    assert np.all((y[(x >= 10) & (x < 50)] > 3) & (y[(x >= 10) & (x < 50)] < 4))
    sparse = x >= 70
    assert np.array_equal(y[sparse], h["sharpness"][x[sparse].astype(int)])
