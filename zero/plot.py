"""Figures that are always saved to a file, and shown only when asked.

`figures(show)` picks a headless backend (Agg) unless the user asked for
windows and a display exists; `save(fig, folder, name)` writes the PNG and
prints where it went. Grids of 28 x 28 digits, drawn by steps 6-12:
`tile_images` lays them out in one array, `show_images` draws that on an axis,
`save_image_grid` makes, draws and saves a one-axis figure of it.
`save_loss_curves` draws a training history, epoch by epoch, `save_step_loss` one
optimizer step at a time with its moving average. For the plots of steps 2-5:
`bin_edges` (histogram bins at whole multiples of a width), `plane_grid` (the
points of a 2-D grid, where contour plots evaluate a density).
"""
import os
import sys
from pathlib import Path

import numpy as np

from zero.utils import write_atomically

_show = False


def figures(show=False):
    """Import and configure matplotlib; returns pyplot."""
    global _show
    import matplotlib
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) \
        or sys.platform in ("darwin", "win32")
    _show = bool(show and has_display)
    if not _show:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, folder, name):
    """Write fig to folder/name.png, print the path, close it unless showing. The PNG is written to a
    temporary file renamed over the old one: a full disk or Ctrl-C leaves the old figure (or none),
    never half a PNG, and an OSError is raised as SaveFailed naming the figure."""
    import matplotlib.pyplot as plt
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda file: fig.savefig(file, format="png", dpi=100, bbox_inches="tight"))
    print(f"  figure saved: {path}")
    if not _show:
        plt.close(fig)
    return path


def show():
    """Open the windows of every figure kept open (only after figures(show=True))."""
    if _show:
        import matplotlib.pyplot as plt
        plt.show()


def bin_edges(values, width):
    """Histogram bin edges at whole multiples of `width`, from the one at or below the smallest of
    `values` to the one at or above the largest: (number of bins + 1,). Bins that start at round
    numbers (150, 155, ... cm) read better than those np.histogram spreads from the minimum."""
    values = np.asarray(values, dtype=np.float64)
    if not width > 0:
        raise ValueError(f"bin_edges: width must be positive, got {width}")
    if values.size == 0:
        raise ValueError("bin_edges: no values to make bins for")
    low, high = values.min(), values.max()
    first, last = np.floor(low / width), np.ceil(high / width)
    edges = np.arange(first, max(last, first + 1) + 1) * width   # at least one bin
    # k * width rounds: 3 * 0.3 is 0.8999999999999999, which would leave a largest value 0.9 out
    if edges[0] > low:
        edges = np.concatenate([[edges[0] - width], edges])
    if edges[-1] < high:
        edges = np.append(edges, edges[-1] + width)
    return edges


def plane_grid(x_range, y_range, size):
    """A size x size grid over the rectangle x_range (low, high) by y_range, for contour plots of a
    density p(x, y). Returns grid_x, grid_y (size, size), as np.meshgrid gives them (x along each
    row), and points (size * size, 2), one row (x, y) per grid point in the same order: values
    computed for the points become the grid's with .reshape(grid_x.shape)."""
    xs = np.linspace(*x_range, size)
    ys = np.linspace(*y_range, size)
    grid_x, grid_y = np.meshgrid(xs, ys)
    points = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
    return grid_x, grid_y, points


def tile_images(images, columns, size=28, pad=2):
    """Host images (N, size*size) in [0, 1] -> one (rows*(size+pad)-pad, columns*(size+pad)-pad)
    array for imshow, filled row by row; the padding and the empty cells stay white (1)."""
    images = np.asarray(images).reshape(-1, size, size)
    rows = -(-len(images) // columns)
    cell = size + pad
    canvas = np.ones((rows * cell - pad, columns * cell - pad), dtype=np.float32)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        canvas[row * cell: row * cell + size, column * cell: column * cell + size] = image
    return canvas


def show_images(ax, images, columns, title=None, **title_options):
    """Draw host images (N, 784) on ax as a grey grid with `columns` columns (tile_images),
    titled if a title is given (title_options such as fontsize=9 go to ax.set_title), without
    axes; returns ax."""
    ax.imshow(tile_images(images, columns), cmap="gray", vmin=0.0, vmax=1.0)   # 0 black, 1 white, whatever the images hold
    if title is not None:
        ax.set_title(title, **title_options)
    ax.axis("off")
    return ax


def save_image_grid(images, columns, title, folder, name, figsize=None):
    """One figure with the images (N, 784) as a grid (show_images), saved to folder/name.png;
    returns the path. The default size gives each image 0.8 inch, plus half an inch for the title."""
    import matplotlib.pyplot as plt
    if len(images) == 0:   # the grid's negative size named nothing
        raise ValueError(f"save_image_grid: no images to draw for {name}.png")
    if figsize is None:
        rows = -(-len(images) // columns)                     # ceil(N / columns)
        figsize = (0.8 * columns, 0.8 * rows + 0.5)
    fig, ax = plt.subplots(figsize=figsize)
    show_images(ax, images, columns, title)
    return save(fig, folder, name)


def save_loss_curves(history, title, folder, name="loss", labels=("training", "held out"), ylabel="loss"):
    """The curves of history['train_loss'] and (when filled) history['heldout_loss'], one point
    per epoch, as returned by zero.training.fit, saved to folder/name.png; returns the path."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, marker, label in [("train_loss", "o-", labels[0]), ("heldout_loss", "s-", labels[1])]:
        if history.get(key):
            ax.plot(np.arange(1, len(history[key]) + 1), history[key], marker, label=label)
    ax.set(title=title, xlabel="epoch", ylabel=ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # epochs are whole numbers
    ax.legend()
    return save(fig, folder, name)


def moving_average(values, width=50):
    """Moving average of a host sequence over `width` steps (per-step numbers are noisy): (len - width + 1,).
    The window is at most a quarter of the sequence, so that a short run still draws a curve, not one point."""
    values = np.asarray(values, dtype=np.float64)
    width = max(1, min(width, len(values) // 4))
    return np.convolve(values, np.ones(width) / width, mode="valid")


def plot_moving_average(ax, values, width=50, **plot_options):
    """Draw moving_average(values, width) on ax, each mean at the last step of its window (the
    first mean, of steps 0..w-1, at step w-1: drawn at step 0 the curve would run w-1 steps early).
    plot_options go to ax.plot; returns the window w used."""
    mean = moving_average(values, width)
    window = len(values) - len(mean) + 1
    ax.plot(np.arange(window - 1, len(values)), mean, **plot_options)
    return window


def save_step_loss(step_loss, title, folder, name="loss", width=50):
    """The loss of every optimizer step (faint) and its moving average over `width` steps, on a log
    scale, saved to folder/name.png; returns the path."""
    import matplotlib.pyplot as plt
    if len(step_loss) == 0:   # np.convolve's 'a cannot be empty' named nothing
        raise ValueError(f"save_step_loss: no optimizer step recorded, nothing to draw for {name}.png")
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(np.asarray(step_loss), alpha=0.3, label="per step")
    window = plot_moving_average(ax, step_loss, width)
    ax.lines[-1].set_label(f"mean of {window} steps")
    ax.set(title=title, xlabel="optimizer step", ylabel="loss", yscale="log")
    ax.legend()
    return save(fig, folder, name)
