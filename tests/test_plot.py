"""zero.plot: the image grid laid out pixel by pixel, drawn on an axis, and saved as a PNG
without a display (Agg); loss curves epoch by epoch."""
import errno
import re

import matplotlib
import numpy as np
import pytest

import zero.plot
from zero.errors import SaveFailed
from zero.plot import figures, save_image_grid, save_loss_curves, save_step_loss, show_images, tile_images


def test_tile_images_places_each_image_row_by_row_with_white_padding_and_empty_cells():
    images = np.arange(12, dtype=np.float32).reshape(3, 4) / 12      # three 2 x 2 images, every pixel different
    a, b, c = images.reshape(3, 2, 2)
    canvas = tile_images(images, columns=2, size=2, pad=1)
    white = np.ones((2, 2), dtype=np.float32)
    expected = np.block([[a, np.ones((2, 1)), b],
                         [np.ones((1, 5))],
                         [c, np.ones((2, 1)), white]])
    assert canvas.dtype == np.float32
    np.testing.assert_array_equal(canvas, expected)


def test_tile_images_of_mnist_shapes():
    flat = np.zeros((25, 784), dtype=np.float32)
    assert tile_images(flat, 10).shape == (3 * 30 - 2, 10 * 30 - 2)   # 3 rows of 28 pixels, 2 between
    assert tile_images(flat.reshape(25, 1, 28, 28), 5).shape == (5 * 30 - 2, 5 * 30 - 2)
    one = np.random.default_rng(0).random(784)
    np.testing.assert_array_equal(tile_images(one, 1), one.reshape(28, 28).astype(np.float32))


def test_show_images_draws_the_grid_titled_without_axes():
    plt = figures()
    fig, ax = plt.subplots()
    images = np.random.default_rng(0).random((6, 784))
    assert show_images(ax, images, 3, "six", fontsize=7) is ax
    np.testing.assert_array_equal(ax.get_images()[0].get_array(), tile_images(images, 3))
    assert ax.get_title() == "six" and ax.title.get_fontsize() == 7
    assert not ax.axison
    plt.close(fig)


def test_save_image_grid_writes_a_png_and_closes_the_figure(tmp_path):
    plt = figures()                                                   # headless: Agg, nothing shown
    open_figures = plt.get_fignums()
    images = np.random.default_rng(0).random((10, 784))
    path = save_image_grid(images, 10, "a row of ten", tmp_path / "figures", "walk")
    assert path == tmp_path / "figures" / "walk.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = plt.imread(path).shape
    assert width > 3 * height                                         # one row of ten: a wide default figure
    assert plt.get_fignums() == open_figures


def test_save_loss_curves_draws_one_point_per_epoch_and_skips_an_empty_heldout_curve(tmp_path, monkeypatch):
    plt = figures()
    open_figures = plt.get_fignums()
    drawn = []
    original_save = zero.plot.save

    def keep_figure(fig, folder, name):                               # look at the axes before saving
        drawn.append([(line.get_label(), list(line.get_xdata()), list(line.get_ydata()))
                      for line in fig.axes[0].get_lines()])
        return original_save(fig, folder, name)

    monkeypatch.setattr(zero.plot, "save", keep_figure)
    path = save_loss_curves({"train_loss": [3.0, 2.0, 1.5], "heldout_loss": [3.2, 2.5, 2.0]},
                            "a title", tmp_path, labels=("fit", "check"), ylabel="nats")
    save_loss_curves({"train_loss": [1.0, 0.5], "heldout_loss": []}, "no held-out data", tmp_path, "loss2")
    assert path == tmp_path / "loss.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert drawn[0] == [("fit", [1, 2, 3], [3.0, 2.0, 1.5]), ("check", [1, 2, 3], [3.2, 2.5, 2.0])]
    assert drawn[1] == [("training", [1, 2], [1.0, 0.5])]
    assert (tmp_path / "loss2.png").exists()
    assert plt.get_fignums() == open_figures


