"""Step 6.4 - MNIST: the images the VAE and diffusion steps will model.

Step 6.3's network turned one number into one number; the generative models ahead
model whole images. MNIST has 70,000 handwritten digits, 28 x 28 grey pixels in [0, 1] (60,000 for training,
10,000 for testing). Steps 7-10 learn their distribution p(x) and draw new
digits from it. This script loads the images they train on (MNIST's training
split, or where only the test split is at hand, the test split's first 8,000:
zero.training.mnist_splits), prints their shape and range, and shows some with
their labels and the mean image.

    python steps/step06_neural_networks/4_mnist.py [--data-dir DIR] [--show]
"""
# needs: mnist

import numpy as np

from zero.cli import check, out_dir, parse_options, step_parser
from zero.plot import figures, save, show, show_images
from zero.training import add_data_options, mnist_splits_from

parser = step_parser(__doc__, seeded=False)   # nothing trains here: no --epochs, --device or checkpoint options
add_data_options(parser)
args = parse_options(parser)
folder = out_dir(args, __file__)
plt = figures(args.show)

data = mnist_splits_from(args)
print(data.description)
x, t = data.x_train, data.t_train
print(f"images {x.shape} {x.dtype}, pixel values from {x.min()} to {x.max()}, "
      f"mean pixel {x.mean():.3f}; labels {t.shape}, digits {np.bincount(t, minlength=10).tolist()}")
check(x.ndim == 2 and x.shape[1] == 784 and t.shape == (len(x),) and 0 <= x.min() and x.max() <= 1,
      f"expected images (N, 784) in [0, 1] and labels (N,), got {x.shape} from {x.min()} to {x.max()} and {t.shape}")

fig, axes = plt.subplots(3, 8, figsize=(10, 4.2))
for ax, image, label in zip(axes.flat, x, t):
    show_images(ax, image, 1, str(label))
save(fig, folder, "digits")

fig, (ax_grid, ax_mean) = plt.subplots(1, 2, figsize=(10, 5))
split = "training" if data.source == "train" else "test"   # the MNIST split the images above come from
show_images(ax_grid, x[:100], 10, f"the first 100 images of MNIST's {split} split")
show_images(ax_mean, x.mean(axis=0), 1, "the mean image")
save(fig, folder, "grid_and_mean")
show()
