"""Step 9.1 - The diffusion forward process: a digit dissolved in noise, step by step.

Step 8 stacked latent variables x <- z1 <- z2 <- ... and had to learn an encoder for every
level. A diffusion model makes that chain long (T = 1000 levels x_1 ... x_T, each the size of
the image) and replaces every encoder by a fixed recipe: add a little Gaussian noise.

    q(x_t | x_{t-1}) = N(x_t | sqrt(1 - beta_t) x_{t-1}, beta_t I),   beta_t from 1e-4 up to 0.02   (9.1)

Shrinking by sqrt(1 - beta_t) keeps a variance of 1 at 1 and pulls any other towards 1
(Var x_t = (1 - beta_t) Var x_{t-1} + beta_t), so after T steps nothing of the digit is left:
x_T ~ N(0, I). Nothing is learned here; step 9.2 learns to run the chain backwards.

Because a sum of Gaussians is Gaussian, t steps collapse into one (alpha_t = 1 - beta_t,
alpha_bar_t = alpha_1 alpha_2 ... alpha_t):

    q(x_t | x_0) = N(x_t | sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)                                (9.2)

so training can jump to any t directly. We run both on a real digit: the step-by-step chain with
pictures every 100 steps, and the closed form, and check on many chains that they give the
same distribution (same mean and standard deviation per pixel, same histogram).

    python steps/step09_diffusion/1_forward_process.py [--chains N] [--data-dir DIR] [--seed SEED] [--show]
"""
# needs: mnist
import numpy as np
from tqdm import tqdm

from zero.cli import add_data_dir_option, at_least, check, out_dir, parse_options, step_parser
from zero.diffusion import Diffusion, to_images, to_model_range
from zero.mnist import load_mnist
from zero.plot import figures, save, show

parser = step_parser(__doc__, chains=2000)
add_data_dir_option(parser)
args = parse_options(parser, quick=dict(chains=200))
at_least(parser, args, 2, ("chains",), "the spread of x_t over the chains is compared")
folder = out_dir(args, __file__)
plt = figures(args.show)
rng = np.random.default_rng(args.seed)

T = 1000
EVERY = 100
diffusion = Diffusion(T)                                 # linear betas 1e-4 .. 0.02 (the book, Ho et al. 2020)
images, labels = load_mnist("test", args.data_dir)
x0 = to_model_range(images[0])                           # (1, 28, 28), pixels scaled from [0, 1] to [-1, 1]
print(f"the digit: MNIST test image 0 (a {labels[0]}), pixels scaled to [-1, 1]")
alpha_bars = diffusion.alpha_bars
print(f"alpha_bar_t: t = 1: {alpha_bars[0]:.5f}, t = 100: {alpha_bars[99]:.4f}, t = 500: {alpha_bars[499]:.4f}, "
      f"t = 1000: {alpha_bars[-1]:.2e} (the digit's share of x_T is sqrt(alpha_bar_T) = {np.sqrt(alpha_bars[-1]):.4f})")

# ---- (9.1) step by step, on many copies of the same digit at once -----------------------------
chains = np.repeat(x0[None], args.chains, axis=0)       # (chains, 1, 28, 28); chain 0 is the one we picture
pictures = {0: chains[0].copy()}
stepwise = {}
for t in tqdm(range(1, T + 1), desc="forward process", leave=False):
    noise = rng.standard_normal(chains.shape).astype(np.float32)
    chains = diffusion.q_step(chains, t, noise)          # x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps
    if t % EVERY == 0:
        pictures[t] = chains[0].copy()
        stepwise[t] = chains.copy()

# ---- (9.2) in one jump from x_0 --------------------------------------------------------------------
print(f"{args.chains} chains; per pixel, |sample mean - sqrt(alpha_bar_t) x_0| and |sample std - sqrt(1 - alpha_bar_t)|, "
      f"averaged over the 784 pixels:")