def test_save_step_loss_draws_every_step_and_its_moving_mean_on_a_log_scale(tmp_path, monkeypatch):
    figures()
    kept = _keep_figures(monkeypatch)
    losses = [8.0, 4.0, 6.0, 2.0, 4.0, 1.0, 3.0, 1.0]
    path = save_step_loss(losses, "the loss", tmp_path, width=2)
    assert path == tmp_path / "loss.png" and path.exists()
    ax = kept[0].axes[0]
    (per_step, mean) = ax.get_lines()
    assert list(per_step.get_ydata()) == losses
    assert list(mean.get_xdata()) == [1, 2, 3, 4, 5, 6, 7]              # each mean drawn at its window's last step
    assert list(mean.get_ydata()) == [6.0, 5.0, 4.0, 3.0, 2.5, 2.0, 2.0]
    assert mean.get_label() == "mean of 2 steps" and ax.get_yscale() == "log" and ax.get_title() == "the loss"
    save_step_loss(losses, "short run", tmp_path, "short", width=50)   # the window shrinks to a quarter: 2
    assert list(kept[1].axes[0].get_lines()[1].get_ydata()) == [6.0, 5.0, 4.0, 3.0, 2.5, 2.0, 2.0]


def _keep_figures(monkeypatch):
    """Figures passed to zero.plot.save, recorded before they are saved (and maybe closed)."""
    kept = []
    original_save = zero.plot.save

    def keep(fig, folder, name):
        kept.append(fig)
        return original_save(fig, folder, name)

    monkeypatch.setattr(zero.plot, "save", keep)
    return kept


