"""Denoising diffusion (steps 9 and 10): the noise schedule, the forward process
q(x_t | x_0), its posterior, the training loop, the DDPM and DDIM samplers and classifier-free guidance.

    diffusion = Diffusion(1000, device="cpu")          # linear betas 1e-4 .. 0.02, as the book (and Ho et al. 2020)
    loss = diffusion.loss(model, x0)                   # predict the noise, mean squared error
    fit_diffusion(model, diffusion, optimizer, images, epochs=10)   # that loss, by mini-batch, with a progress bar
    x = diffusion.sample(model, (64, 1, 28, 28))       # ancestral sampling, t = T .. 1
    x = diffusion.sample(model, (64, 1, 28, 28), sampler="ddim", steps=50)          # deterministic
    x = diffusion.sample(model, (64, 1, 28, 28), sampler="ddim", steps=50, eta=1.0) # stochastic, DDPM-like

Time steps run t = 1 .. T; array index t - 1 holds the value for t. Data x_0 are
images scaled to [-1, 1] (`to_model_range`), the range the unit noise is matched to.

Forward process (fixed, no parameters), one step and in closed form:

    q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I),          alpha_t = 1 - beta_t
    q(x_t | x_0)     = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I),  alpha_bar_t = alpha_1 ... alpha_t

Reverse process (learned): p(x_{t-1} | x_t) = N(mu_theta(x_t, t), sigma_t^2 I), where the
network eps_theta predicts the noise in x_t and mu_theta follows from it.
"""
import numbers
import time

import numpy as np
from tqdm import tqdm

import zero.functions as F
from zero.backend import (any_outside, get_array_module, get_backend, host_min_max, standard_normal,
                          to_device_beside, to_numpy)
from zero.core import no_grad, test_mode
from zero.data import DataLoader, Dataset, epoch_loader
from zero.errors import SamplingDiverged
from zero.training import finite_loss, loss_history, save_checkpoint
from zero.utils import check_count, check_not_empty, check_number


def to_model_range(images):
    """Images in [0, 1] -> data x_0 in [-1, 1] (any floating-point array)."""
    if images.dtype.kind != "f":  # uint8 pixels 0-255 would wrap around, silently
        raise TypeError(f"to_model_range expects floating-point images in [0, 1], got dtype {images.dtype} "
                        f"(divide 0-255 pixels by 255 first)")
    if images.size:   # float pixels 0-255 would become data up to 509, which the schedule was not made for
        lowest, highest = host_min_max(images)
        if lowest < 0 or highest > 1:
            raise ValueError(f"to_model_range expects images in [0, 1], got values from {lowest:.4g} to "
                             f"{highest:.4g} (divide 0-255 pixels by 255 first)")
    return images * 2 - 1


def to_images(x):
    """Model data x in [-1, 1] -> images clipped to [0, 1] (any array)."""
    xp = get_array_module(x)
    return xp.clip((x + 1) / 2, 0, 1)


def drop_labels(labels, probability, no_label):
    """Classifier-free guidance training: each example's label independently becomes
    `no_label` with the given probability (Ho & Salimans 2022), so one network learns
    both p(x | y) and p(x). labels: (N,) integer array; the draw happens on its device."""
    check_number("drop_labels", "probability", probability, at_least=0, at_most=1)   # 10 (percent) fails
    xp = get_array_module(labels)
    dropped = xp.random.random_sample(labels.shape) < probability   # one coin per example
    return xp.where(dropped, no_label, labels)


def _check_eta(eta):
    check_number("DDIM", "eta", eta, at_least=0, at_most=1)   # 0: deterministic, 1: DDPM's amount of noise


def sampler_name(sampler, eta=0.0):
    """How figures and tables name a sampler: 'ddpm', or 'ddim eta 0' / 'ddim eta 1'."""
    return sampler if sampler == "ddpm" else f"{sampler} eta {eta:g}"