jumped = {}
for t in range(EVERY, T + 1, EVERY):
    noise = rng.standard_normal(stepwise[t].shape).astype(np.float32)
    t_batch = np.full(args.chains, t)
    jumped[t] = diffusion.q_sample(np.repeat(x0[None], args.chains, axis=0), t_batch, noise)
    expected_mean = np.sqrt(alpha_bars[t - 1]) * x0                # sqrt(alpha_bar_t) x_0
    expected_std = np.sqrt(1 - alpha_bars[t - 1])                   # sqrt(1 - alpha_bar_t)
    if t in (100, 500, 1000):
        # what sampling noise alone gives: E|error| = sqrt(2/pi) x its standard error
        noise_mean = np.sqrt(2 / np.pi) * expected_std / np.sqrt(args.chains)
        noise_std = np.sqrt(2 / np.pi) * expected_std / np.sqrt(2 * args.chains)
        for name, samples in [("step by step (9.1)", stepwise[t]), ("one jump (9.2)    ", jumped[t])]:
            mean_error = np.abs(samples.mean(axis=0) - expected_mean).mean()
            std_error = np.abs(samples.std(axis=0) - expected_std).mean()
            print(f"  t = {t:4d}, {name}: mean {mean_error:.4f}, std {std_error:.4f}")
            # generously: within twice the sampling noise above (its std formula holds for many chains; with
            # the fewest, 2, the std's error is about 1.35 times that, still well inside the bound)
            check(mean_error < 2 * noise_mean and std_error < 2 * noise_std,
                  f"t = {t}, {name.strip()}: errors {mean_error:.4f} (mean) and {std_error:.4f} (std), more than "
                  f"twice those of sampling noise alone, {noise_mean:.4f} and {noise_std:.4f}")
        print(f"  t = {t:4d}, sampling noise alone : mean {noise_mean:.4f}, std {noise_std:.4f}")

# ---- figures -----------------------------------------------------------------------------------------
steps = sorted(pictures)
fig, axes = plt.subplots(2, len(steps), figsize=(1.3 * len(steps), 3.2))
for column, t in enumerate(steps):
    axes[0, column].imshow(to_images(pictures[t][0]), cmap="gray", vmin=0, vmax=1)
    closed_form = x0 if t == 0 else jumped[t][0]
    axes[1, column].imshow(to_images(closed_form[0]), cmap="gray", vmin=0, vmax=1)
    axes[0, column].set_title(f"t = {t}", fontsize=9)
    for row in range(2):
        axes[row, column].axis("off")
axes[0, 0].text(-4, 14, "step by step (9.1)", rotation=90, va="center", ha="right", fontsize=8)
axes[1, 0].text(-4, 14, "in one jump (9.2)", rotation=90, va="center", ha="right", fontsize=8)
fig.suptitle("the forward process: noise added step by step, and drawn directly from q(x_t | x_0)")
save(fig, folder, "forward_process")

pixel = np.unravel_index(np.argmax(x0), x0.shape)   # a pixel on the stroke (value 1)
fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), layout="constrained")
ts = np.arange(1, T + 1)
axes[0].plot(ts, np.sqrt(alpha_bars), label="sqrt(alpha_bar_t): share of the digit")
axes[0].plot(ts, np.sqrt(1 - alpha_bars), label="sqrt(1 - alpha_bar_t): noise std")
axes[0].set(title="the schedule", xlabel="t")
axes[0].legend(fontsize=8)
for ax, t in zip(axes[1:], (100, 500, 1000)):
    ax.hist(stepwise[t][(slice(None),) + pixel], bins=40, density=True, alpha=0.5, label="step by step")
    ax.hist(jumped[t][(slice(None),) + pixel], bins=40, density=True, alpha=0.5, label="closed form")
    grid = np.linspace(-4, 4, 200)
    mean, std = np.sqrt(alpha_bars[t - 1]) * x0[pixel], np.sqrt(1 - alpha_bars[t - 1])
    ax.plot(grid, np.exp(-0.5 * ((grid - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi)), "k", lw=1,
            label="N(sqrt(alpha_bar_t) x0, 1 - alpha_bar_t)")
    ax.set(title=f"one stroke pixel at t = {t}", xlabel=f"value ({args.chains} chains)", ylabel="density")
axes[1].legend(fontsize=7, loc="upper left")   # once, where the left half is empty: the same three in every panel
save(fig, folder, "same_distribution")
show()
