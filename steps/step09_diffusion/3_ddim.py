"""Step 9.3 - Beyond the book: DDIM, the same trained model sampled in 10 to 100 steps instead of 1000.

DDPM sampling (9.4) calls the U-Net T = 1000 times per image, each step a small noisy move.
DDIM (Song et al. 2021) keeps the network of step 9.2 and changes only the sampler. At time t
it predicts the clean image from the noise estimate, then jumps straight to an earlier time t'
along the same noise direction, adding no fresh noise:

    x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps_theta(x_t, t)) / sqrt(alpha_bar_t)
    x_t'   = sqrt(alpha_bar_t') x0_hat + sqrt(1 - alpha_bar_t') eps_theta(x_t, t)                   (9.5)

This is q(x_t' | x_0) of (9.2) with x_0 and the noise replaced by their estimates, so the
training objective (9.3) is unchanged; any subset of times t works. It is deterministic: the
same x_T always gives the same image, and runs with different numbers of steps give nearly the
same one. DDIM can also put fresh noise back at each jump: keep only part of eps_theta and add
noise of standard deviation sigma (Song et al. 2021, eq. 12, with sigma from their eq. 16):

    x_t' = sqrt(alpha_bar_t') x0_hat + sqrt(1 - alpha_bar_t' - sigma^2) eps_theta(x_t, t) + sigma z,
    sigma = eta sqrt((1 - alpha_bar_t') / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_t')   (9.6)

eta = 0 is (9.5); eta = 1 with t' = t - 1 is exactly the DDPM step (9.4), and with bigger jumps
DDPM on a coarser time grid. This script uses eta = 0; step 10 samples with eta = 1.

We start DDPM and DDIM with 10, 20, 50 and 100 steps from the same x_T and compare pictures
and time. DDIM's pictures agree; DDPM's show other digits: its 999 draws of fresh noise decide
the image as much as x_T does. The speed is not free: with this small 10-epoch model DDIM's
deterministic digits look rougher than DDPM's. Step 10.3 scores both samplers with a classifier:
the Frechet distance of their samples to real digits, printed beside that of as many real images
(10 random sets), whose range is how far chance alone moves it. At its default of 100 samples that
range (129-215 in README's course table) is wider than most gaps recorded between deterministic DDIM
and DDPM on step 9's model (339.9 against 269.5 in that table's run; 299.5 against 251.4, 332 against
280 and 304.3 against 290.7 in earlier ones: MEASUREMENTS.md),
so the default does not show whether DDIM is worse at all. With 1,000 samples per sampler (step
10.3's `--samples 1000`, about ten times its default sampling time) real sets range over 45.0-54.0
(README's course table, row 12 `1_gan.py`, appendix B.1), but distances shrink as the sample count
grows, so the gaps above, measured with 100 samples, would have to be measured again at 1,000 to
tell.

    python steps/step09_diffusion/3_ddim.py            # needs the checkpoint of 2_ddpm.py
"""
import time

import numpy as np

from zero.backend import get_backend, standard_normal, to_numpy
from zero.cli import (add_device_option, check, comma_list, out_dir, parse_options, path_arg, plural, step_checkpoint,
                      step_parser)
from zero.diffusion import Diffusion, to_images
from zero.errors import SetupError
from zero.plot import figures, save, show, show_images
from zero.unet import UNet, unet_from_checkpoint

T = 1000

parser = step_parser(__doc__, samples=16, ddim_steps="10,20,50,100")
add_device_option(parser)
parser.add_argument("--checkpoint", type=path_arg, default=None,
                    help="step 9.2's trained U-Net (default: where 2_ddpm.py writes it)")
args = parse_options(parser, quick=dict(samples=4, ddim_steps="5,10"))
if args.checkpoint is not None and not args.checkpoint.is_file():   # given, so never replaced by an untrained U-Net
    parser.error(f"--checkpoint {args.checkpoint}: no such file")
args.checkpoint = args.checkpoint or step_checkpoint("step09_diffusion/2_ddpm", args)
ddim_steps = comma_list(parser, args.ddim_steps, int, "--ddim-steps", minimum=1, maximum=T)   # jumps between T steps
folder = out_dir(args, __file__)
plt = figures(args.show)
xp = get_backend(args.device).xp

if args.checkpoint.exists():
    model, state = unet_from_checkpoint(args.checkpoint)
    if model.num_classes is not None:   # it would need a label per sample, which this script does not give
        parser.error(f"--checkpoint {args.checkpoint}: a class-conditional U-Net (step 10.2's); this script samples "
                     f"unconditional ones (step 9.2's): score conditional ones with "
                     f"steps/step10_conditional_diffusion/3_sample_quality.py --model")
    print(f"U-Net of {args.checkpoint} ({plural(state['epoch'], 'epoch')})")
elif args.quick:
    print(f"quick mode: {args.checkpoint} not found, sampling a tiny untrained U-Net (a smoke test)")
    np.random.seed(args.seed)
    model = UNet(channels=(4, 8, 8), time_embed_dim=8)
else:
    raise SetupError(f"{args.checkpoint} not found: run steps/step09_diffusion/2_ddpm.py first")   # shown alone
model.to(args.device).eval()
diffusion = Diffusion(T, device=args.device)
shape = (args.samples, 1, 28, 28)

xp.random.seed(args.seed)
x_T = standard_normal(xp, shape)                # one starting noise for every sampler
runs = []
for sampler, steps in [("ddpm", T)] + [("ddim", s) for s in ddim_steps]:
    start = time.perf_counter()
    images = to_numpy(to_images(diffusion.sample(model, shape, sampler=sampler, steps=steps, x_T=x_T)))
    seconds = time.perf_counter() - start   # after the copy to the host: on a GPU, the end of the work
    runs.append((f"{sampler.upper()}, {plural(steps, 'step')}\n{seconds:.1f} s", images))
    print(f"{sampler.upper()} with {plural(steps, 'step', '4d')}: {plural(args.samples, 'image')} in {seconds:6.1f} s")

# DDIM again from the same x_T: the random generator has moved on (DDPM drew 999 fresh noises from
# it), but DDIM (eta = 0) draws nothing after x_T, so it must give the same images
again = to_numpy(to_images(diffusion.sample(model, shape, sampler="ddim", steps=ddim_steps[-1], x_T=x_T)))
difference = np.abs(again - runs[-1][1]).max()
print(f"DDIM is deterministic: the same x_T sampled again, with the random generator elsewhere, differs by at most "
      f"{difference:.1e}")
check(difference < 1e-4, f"DDIM from the same x_T gave images up to {difference:.1e} apart")   # 1e-4: far below 1/255

columns = int(np.ceil(np.sqrt(args.samples)))
fig, axes = plt.subplots(1, len(runs), figsize=(3 * len(runs), 3.6))
for ax, (title, images) in zip(axes, runs):
    show_images(ax, images, columns, title, fontsize=9)
fig.suptitle("the same U-Net and the same x_T: DDPM (1000 noisy steps: the fresh noise picks other digits) "
             "and DDIM (deterministic jumps)")
save(fig, folder, "ddpm_vs_ddim")
show()