def _check_noise_and_steps(owner, x, noise, t):
    """The noise must be x's shape (a batch of one would be broadcast: the same noise in every image),
    and an array of time steps one per image."""
    if tuple(noise.shape) != tuple(x.shape):
        raise ValueError(f"{owner}: noise must have the images' shape {tuple(x.shape)}, got {tuple(noise.shape)}")
    if not isinstance(t, numbers.Integral) and tuple(t.shape) != (len(x),):
        raise ValueError(f"{owner}: t must be one time step or one per image, shape ({len(x)},); "
                         f"got shape {tuple(t.shape)}")


class Diffusion:
    """The noise schedule and every coefficient computed from it, as float32 arrays (T,) on `device`.

    betas: beta_t, linear from beta_start to beta_end (with num_timesteps = 1, beta_start alone: beta_end
    is not used). alphas: 1 - beta_t.
    alpha_bars: alpha_bar_t = prod_{s <= t} alpha_s. alpha_bars_prev: alpha_bar_{t-1},
    with alpha_bar_0 = 1 (so t = 1 never wraps around to t = T). posterior_variance:
    variance of q(x_{t-1} | x_t, x_0), zero at t = 1. Entry t - 1 belongs to time step t.
    """

    def __init__(self, num_timesteps=1000, beta_start=1e-4, beta_end=0.02, device="cpu"):
        check_count("Diffusion", "num_timesteps", num_timesteps)
        if not (0 < beta_start < 1 and 0 < beta_end < 1):  # every beta_t is a variance fraction in (0, 1)
            raise ValueError(f"Diffusion: beta_start and beta_end must lie in (0, 1), got {beta_start!r} "
                             f"and {beta_end!r}")
        self.num_timesteps = num_timesteps
        self.device = get_backend(device).name
        xp = get_backend(device).xp
        # every coefficient is computed in float64 on the host, then stored in float32 on the device
        # (1 - alpha_bar_t is about 1e-4 at t = 1: computed in float32 it would lose 3 digits)
        betas = np.linspace(beta_start, beta_end, num_timesteps, dtype=np.float64)
        alphas = 1 - betas
        alpha_bars = np.cumprod(alphas)
        alpha_bars_prev = np.concatenate([[1.0], alpha_bars[:-1]])   # alpha_bar_0 = 1: no wrap-around at t = 1
        coefficients = {
            "betas": betas,
            "alphas": alphas,
            "alpha_bars": alpha_bars,
            "alpha_bars_prev": alpha_bars_prev,
            "sqrt_alpha_bars": np.sqrt(alpha_bars),                       # mean factor of q(x_t | x_0)
            "sqrt_one_minus_alpha_bars": np.sqrt(1 - alpha_bars),         # std of q(x_t | x_0)
            # q(x_{t-1} | x_t, x_0) = N(c0_t x_0 + ct_t x_t, sigma_t^2 I), Ho et al. (2020) eq. 6-7:
            "posterior_coef_x0": np.sqrt(alpha_bars_prev) * betas / (1 - alpha_bars),
            "posterior_coef_xt": np.sqrt(alphas) * (1 - alpha_bars_prev) / (1 - alpha_bars),
            "posterior_variance": betas * (1 - alpha_bars_prev) / (1 - alpha_bars),  # sigma_t^2, 0 at t = 1
            # the same mean written through the noise (eq. 11): (x_t - noise_coef_t eps) / sqrt(alpha_t)
            "noise_coef": betas / np.sqrt(1 - alpha_bars),
        }
        for name, values in coefficients.items():
            setattr(self, name, xp.asarray(values.astype(np.float32)))
        self.alpha_bars_host = alpha_bars  # float64 on the host, for the per-step scalars of DDIM
        self.xp = xp

    def _at(self, values, t, like):
        """values[t - 1] for integer time steps t (N,), shaped (N, 1, ..., 1) to broadcast over the batch
        `like` (N, 1, 1, 1 for images), in like's dtype: a float16 or float64 model's images keep their
        dtype through the steps (float32 coefficients would turn float16 images into float32)."""
        return values[t - 1].astype(like.dtype, copy=False).reshape((-1,) + (1,) * (like.ndim - 1))

    def _check_timesteps(self, owner, t):
        """t as the schedule uses it (an int as it is, time steps per image as an array on the
        schedule's device), once checked: steps outside 1..T are refused, as values[t - 1] would
        read t = 0 as t = T, silently."""
        if isinstance(t, numbers.Integral):  # one step for the whole batch: checked on the host
            low = high = int(t)
        else:
            t = to_device_beside(t, self.device, f"{owner}: the time steps", "the schedule")
            if not any_outside(t, 1, self.num_timesteps + 1):  # one read by the host on a device
                return t
            low, high = t.min().item(), t.max().item()
        if not 1 <= low <= high <= self.num_timesteps:
            raise ValueError(f"{owner}: time steps must lie in 1..{self.num_timesteps}, got values from "
                             f"{low} to {high}")
        return t

    def timesteps_like(self, n, t):
        """(n,) integer array of time step t on the device."""
        return self.xp.full((n,), t, dtype=np.int64)

    # --- the forward process ---------------------------------------------------------------------
    def q_sample(self, x0, t, noise):
        """A draw of q(x_t | x_0): x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise.

        x0, noise: (N, C, H, W) arrays; t: (N,) integers in 1..T. Returns an array like x0.
        """
        t = self._check_timesteps("q_sample", t)
        _check_noise_and_steps("q_sample", x0, noise, t)
        return self._q_sample(x0, t, noise)

    def _q_sample(self, x0, t, noise):  # for time steps drawn here, in 1..T: no check (a device sync) per step
        return self._at(self.sqrt_alpha_bars, t, x0) * x0 + self._at(self.sqrt_one_minus_alpha_bars, t, x0) * noise

    def q_step(self, x_prev, t, noise):
        """One step of the chain: x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) noise; t an int for the
        whole batch, or (N,) integers, one per image (as in q_sample)."""
        t = self._check_timesteps("q_step", t)
        _check_noise_and_steps("q_step", x_prev, noise, t)
        xp = self.xp
        return xp.sqrt(self._at(self.alphas, t, x_prev)) * x_prev + xp.sqrt(self._at(self.betas, t, x_prev)) * noise

    # --- the posterior and the reverse step ------------------------------------------------------
    def posterior_mean_variance(self, x_t, x0, t):
        """Mean and variance of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eq. 6-7):

            mu~_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
                    + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t
            sigma_t^2 = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)

        x_t, x0: (N, C, H, W) arrays; t: (N,) integers. Returns (mean (N, C, H, W), variance (N, 1, 1, 1)).
        """
        t = self._check_timesteps("posterior_mean_variance", t)
        mean = self._at(self.posterior_coef_x0, t, x0) * x0 + self._at(self.posterior_coef_xt, t, x_t) * x_t
        return mean, self._at(self.posterior_variance, t, x_t)

    def mean_from_noise(self, x_t, eps, t):
        """The posterior mean with x_0 written through the noise, x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t):

            mu_theta(x_t, t) = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t)     (Ho et al., eq. 11)
        """
        t = self._check_timesteps("mean_from_noise", t)
        return self._mean_from_noise(x_t, eps, t)

    def _mean_from_noise(self, x_t, eps, t):  # for time steps the sampler checked already
        return (x_t - self._at(self.noise_coef, t, x_t) * eps) / self.xp.sqrt(self._at(self.alphas, t, x_t))

    def predict_x0(self, x_t, eps, t):
        """x_0 implied by x_t and the noise: (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
        t = self._check_timesteps("predict_x0", t)
        return self._predict_x0(x_t, eps, t)

    def _predict_x0(self, x_t, eps, t):  # for time steps the sampler checked already
        return (x_t - self._at(self.sqrt_one_minus_alpha_bars, t, x_t) * eps) / self._at(self.sqrt_alpha_bars, t, x_t)

    # --- training ----------------------------------------------------------------------------------
    def loss(self, model, x0, labels=None):
        """The simplified DDPM loss: t ~ U{1..T}, eps ~ N(0, I), x_t ~ q(x_t | x_0),
        L = mean of (eps - eps_theta(x_t, t))^2 over all pixels of the batch, i.e. ||eps - eps_theta||^2 / (C H W)
        per image (the same minimiser as (9.3)). x0: (N, C, H, W) array in [-1, 1]. Returns a scalar Variable."""
        t, noise, x_t = self._noised(x0)
        eps = model(x_t, t) if labels is None else model(x_t, t, labels)
        return F.mean_squared_error(eps, noise)

    def image_losses(self, model, x0, labels=None):
        """The loss of each image, (N,) on x0's device: loss()'s draws and terms, averaged over each
        image's pixels instead of the batch's, without a graph. On held-out images, their mean
        estimates the loss and their spread its standard error (step 9.2): an image's loss depends
        much on its t."""
        t, noise, x_t = self._noised(x0)
        with no_grad():
            eps = model(x_t, t) if labels is None else model(x_t, t, labels)
        return ((eps.data - noise) ** 2).mean(axis=tuple(range(1, x0.ndim)))

    def _noised(self, x0):
        """t ~ U{1..T} and eps ~ N(0, I) for each image of x0, and x_t ~ q(x_t | x_0) (9.2) from them."""
        t = self.xp.random.randint(1, self.num_timesteps + 1, size=len(x0)).astype(np.int64)
        noise = standard_normal(self.xp, x0.shape, x0.dtype)
        return t, noise, self._q_sample(x0, t, noise)

    # --- sampling ----------------------------------------------------------------------------------
    def predict_noise(self, model, x, t, labels=None, guidance_scale=None):
        """eps_theta(x_t, t[, y]) as an array. With a guidance scale gamma (classifier-free guidance):

            eps = eps_theta(x_t, t) + gamma (eps_theta(x_t, t, y) - eps_theta(x_t, t))

        gamma = 1 is the plain conditional model, gamma = 0 the unconditional one (Ho & Salimans
        write (1 + w) eps(y) - w eps with a guidance weight w: gamma = 1 + w); both predictions
        come from one network call on the doubled batch.
        """
        if guidance_scale is not None:
            check_number("classifier-free guidance", "guidance_scale", guidance_scale)
            if labels is None:  # an unguided sample, silently, otherwise
                raise ValueError(f"classifier-free guidance (scale {guidance_scale}) needs labels; "
                                 f"give one per image, or leave guidance_scale None")
            guidance_scale = float(guidance_scale)  # a NumPy float64 scale would turn eps (and x) into float64
        if labels is None:
            return model(x, t).data
        if guidance_scale is None or guidance_scale == 1:
            return model(x, t, labels).data
        if model.no_label is None:  # as the model itself would say, before "no label" is looked up
            raise ValueError(f"{type(model).__name__}: this model is unconditional (num_classes=None) "
                             f"but labels were given (with guidance scale {guidance_scale})")
        xp = self.xp
        no_labels = xp.full(labels.shape, model.no_label, dtype=labels.dtype)
        if guidance_scale == 0:
            return model(x, t, no_labels).data
        both = model(xp.concatenate([x, x]), xp.concatenate([t, t]), xp.concatenate([labels, no_labels])).data
        eps_conditional, eps_unconditional = both[:len(x)], both[len(x):]
        return eps_unconditional + guidance_scale * (eps_conditional - eps_unconditional)

    def ddpm_step(self, x_t, eps, t):
        """One ancestral step x_t -> x_{t-1} for an int t: mu_theta(x_t, t) + sigma_t z, z ~ N(0, I),
        and no noise at the last step t = 1 (sigma_1 = 0 as well)."""
        t = self._check_timesteps("ddpm_step", t)
        ts = self.timesteps_like(len(x_t), t)
        mean = self._mean_from_noise(x_t, eps, ts)
        if t == 1:
            return mean
        z = standard_normal(self.xp, x_t.shape, x_t.dtype)
        return mean + self.xp.sqrt(self._at(self.posterior_variance, ts, x_t)) * z

    def _check_x0_predictable(self, owner, t, dtype):
        """DDIM predicts x_0 by dividing by sqrt(alpha_bar_t): refuse a time step t where that factor, as
        stored (float32) and in the images' dtype, is below the smallest normal number, 0 or subnormal.
        (Strong schedules get there: betas from 0.5 to 0.9 over 1000 steps make alpha_bar_T 0 in float64.)
        The predicted x_0 would be inf, and the steps NaN or images all -1 and 1, silently. A t outside
        1..T is left to the caller's check of the time steps."""
        if not 1 <= t <= self.num_timesteps:
            return
        alpha_bar = float(self.alpha_bars_host[t - 1])
        limiting = np.dtype(np.float16) if np.dtype(dtype) == np.float16 else np.dtype(np.float32)
        smallest = float(np.finfo(limiting).tiny)
        if not np.sqrt(alpha_bar) >= smallest:
            raise ValueError(f"{owner}: DDIM divides by sqrt(alpha_bar_t), and at t = {t} this schedule's alpha_bar_t "
                             f"is {alpha_bar:.3g}, whose square root is below {smallest:.3g}, the smallest normal "
                             f"{limiting.name}: use sampler 'ddpm', or a schedule with smaller betas or fewer steps")

    def ddim_mean_std(self, x_t, eps, t, t_prev, eta=0.0):
        """Mean and standard deviation of a DDIM step (Song et al. 2021, eq. 12; sigma from eq. 16) from time t to an
        earlier t_prev >= 1: predict x_0, then move it back to noise level t_prev, keeping part of the
        predicted noise and replacing the rest by fresh noise of standard deviation sigma:

            mean  = sqrt(alpha_bar_{t_prev}) x0_hat + sqrt(1 - alpha_bar_{t_prev} - sigma^2) eps
            sigma = eta sqrt((1 - alpha_bar_{t_prev}) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_{t_prev})

        eta = 0: no fresh noise (deterministic DDIM). eta = 1 with t_prev = t - 1 is exactly the DDPM
        step: this mean is mu_theta(x_t, t) and sigma^2 the posterior variance; with larger jumps it
        is DDPM on a coarser time grid. t, t_prev: ints. Returns (mean array, sigma as a float)."""
        _check_eta(eta)
        if not 1 <= t_prev < t <= self.num_timesteps:  # a t_prev of 0 would read alpha_bar_T
            raise ValueError(f"ddim_mean_std: needs 1 <= t_prev < t <= {self.num_timesteps}, got t = {t}, "
                             f"t_prev = {t_prev}")
        self._check_x0_predictable("ddim_mean_std", t, x_t.dtype)   # host numbers only: no sync per step
        x0_hat = self._predict_x0(x_t, eps, self.timesteps_like(len(x_t), t))
        alpha_bar, alpha_bar_prev = self.alpha_bars_host[t - 1], self.alpha_bars_host[t_prev - 1]
        sigma = eta * np.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev))
        # Python floats: the products keep the images' dtype (an np.float32 would make float16 ones float32)
        mean = (float(np.sqrt(alpha_bar_prev)) * x0_hat
                + float(np.sqrt(max(1 - alpha_bar_prev - sigma ** 2, 0.0))) * eps)
        return mean, float(sigma)

    def ddim_step(self, x_t, eps, t, t_prev, eta=0.0):
        """One DDIM step from time t to an earlier t_prev (t_prev = 0 means the data: x0_hat).
        With eta = 0 (the default) it is deterministic,
            x_{t_prev} = sqrt(alpha_bar_{t_prev}) x0_hat + sqrt(1 - alpha_bar_{t_prev}) eps;
        with eta > 0 it adds fresh noise (ddim_mean_std)."""
        if t_prev == 0:
            self._check_x0_predictable("ddim_step", t, x_t.dtype)
            return self.predict_x0(x_t, eps, self.timesteps_like(len(x_t), t))
        mean, sigma = self.ddim_mean_std(x_t, eps, t, t_prev, eta)
        if sigma == 0:
            return mean
        z = standard_normal(self.xp, x_t.shape, x_t.dtype)
        return mean + float(sigma) * z

    def sampling_timesteps(self, sampler="ddpm", steps=None):
        """The time steps a sampler visits, from T down: all T for DDPM (which ignores `steps`, so that
        callers can pass one value for either sampler); for DDIM `steps` (default 50) evenly spaced
        ones from T to 1 (one step: T alone, one jump to the data)."""
        if sampler == "ddpm":
            return list(range(self.num_timesteps, 0, -1))
        if sampler != "ddim":
            raise ValueError(f"sampler must be 'ddpm' or 'ddim', got {sampler!r}")
        if steps is None:
            steps = 50
        if not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"ddim: steps must be a positive integer, got {steps!r}")
        if steps == 1:  # linspace(1, T, 1) would be [1]: a "jump" from x_1 that never leaves the noise
            return [self.num_timesteps]
        steps = min(int(steps), self.num_timesteps)
        return sorted({int(round(s)) for s in np.linspace(1, self.num_timesteps, steps)}, reverse=True)

    def sample(self, model, shape, labels=None, guidance_scale=None, sampler="ddpm", steps=None,
               snapshot_every=None, progress=True, eta=0.0, x_T=None):
        """Draw images by running the reverse process from x_T ~ N(0, I).

        model: the noise predictor eps_theta(x_t, t[, y]), a Model such as zero.unet.UNet.
        shape: (N, C, H, W). labels: (N,) integer array for a conditional model (None otherwise).
        guidance_scale: classifier-free guidance gamma (None: the conditional model as is).
        sampler: 'ddpm' (ancestral, all T steps) or 'ddim' (`steps` steps; deterministic with eta = 0,
        the default; eta = 1 adds DDPM's amount of fresh noise on the coarser grid: ddim_mean_std).
        snapshot_every: if set, also return {t: host copy of x_t} every so many of the sampler's steps,
        from x_T on (and x_0 at t = 0).
        x_T: the starting noise, an array of `shape` in the model's dtype (None: drawn here from N(0, I),
        in that dtype: a float64 U-Net starts from float64 noise): samplers started from one x_T are
        compared on equal terms, and DDIM with eta = 0 maps it to the same x_0 every time.
        Returns x_0 in [-1, 1] (clipped), an array on the device; or (x_0, snapshots).
        """
        xp = self.xp
        if len(shape) < 1 or shape[0] < 1:  # a whole reverse chain for nothing; scripts' --samples 0
            raise ValueError(f"sample: shape must hold at least one image, (N, C, H, W) with N >= 1, "
                             f"got {tuple(shape)}")
        if labels is not None:
            if len(labels) != shape[0]:  # one label would be broadcast over the batch, or fail with guidance
                raise ValueError(f"sample: {len(labels)} labels for {shape[0]} images; give one per image")
            labels = to_device_beside(labels, self.device, "sample: the labels", "the schedule")
        timesteps = self.sampling_timesteps(sampler, steps)
        _check_eta(eta)
        if sampler == "ddim":   # before the first network call: the first step, t = T, has the smallest alpha_bar_t
            self._check_x0_predictable("sample", timesteps[0], model.dtype)
        if x_T is None:
            x = standard_normal(xp, shape, model.dtype)
        else:
            x = to_device_beside(x_T, self.device, "sample: x_T", "the schedule")
            if x.shape != tuple(shape) or x.dtype != model.dtype:
                raise ValueError(f"sample: x_T must be noise of the images' shape {tuple(shape)} in the model's dtype "
                                 f"{model.dtype}, as sample draws it, got {x.dtype} of shape {x.shape}")
        snapshots = {}
        with no_grad(), test_mode():
            for index, t in enumerate(tqdm(timesteps, desc=f"{sampler} sampling", leave=False, disable=not progress)):
                if snapshot_every and index % snapshot_every == 0:  # DDPM: t = T, T - k, T - 2k, ...
                    snapshots[t] = to_numpy(x)  # explicit host copy for the picture
                eps = self.predict_noise(model, x, self.timesteps_like(len(x), t), labels, guidance_scale)
                if sampler == "ddpm":
                    x = self.ddpm_step(x, eps, t)
                else:
                    t_prev = timesteps[index + 1] if index + 1 < len(timesteps) else 0
                    x = self.ddim_step(x, eps, t, t_prev, eta)
        if not bool(xp.isfinite(x).all()):   # one read by the host; clip keeps NaN, and a referee reads it as a 0
            guided = "" if guidance_scale is None else f", guidance scale {guidance_scale}"
            raise SamplingDiverged(
                f"sample: the {sampler} chain ended with NaN or infinite values ({model.dtype}{guided}): "
                f"a guidance scale too large for the model's dtype, or weights that hold NaN")
        x = xp.clip(x, -1, 1)
        if snapshot_every:
            snapshots[0] = to_numpy(x)
            return x, snapshots
        return x


