"""Step 10.3 - Beyond the book: sampling in 50 steps with DDIM, and scores for any diffusion checkpoint.

DDPM sampling (9.4) needs all T = 1000 network calls, because each step is a small noisy move.
DDIM (step 9.3) jumps between 50 evenly spaced times instead, 20 times faster: deterministic with
(9.5), or with DDPM's amount of fresh noise at each jump with eta = 1 in (9.6), as step 10.2
samples. The table has DDPM and both DDIMs: `ddpm`, `ddim` (eta = 0) and `ddim:1` (eta = 1).
Are they as good as DDPM? We ask the classifier of step 10.1 (zero.metrics):

  - asked:   share of samples classified as the label they were generated for (conditional models),
  - classes: the class histogram (an unconditional model should cover all ten digits, about 10% each),
  - FD:      Frechet distance between classifier features of the samples and of held-out real images.
             Its estimate depends on the number of images, so the table also gives the FD of as many
             *real* training images: what a perfect model would score here (the median of 10 random
             sets, and their range: differences smaller than that range are chance).

By default the checkpoints of steps 9.2 and 10.2 are scored with the three samplers; `--model` scores
any checkpoint of a zero.unet.UNet (its architecture is read from the file):

    python steps/step10_conditional_diffusion/3_sample_quality.py       # 7-19 min on a 2-core CPU, most of it DDPM
    python steps/step10_conditional_diffusion/3_sample_quality.py --samplers ddim,ddim:1 --samples 500   # 500 guided samples: 3.5-5 min a sampler
    # (2 cores, 2026-12-02; 8.0 min for ddim:1 with other work beside it, 2026-12-06)
    python steps/step10_conditional_diffusion/3_sample_quality.py --model checkpoints/my.npz --samplers ddim
"""
# needs: mnist
import time

import numpy as np

from zero.backend import get_backend, to_numpy
from zero.cli import add_device_option, at_least, out_dir, parse_options, path_arg, plural, step_checkpoint, step_parser
from zero.diffusion import Diffusion, sampler_name, to_images
from zero.errors import SetupError
from zero.metrics import (classifier_for_scoring, classify, feature_statistics, real_image_distances,
                          refuse_if_seen_heldout, score_samples, share_interval)
from zero.plot import figures, save, show, show_images
from zero.training import add_data_options, may_have_seen_heldout, mnist_splits_from
from zero.unet import UNet, unet_from_checkpoint

DEFAULT_MODELS = ["step09_diffusion/2_ddpm", "step10_conditional_diffusion/2_conditional_ddpm"]  # their checkpoints
T = 1000

parser = step_parser(__doc__, samples=100, ddim_steps=50, gamma=3.0)
add_data_options(parser)
parser.add_argument("--model", type=path_arg, action="append", default=None,
                    help="diffusion checkpoint to score (repeatable; default: the step 9 and step 10 checkpoints)")
parser.add_argument("--samplers", default="ddpm,ddim,ddim:1",
                    help="comma-separated: ddpm, ddim (deterministic), ddim:ETA (fresh noise, eta in [0, 1])")
add_device_option(parser)
parser.add_argument("--classifier", type=path_arg, default=None,
                    help="step 10.1's classifier (default: where 1_classifier.py writes it; trained here if missing)")
args = parse_options(parser, quick=dict(samples=20, train_limit=256, heldout_limit=256,
                                       ddim_steps=10, samplers="ddim,ddim:1"))
at_least(parser, args, 2, ("samples", "heldout_limit", "train_limit"), "a Frechet distance needs two images for a covariance")
for path in args.model or []:   # checked now, not after the classifier has trained
    if not path.is_file():
        parser.error(f"--model {path}: no such file")
args.classifier = args.classifier or step_checkpoint("step10_conditional_diffusion/1_classifier", args)
folder = out_dir(args, __file__)
plt = figures(args.show)
samplers = []                                        # (name, eta): 'ddim:1' -> ('ddim', 1.0)
for spec in args.samplers.split(","):
    kind, _, eta = spec.partition(":")
    if kind not in ("ddpm", "ddim") or (eta and kind != "ddim"):
        parser.error(f"--samplers: {spec!r} is not ddpm, ddim or ddim:ETA")
    try:
        samplers.append((kind, float(eta or 0)))
    except ValueError:
        parser.error(f"--samplers: the eta of {spec!r} is not a number")
    if not 0 <= samplers[-1][1] <= 1:   # checked before any sampling (nan fails too)
        parser.error(f"--samplers: the eta of {spec!r} must lie in [0, 1]")
xp = get_backend(args.device).xp
candidates = args.model or [step_checkpoint(script, args) for script in DEFAULT_MODELS]
if not args.quick and not any(path.exists() for path in candidates):   # said now, not after the referee trained
    raise SetupError("no diffusion checkpoint to score: run steps/step09_diffusion/2_ddpm.py or "
                     "steps/step10_conditional_diffusion/2_conditional_ddpm.py first, or give --model")

data = mnist_splits_from(args)
print(data.description)
x_heldout = data.x_heldout.reshape(-1, 1, 28, 28)
classifier = classifier_for_scoring(args.classifier, data.x_train.reshape(-1, 1, 28, 28), data.t_train,
                                    args.device, epochs=1 if args.quick else None, seed=args.seed, save=not args.quick,
                                    heldout=(x_heldout, data.t_heldout), source=data.source)