@pytest.fixture
def headless(monkeypatch):
    """No display (and not macOS or Windows, which always have one); zero.plot's state restored after."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(zero.plot.sys, "platform", "linux")
    monkeypatch.setattr(zero.plot, "_show", False)


def test_without_a_display_figures_use_agg_close_after_saving_and_show_nothing(tmp_path, monkeypatch, headless, capsys):
    plt = figures()
    plt.switch_backend("svg")                                         # some other backend was in use
    plt = figures(show=True)                                          # asked for windows, but there is no display
    assert matplotlib.get_backend().lower() == "agg"
    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(True))
    open_figures = plt.get_fignums()
    fig, _ = plt.subplots()
    path = zero.plot.save(fig, tmp_path, "headless")
    assert plt.get_fignums() == open_figures
    assert f"figure saved: {path}" in capsys.readouterr().out
    zero.plot.show()
    assert shown == []


@pytest.mark.parametrize("variable", ["DISPLAY", "WAYLAND_DISPLAY"])
def test_with_a_display_and_show_figures_stay_open_for_show(tmp_path, monkeypatch, headless, variable):
    plt = figures()                                                   # Agg: no real window can open in the test
    monkeypatch.setenv(variable, ":99")
    plt = figures(show=True)
    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(True))
    fig, _ = plt.subplots()
    try:
        zero.plot.save(fig, tmp_path, "kept")
        assert fig.number in plt.get_fignums()                        # still open, for the window
        zero.plot.show()
        assert shown == [True]
    finally:
        plt.close(fig)


def test_save_image_grid_default_size_title_and_grey_map(tmp_path, monkeypatch):
    figures()
    kept = _keep_figures(monkeypatch)
    images = np.random.default_rng(0).random((11, 784))
    save_image_grid(images, 10, "eleven digits", tmp_path, "grid")      # 2 rows of 10 columns
    save_image_grid(images, 10, "chosen size", tmp_path, "sized", figsize=(3.0, 5.0))
    default, chosen = kept
    np.testing.assert_allclose(default.get_size_inches(), [0.8 * 10, 0.8 * 2 + 0.5])
    np.testing.assert_allclose(chosen.get_size_inches(), [3.0, 5.0])
    ax = default.axes[0]
    assert ax.get_title() == "eleven digits"
    assert ax.get_images()[0].get_cmap().name == "gray"


def test_save_loss_curves_labels_the_axes_and_ticks_whole_epochs(tmp_path, monkeypatch):
    figures()
    kept = _keep_figures(monkeypatch)
    save_loss_curves({"train_loss": [3.0, 2.0, 1.5], "heldout_loss": [3.2, 2.5, 2.0]}, "a title", tmp_path,
                     labels=("fit", "check"), ylabel="nats")
    ax = kept[0].axes[0]
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("a title", "epoch", "nats")
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["fit", "check"]
    ticks = [tick for tick in ax.get_xticks() if 1 <= tick <= 3]
    assert ticks and all(tick == int(tick) for tick in ticks)


def test_macos_always_has_a_display_for_show(monkeypatch, headless):
    monkeypatch.setattr(zero.plot.sys, "platform", "darwin")
    figures(show=True)
    assert zero.plot._show


def test_figures_are_saved_at_100_dpi(tmp_path):
    from PIL import Image
    plt = figures()
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [0, 1])
    path = zero.plot.save(fig, tmp_path, "small")
    with Image.open(path) as image:
        assert image.info["dpi"] == pytest.approx((100, 100), abs=0.01)


def test_a_figure_that_cannot_be_written_is_named_and_the_old_one_kept(tmp_path, monkeypatch):
    """The disk full while saving a figure ended the script with a bare OSError traceback, no file named,
    and could leave half a PNG. Now: SaveFailed naming the figure, the previous PNG as it was, no
    temporary file; the same figure saves once the disk has room."""
    plt = figures()
    fig, ax = plt.subplots(figsize=(2, 1))
    path = zero.plot.save(fig, tmp_path, "curve")
    before = path.read_bytes()
    fig, ax = plt.subplots(figsize=(3, 1))
    real_savefig = type(fig).savefig

    def full_disk(self, file, **options):
        file.write(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(type(fig), "savefig", full_disk)
    with pytest.raises(SaveFailed, match=rf"^cannot save {re.escape(str(path))}: No space left on device; "
                                         rf"the previous {re.escape(str(path))} is unchanged$"):
        zero.plot.save(fig, tmp_path, "curve")
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["curve.png"]
    monkeypatch.setattr(type(fig), "savefig", real_savefig)
    assert zero.plot.save(fig, tmp_path, "curve").read_bytes() != before


def test_an_empty_grid_or_step_loss_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"^save_image_grid: no images to draw for walk.png$"):
        save_image_grid(np.zeros((0, 784)), 10, "none", tmp_path, "walk")
    with pytest.raises(ValueError, match=r"^save_step_loss: no optimizer step recorded, nothing to draw for loss.png$"):
        save_step_loss([], "none", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_moving_average_keeps_float64_precision():
    values = [1e8 + step for step in range(8)]                        # float32 steps by 8 there
    np.testing.assert_array_equal(zero.plot.moving_average(values, width=2), [1e8 + step + 0.5 for step in range(7)])


def test_images_are_drawn_on_the_fixed_scale_0_black_1_white():
    """imshow stretched each grid to its own range: the mean MNIST image (peak 0.56) was drawn with 0.56 as white."""
    figure = matplotlib.figure.Figure()
    ax = show_images(figure.add_subplot(), np.full(784, 0.3), 1)
    assert (ax.images[0].norm.vmin, ax.images[0].norm.vmax) == (0.0, 1.0)


def test_bin_edges_are_whole_multiples_of_the_width_that_cover_every_value():
    np.testing.assert_array_equal(zero.plot.bin_edges([147.2, 171.0, 198.1], 5.0), np.arange(145.0, 201.0, 5.0))
    np.testing.assert_array_equal(zero.plot.bin_edges([150.0, 160.0], 5.0), [150.0, 155.0, 160.0])  # on an edge
    np.testing.assert_array_equal(zero.plot.bin_edges([-0.3, 0.2], 0.5), [-0.5, 0.0, 0.5])
    with pytest.raises(ValueError, match="width must be positive, got 0"):
        zero.plot.bin_edges([1.0, 2.0], 0)
    edges = zero.plot.bin_edges([0.0, 0.9], 0.3)     # 3 * 0.3 = 0.8999999999999999 < 0.9: one edge more
    assert np.histogram([0.0, 0.9], edges)[0].sum() == 2
    np.testing.assert_array_equal(zero.plot.bin_edges([150.0], 5.0), [150.0, 155.0])   # one value: one bin
    with pytest.raises(ValueError, match="bin_edges: no values"):
        zero.plot.bin_edges([], 5.0)


def test_plane_grid_points_are_the_grid_in_meshgrid_order():
    grid_x, grid_y, points = zero.plot.plane_grid((1.0, 6.0), (35.0, 105.0), 3)
    np.testing.assert_array_equal(grid_x, [[1.0, 3.5, 6.0]] * 3)
    np.testing.assert_array_equal(grid_y, [[35.0] * 3, [70.0] * 3, [105.0] * 3])
    assert points.shape == (9, 2)
    values = points[:, 0] * 1000 + points[:, 1]                     # a function of (x, y), one per point
    np.testing.assert_array_equal(values.reshape(grid_x.shape), grid_x * 1000 + grid_y)