# =============================================================================
# Training (the loop step 9.2 writes out, for the steps after it)
# =============================================================================
def fit_diffusion(model, diffusion, optimizer, images, epochs, labels=None, label_drop=0.0, batch_size=32, seed=0,
                  device=None, history=None, start_epoch=0, lr_schedule=None, checkpoint=None, settings=None):
    """Train the noise predictor eps_theta (`model`) on the loss (9.3), Diffusion.loss, for epochs
    start_epoch+1 .. epochs, with a progress bar: step 9.2's training loop, which it writes out.

    images: host array (N, C, H, W) in [0, 1], scaled to [-1, 1] batch by batch. Epoch e visits them
    in the order of DataLoader(seed=(seed, e)), and the device's generator is reseeded from NumPy's
    at its start (zero.reseed_device), so a run resumed from a checkpoint continues as an
    uninterrupted one would. labels: their class labels (N,), for a conditional model (step 10.2):
    each is replaced by model.no_label with probability label_drop, example by example
    (drop_labels), so that the model learns p(x) beside p(x | y). lr_schedule: a function
    (step, total_steps) -> learning rate, called before every optimizer step, steps counted from 0
    over all epochs (cosine_lr), or None for a constant learning rate. checkpoint: a path where
    model and optimizer are saved (with `settings`, zero.training.save_checkpoint) after every
    epoch. Appends each step's loss to history['step_loss'] and each epoch's mean to
    history['train_loss'], prints the mean after each epoch, and returns history. The model
    is put in training mode first. A loss of NaN or inf stops the run before the epoch's checkpoint
    (finite_loss: TrainingDiverged)."""
    device = model.device if device is None else device
    check_count("fit_diffusion", "epochs", epochs, at_least=0)
    check_count("fit_diffusion", "start_epoch", start_epoch, at_least=0)
    check_not_empty("fit_diffusion", images, "training images")
    history = loss_history(history, ["train_loss", "step_loss"])
    model.train()   # batch norm on each batch's statistics (a model sampled from before is in eval mode)
    dataset = Dataset(images) if labels is None else Dataset(images, labels)
    steps_per_epoch = len(DataLoader(dataset, batch_size))
    start = time.perf_counter()
    for epoch in range(start_epoch + 1, epochs + 1):
        loader = epoch_loader(dataset, batch_size, seed, epoch, device, model.dtype)
        total = 0.0
        with tqdm(loader, desc=f"epoch {epoch}/{epochs}", leave=False) as bar:
            for step, batch in enumerate(bar, start=(epoch - 1) * steps_per_epoch):
                if lr_schedule is not None:
                    optimizer.lr = lr_schedule(step, epochs * steps_per_epoch)
                if labels is None:
                    loss = diffusion.loss(model, to_model_range(batch))                                # (9.3)
                else:
                    x, y = batch
                    y = drop_labels(y, label_drop, model.no_label)     # per example: label -> "no label"
                    loss = diffusion.loss(model, to_model_range(x), y)                   # (9.3) with eps(x_t, t, y)
                where = f"diffusion training epoch {epoch}, batch {step % steps_per_epoch + 1} of {steps_per_epoch}"
                history["step_loss"].append(finite_loss(loss, where))  # one number to the host per step; NaN stops
                total += history["step_loss"][-1]
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                bar.set_postfix(loss=f"{history['step_loss'][-1]:.4f}", refresh=False)  # shown at the next refresh
        history["train_loss"].append(total / steps_per_epoch)
        seconds = time.perf_counter() - start
        message = f"epoch {epoch}/{epochs}: mean loss {history['train_loss'][-1]:.4f} ({seconds:.0f} s so far)"
        if checkpoint is not None:   # every epoch: an interrupted run can resume
            save_checkpoint(checkpoint, model, optimizer, epoch, history, settings)
            message += f", checkpoint {checkpoint}"
        print(message)
    return history