diffusion = Diffusion(T, device=args.device)

models = []
for path in candidates:
    if not path.exists():   # a default path (a given --model exists: checked above)
        print(f"{path} not found: run its step first (steps/step09_diffusion/2_ddpm.py or "
              f"steps/step10_conditional_diffusion/2_conditional_ddpm.py)")
        continue
    model, state = unet_from_checkpoint(path)      # a damaged file: its message alone, exit status 2
    if args.model:   # asked for by name: refused if its samples would be compared with images it trained on
        refuse_if_seen_heldout(path, data.source, "U-Net")
    elif may_have_seen_heldout(path, data.source):
        print(f"{path} skipped: trained with --source test, on images this run holds out")
        continue
    models.append((f"{path.name} ({plural(state['epoch'], 'epoch')})", model.to(args.device).eval()))
if not models:
    if not args.quick:
        raise SetupError("no diffusion checkpoint to score")   # all skipped: each line above says why
    print("quick mode: scoring two tiny untrained U-Nets (a smoke test, not a result)")
    np.random.seed(args.seed)
    models = [("untrained, unconditional", UNet(channels=(4, 8, 8), time_embed_dim=8).to(args.device).eval()),
              ("untrained, conditional",
               UNet(channels=(4, 8, 8), time_embed_dim=8, num_classes=10).to(args.device).eval())]

# the reference: held-out features, and the FD real images get with this many images (random sets
# of training images: what a perfect model would score, and how much that varies by chance alone)
_, heldout_features = classify(classifier, x_heldout)
heldout_statistics = feature_statistics(heldout_features)
real_size = min(args.samples, len(data.x_train))
real_fds = real_image_distances(classifier, data.x_train.reshape(-1, 1, 28, 28), real_size, heldout_statistics,
                                seed=args.seed)
real_fd = f"{np.median(real_fds):.2f} (median of {len(real_fds)} random sets, {real_fds.min():.2f}-{real_fds.max():.2f})"
print(f"reference: FD of {real_size} real training images to the {len(x_heldout)} held-out images = {real_fd}")

rows, grids = [], []
for name, model in models:
    conditional = model.num_classes is not None
    labels = np.arange(args.samples) % 10 if conditional else None       # 0 1 2 ... 9 0 1 ...
    for sampler, eta in samplers:
        xp.random.seed(args.seed)
        start = time.perf_counter()
        x = diffusion.sample(model, (args.samples, 1, 28, 28), labels=labels,
                             guidance_scale=args.gamma if conditional else None,
                             sampler=sampler, steps=args.ddim_steps, eta=eta)
        images = to_numpy(to_images(x))
        seconds = time.perf_counter() - start   # after the copy to the host: on a GPU, the end of the work
        scores = score_samples(classifier, images, labels=labels, reference_statistics=heldout_statistics)
        fd = scores["frechet_distance"]
        steps = len(diffusion.sampling_timesteps(sampler, args.ddim_steps))
        label = sampler_name(sampler, eta)
        rows.append((name, f"{label} ({plural(steps, 'step')})", seconds, scores.get("label_matches"),
                     scores["class_histogram"], fd))
        guided = f", gamma {args.gamma:g}" if conditional else ""
        asked = "; column = digit asked" if conditional else ""   # labels run 0..9: one column per digit asked
        matched = f", {scores['label_matches'] / args.samples:.0%} as asked" if conditional else ""
        grids.append((f"{name}{guided}\n{label}, {plural(steps, 'step')}, {seconds:.0f} s{asked}\n"
                      f"FD {fd:.1f}{matched} (over all {args.samples} samples)", images[:40], 10 if conditional else 8))
        print(rows[-1][0], rows[-1][1], f"{seconds:.1f} s", f"FD {fd:.2f}", flush=True)

# fewer real images than samples only with a small --train-limit: then the line says how many
real_sets = ("at this size" if real_size == args.samples else
             f"in sets of {real_size}, all the training images there are")
print(f"\n{args.samples} samples per row; guidance gamma = {args.gamma:g} for conditional models; "
      f"FD of real images {real_sets}: {real_fd}")
width = max(len(row[0]) for row in rows)
print(f"{'model':{width}s} {'sampler':22s} {'seconds':>8s} {'asked (95% interval)':>20s} {'FD':>7s}  classes 0-9 (%)")
for name, sampler, seconds, matches, histogram, fd in rows:
    asked_text = "-"
    if matches is not None:
        low, high = share_interval(matches, args.samples)  # Wilson score interval
        asked_text = f"{matches / args.samples:.0%} ({low:.0%}-{high:.0%})"
    shares = " ".join(f"{100 * h / histogram.sum():2.0f}" for h in histogram)
    print(f"{name:{width}s} {sampler:22s} {seconds:8.1f} {asked_text:>20s} {fd:7.2f}  {shares}")

# one row per model, one column per sampler (grids was filled in that order)
fig, axes = plt.subplots(len(models), len(samplers), figsize=(4.6 * len(samplers), 3.4 * len(models) + 0.4),
                         squeeze=False, layout="constrained")
for ax, (title, images, columns) in zip(axes.flat, grids):
    show_images(ax, images, columns, title, fontsize=8)
fig.suptitle("the same trained models, sampled with " + ", ".join(sampler_name(kind, eta) for kind, eta in samplers))
save(fig, folder, "ddpm_vs_ddim")
show()
