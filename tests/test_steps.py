"""Every course script runs end to end in quick mode: figures go to a
temporary folder, no window opens, the script exits 0."""
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, help_texts, mnist_dir
import zero.backend
from zero import cuda_available
from zero.errors import CheckpointRefused
from zero.metrics import check_classifier

STEP_SCRIPTS = sorted(p for p in (ROOT / "steps").glob("step*/*.py") if not p.name.startswith("_"))
NEEDS_MNIST_MARK = "# needs: mnist"


def _needs_mnist(script):
    return NEEDS_MNIST_MARK in script.read_text(encoding="utf-8")


def _script_env(script, **settings):
    """The environment a quick run of `script` gets: no display, real MNIST if it needs it (else a skip)."""
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONHASHSEED="0", **settings)
    env.pop("DISPLAY", None)
    if _needs_mnist(script):
        folder = mnist_dir()
        if folder is None:
            pytest.skip("real MNIST not found: set ZERO_DATA_DIR or put it in ../shared/datasets/mnist")
        env["ZERO_DATA_DIR"] = str(folder)
    return env


def _run_quick(script, tmp_path, *options):
    """`script` (a path under steps/) run in quick mode from tmp_path, figures under tmp_path/figures."""
    command = [sys.executable, str(ROOT / "steps" / script), "--quick", "--out", str(tmp_path / "figures"), *options]
    return subprocess.run(command, cwd=tmp_path, env=dict(os.environ, MPLBACKEND="Agg"), capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("script", STEP_SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_step_script_runs_in_quick_mode(script, tmp_path):
    env = _script_env(script)
    command = [sys.executable, str(script), "--quick", "--out", str(tmp_path / "figures")]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    assert list((tmp_path / "figures").rglob("*.png")), f"{script} saved no figure"


DEVICE_SCRIPTS = [p for p in STEP_SCRIPTS
                  if re.search(r"training=True|add_device_option\(", p.read_text(encoding="utf-8"))]

def _launcher(before, after=""):
    """Source for `python -c SOURCE script args...`: run the lines `before`, then the step script
    (sys.argv[1]) with the arguments after it, as `python script args...` would, then `after`."""
    return (f"import runpy, sys\n{before}\nscript = sys.argv[1]\nsys.argv = [script] + sys.argv[2:]\n"
            f"runpy.run_path(script, run_name='__main__')\n{after}")


# Runs a step script on the strict test device (zero.testing registers it; its arrays refuse to become
# NumPy arrays, as CuPy's do): a script line that copies device data to the host by accident fails here.
STRICT_LAUNCHER = _launcher("import zero.testing")


@pytest.mark.parametrize("script", DEVICE_SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_script_with_a_device_option_runs_on_a_device_that_refuses_host_copies(script, tmp_path):
    env = _script_env(script, ZERO_DEVICE="cpu")
    command = [sys.executable, "-c", STRICT_LAUNCHER, str(script), "--quick", "--device", "strict",
               "--out", str(tmp_path / "figures")]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{script} on the strict device failed:\n{result.stderr[-5000:]}"


def _interrupting_launcher(module, owner, name, call):
    """A launcher (with the strict device registered) that runs a step script with Ctrl-C at the
    `call`-th call of `owner.name`, imported from `module`."""
    return _launcher(f"""import zero.testing
from {module} import {owner}
method, calls = {owner}.{name}, []
def interrupted(*args, **kwargs):
    calls.append(1)
    if len(calls) == {call}:
        raise KeyboardInterrupt
    return method(*args, **kwargs)
{owner}.{name} = interrupted""")


# Step 7's quick run has 16 batches an epoch, then one call for the held-out loss: the 18th call of
# VAE.loss is the first batch of epoch 2.
INTERRUPTING_LAUNCHER = _interrupting_launcher("zero.vae", "VAE", "loss", 18)


def test_a_script_resumed_on_a_device_trains_the_model_an_uninterrupted_run_would(real_mnist_dir, tmp_path):
    """Step 7 on the strict device, whose generator (as CuPy's) no checkpoint can keep: 2 epochs
    straight, and 2 epochs interrupted (Ctrl-C) in the second then --resume, end with the same
    weights. The checkpoint is saved after every epoch (it was only at the end: Ctrl-C lost the
    run), and the device's generator is reseeded from NumPy's, which the checkpoint keeps, at every
    epoch's start."""
    env = _script_env(ROOT / "steps/step07_vae/1_vae.py", ZERO_DEVICE="cpu")

    def run(checkpoint, *options, launcher=STRICT_LAUNCHER, returncode=0):
        command = [sys.executable, "-c", launcher, str(ROOT / "steps/step07_vae/1_vae.py"), "--quick",
                   "--device", "strict", "--checkpoint", checkpoint, "--out", str(tmp_path / "figures"), *options]
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == returncode, result.stderr[-3000:]
        return result

    run("straight.npz", "--epochs", "2")
    interrupted = run("resumed.npz", "--epochs", "2", launcher=INTERRUPTING_LAUNCHER, returncode=130)   # as Ctrl-C
    assert "1_vae.py: interrupted" in interrupted.stderr and "epoch  1:" in interrupted.stdout
    assert int(np.load(tmp_path / "resumed.npz")["epoch"]) == 1
    run("resumed.npz", "--epochs", "2", "--resume")
    straight, resumed = np.load(tmp_path / "straight.npz"), np.load(tmp_path / "resumed.npz")
    weights = [name for name in straight.files if name.startswith("model/")]
    assert weights
    for name in weights:
        np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)


def test_step_10_1_interrupted_leaves_a_half_trained_referee_that_scoring_refuses_and_resume_finishes(
        real_mnist_dir, tmp_path):
    """The referee was saved only at the end (Ctrl-C lost the run): it is saved after every epoch
    now, marked half-trained until the last, which the scoring scripts refuse (check_classifier), and
    --resume finishes it into the classifier of an uninterrupted run (on the strict device, as step 7's)."""
    script = ROOT / "steps/step10_conditional_diffusion/1_classifier.py"
    env = _script_env(script, ZERO_DEVICE="cpu")

    def run(checkpoint, *options, launcher=STRICT_LAUNCHER, returncode=0):
        command = [sys.executable, "-c", launcher, str(script), "--quick", "--device", "strict", "--epochs", "2",
                   "--checkpoint", checkpoint, "--out", str(tmp_path / "figures"), *options]
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == returncode, result.stderr[-3000:]
        return result

    run("straight.npz")
    # the quick run's 512 images in batches of 64: the 9th loss is epoch 2's first batch
    launcher = _interrupting_launcher("zero", "functions", "softmax_cross_entropy", 9)
    interrupted = run("resumed.npz", launcher=launcher, returncode=130)
    assert "classifier epoch 1/2" in interrupted.stdout and "classifier epoch 2/2" not in interrupted.stdout
    with pytest.raises(CheckpointRefused, match="half-trained: saved after epoch 1 of 2") as refused:
        check_classifier(tmp_path / "resumed.npz")
    # the command the refusal gives, run as it says (on the strict device, as the others), finishes it
    command = shlex.split(re.search(r"Finish it \((python .*?)\)", str(refused.value)).group(1))
    assert command[:2] == ["python", "steps/step10_conditional_diffusion/1_classifier.py"]
    finish = [sys.executable, "-c", STRICT_LAUNCHER, str(ROOT / command[1]), *command[2:], "--device", "strict"]
    result = subprocess.run(finish, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from" in result.stdout and "classifier epoch 2/2" in result.stdout
    check_classifier(tmp_path / "resumed.npz")
    straight, resumed = np.load(tmp_path / "straight.npz"), np.load(tmp_path / "resumed.npz")
    weights = [name for name in straight.files if name.startswith("model/")]
    assert weights
    for name in weights:
        np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)


def test_the_scripts_that_train_or_sample_take_their_device_from_zero_device(tmp_path):
    """run_all.py --device cuda sets ZERO_DEVICE; the scripts that only sample (9.3, 10.3) must follow
    it too, or a GPU run of the course samples 1000-step chains on the CPU."""
    assert {"3_ddim.py", "3_sample_quality.py"} <= {p.name for p in DEVICE_SCRIPTS}
    for script in DEVICE_SCRIPTS:
        text = script.read_text(encoding="utf-8")
        assert 'add_argument("--device"' not in text, f"{script} defines --device itself, not by zero.cli"


def test_a_script_offers_seed_exactly_when_it_uses_one():
    """No dead option: ten scripts that draw no random numbers offered --seed, which changed nothing."""
    offered = {path: "--seed" in text for path, text in help_texts(STEP_SCRIPTS).items()}
    used = {str(path): "args.seed" in path.read_text(encoding="utf-8") for path in STEP_SCRIPTS}
    assert offered == used


def test_a_script_offers_data_dir_exactly_when_it_reads_mnist():
    """No dead option: --data-dir is in a script's --help when the script reads MNIST (its
    '# needs: mnist' mark), and only then (step 13's flows offered one and never read it)."""
    offered = {path: "--data-dir" in text for path, text in help_texts(STEP_SCRIPTS).items()}
    wrong = [f"{path}: offers --data-dir {has}, reads MNIST {_needs_mnist(Path(path))}"
             for path, has in offered.items() if has != _needs_mnist(Path(path))]
    assert len(offered) == len(STEP_SCRIPTS) and not wrong, wrong


# Runs a step script recording the title of every axes it draws, printed as JSON after "TITLES ".
TITLE_RECORDER = _launcher("""import json
from matplotlib.axes import Axes
titles, set_title = [], Axes.set_title
def record(self, label, *args, **kwargs):
    titles.append(str(label))
    return set_title(self, label, *args, **kwargs)
Axes.set_title = record""", after='print("TITLES " + json.dumps(titles))')


def test_step_8s_sample_figure_quotes_each_models_own_held_out_bound(tmp_path):
    """The side-by-side samples of step 8 carry each model's held-out IWAE in their titles, in the
    order printed: step 7's VAE, the VAE of the same width and lr, the hierarchical VAE (its panel
    once showed the matched VAE's number; then the matched VAE had no panel, and step 7's 0.8-nat
    gap read as the hierarchy's win)."""
    script = ROOT / "steps/step08_hierarchical_vae/1_hierarchical_vae.py"
    command = [sys.executable, "-c", TITLE_RECORDER, str(script), "--quick", "--out", str(tmp_path / "figures")]
    result = subprocess.run(command, cwd=tmp_path, env=_script_env(script), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = [float(value) for value in re.findall(r"IWAE \(K=\d+\) (-?[\d.]+)", result.stdout)]
    assert len(printed) == 3, result.stdout          # step 7's VAE, the VAE at the same lr, the hierarchical VAE
    titles = json.loads(result.stdout.split("TITLES ", 1)[1])
    quoted = {title.split("\n")[0]: float(re.search(r"IWAE (-?[\d.]+) nats", title).group(1))
              for title in titles if "IWAE" in title}
    assert list(quoted.values()) == [round(value, 2) for value in printed], (quoted, printed)
    first_lines = list(quoted)
    assert first_lines[0].startswith("step 7's VAE") and first_lines[1].startswith("VAE of the same width and lr")
    assert first_lines[2].startswith("hierarchical VAE"), first_lines
    gaps = re.findall(r"hierarchical VAE minus .*: [+-][\d.]+ nats \(-ELBO\), [+-][\d.]+ \(IWAE\) per image "
                      r"\(standard errors over the images (\d+\.\d+), (\d+\.\d+)\)", result.stdout)
    assert len(gaps) == 2, result.stdout             # each difference with its paired error (bound_difference)


def test_every_script_path_in_the_docs_exists():
    """Commands that README.md, MEASUREMENTS.md, the step scripts and the benchmarks tell a reader to
    run name real files (a renamed script must not leave a dead command behind)."""
    documents = [ROOT / "README.md", ROOT / "MEASUREMENTS.md", *STEP_SCRIPTS,
                 *sorted((ROOT / "benchmarks").glob("*.py"))]
    named = set()
    for document in documents:
        named.update(re.findall(r"(?:steps|benchmarks)/[\w/]+\.py", document.read_text(encoding="utf-8")))
    assert named, "no script paths found: the pattern is broken"
    missing = sorted(path for path in named if not (ROOT / path).is_file())
    assert not missing, f"named in the docs but missing: {missing}"


def test_a_script_resumed_with_other_options_stops_and_one_with_the_same_continues(tmp_path):
    """Step 13.1 saved with noise 0.05: --resume --noise 0.1 would train on other data, so it stops,
    saying which option differs; --resume with the same options continues from epoch 2 (--quick
    fixes the epochs at 2, so nothing is left to train)."""
    def run(*options):
        return _run_quick("step13_appendix_flow/1_two_moons.py", tmp_path, *options)

    assert run().returncode == 0
    refused = run("--resume", "--noise", "0.1")
    assert refused.returncode != 0 and "--noise 0.05 (now 0.1)" in refused.stderr
    resumed = run("--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout and "after epoch 2" in resumed.stdout


def test_a_run_started_again_without_resume_keeps_the_earlier_run_which_resume_continues(tmp_path):
    """Step 13.1 trained with noise 0.05, then started again without --resume with noise 0.1: the
    earlier run is kept as <name>_previous.npz (said before training), and --resume --checkpoint on
    that file continues it (its own settings: noise 0.05) from epoch 2, while the new run has its file."""
    def run(*options):
        return _run_quick("step13_appendix_flow/1_two_moons.py", tmp_path, *options)

    checkpoint = tmp_path / "checkpoints/quick/step13_appendix_flow_1_two_moons.npz"
    previous = checkpoint.with_name("step13_appendix_flow_1_two_moons_previous.npz")
    assert run().returncode == 0
    earlier = checkpoint.read_bytes()
    again = run("--noise", "0.1")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.startswith(f"{checkpoint.relative_to(tmp_path)} holds an earlier run: this run starts over")
    assert previous.read_bytes() == earlier and checkpoint.read_bytes() != earlier
    resumed = run("--resume", "--checkpoint", str(previous))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {previous} after epoch 2" in resumed.stdout


@pytest.mark.parametrize("steps, message", [
    ("14", "there is no step 14; the steps are 1-13"),
    ("0,2", "there is no step 0"),
    ("3-1", "the range '3-1' runs backwards"),
    ("a", "expected step numbers like '1-5' or '6,7', got 'a'"),
])
def test_run_all_refuses_steps_that_select_nothing_or_do_not_exist(steps, message, tmp_path):
    """--steps 14 or 3-1 ran nothing and printed 'All steps done'; 'a' ended in a traceback."""
    result = subprocess.run([sys.executable, str(ROOT / "steps" / "run_all.py"), "--quick", "--steps", steps],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "===" not in result.stdout   # nothing ran


@pytest.mark.parametrize("script, options, message", [
    ("step10_conditional_diffusion/2_conditional_ddpm.py", ["--eta", "2"], "--eta must lie in [0, 1], got 2.0"),
    ("step09_diffusion/3_ddim.py", ["--ddim-steps", "10,0"], "--ddim-steps: every value must be at least 1"),
    ("step09_diffusion/3_ddim.py", ["--ddim-steps", "10,1001"], "--ddim-steps: every value must be at most 1000"),
    ("step09_diffusion/2_ddpm.py", ["--channels", "4,8"], "--channels: expected 3 values separated by commas"),
    ("step10_conditional_diffusion/2_conditional_ddpm.py", ["--channels", "4,8"], "--channels: expected 3 values"),
    ("step09_diffusion/2_ddpm.py", ["--channels", "4,0,8"], "--channels: every value must be at least 1"),
    ("step10_conditional_diffusion/2_conditional_ddpm.py", ["--sampler", "ddpm", "--eta", "0.5"],
     "--eta applies only to the ddim sampler, but this run samples with ddpm"),
    ("step09_diffusion/2_ddpm.py", ["--config", "book"], "--config book does not apply with --quick"),
    ("step10_conditional_diffusion/2_conditional_ddpm.py", ["--config", "cpu"], "--config cpu does not apply"),
    ("step10_conditional_diffusion/3_sample_quality.py", ["--model", "missing.npz"], "--model missing.npz: no such file"),
    ("step10_conditional_diffusion/3_sample_quality.py", ["--samples", "1"], "--samples must be at least 2 here"),
    ("step12_appendix_gan/1_gan.py", ["--score-images", "1"], "--score-images must be at least 2 here"),
    ("step12_appendix_gan/2_dcgan.py", ["--heldout-limit", "1"], "--heldout-limit must be at least 2 here"),
    ("step11_appendix_autoencoder/1_autoencoder.py", ["--heldout-limit", "1"], "--heldout-limit must be at least 2"),
    ("step11_appendix_autoencoder/1_autoencoder.py", ["--latent-size", "1"], "--latent-size must be at least 2 here"),
    ("step09_diffusion/1_forward_process.py", ["--chains", "1"], "--chains must be at least 2 here"),
    ("step13_appendix_flow/1_two_moons.py", ["--points", "4"], "--points must be at least 8 here"),
    ("step13_appendix_flow/2_old_faithful.py", ["--heldout-size", "250"], "--heldout-size must lie in 2..200"),
])
def test_options_are_checked_before_any_training_or_sampling(script, options, message, tmp_path):
    """--eta 2 was refused after step 10.2's whole training, --ddim-steps 0 after step 9.3's DDPM run, one
    image for a Frechet distance after sampling or training (10.3, 12.1, 12.2)."""
    result = _run_quick(script, tmp_path, *options)
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "checkpoints").exists() and "sampling" not in result.stderr


def test_the_anomaly_step_refuses_limits_that_leave_no_unseen_digit_before_training(real_mnist_dir, tmp_path):
    """Held-out images 8000-8009 hold no 2: roc_auc failed after training."""
    result = _run_quick("step11_appendix_autoencoder/3_anomaly.py", tmp_path,
                        "--data-dir", str(real_mnist_dir), "--heldout-limit", "10")
    assert result.returncode == 2 and "the held-out ones 0 2s of 10: the score needs both kinds" in result.stderr
    assert not list(tmp_path.rglob("*.npz"))  # nothing trained


def test_the_linear_regression_step_says_when_gradient_descent_diverged(tmp_path):
    """--lr 10 printed a NaN line and the advice to iterate longer."""
    result = _run_quick("step06_neural_networks/2_linear_regression.py", tmp_path, "--lr", "10")
    assert result.returncode == 0 and "gradient descent diverged" in result.stdout
    assert "try --iters" not in result.stdout


@pytest.mark.parametrize("options, book, advice", [
    (("--iters", "100"), True, "--iters 2000 reaches it"),
    (("--iters", "200"), False, "--iters 2000 reaches it"),
    (("--lr", "0.01", "--iters", "2000"), False, "more iterations reach it"),
])
def test_the_linear_regression_step_names_the_books_count_and_its_advice_only_where_they_hold(
        tmp_path, options, book, advice):
    """'not there yet after 200 iterations, the book's number' (the book runs 100), and after
    --lr 0.01 --iters 2000, '--iters 2000 reaches it'."""
    result = _run_quick("step06_neural_networks/2_linear_regression.py", tmp_path, *options)
    assert result.returncode == 0, result.stderr[-3000:]
    verdict = next(line for line in result.stdout.splitlines() if line.startswith("exact minimum"))
    assert "not there yet" in verdict and advice in verdict
    assert ("the book's number" in verdict) == book


def test_the_vae_step_does_not_call_one_draw_a_tighter_bound(real_mnist_dir, tmp_path):
    """With K = 1 it printed 'tighter by -0.02': sampling noise, not a bound."""
    result = _run_quick("step07_vae/1_vae.py", tmp_path, "--data-dir", str(real_mnist_dir), "--iwae-samples", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "with K = 1 the -ELBO itself" in result.stdout and "tighter by" not in result.stdout


def test_a_vae_other_than_the_books_keeps_its_own_checkpoint(real_mnist_dir, tmp_path):
    """`--latent-size 2` (the docstring's suggestion) overwrote the book VAE that steps 8 and A.1 read."""
    small = ["--data-dir", str(real_mnist_dir), "--train-limit", "64", "--heldout-limit", "32", "--iwae-samples", "1"]
    for options in ([], ["--latent-size", "2"], ["--likelihood", "bernoulli"]):
        result = _run_quick("step07_vae/1_vae.py", tmp_path, *small, *options)
        assert result.returncode == 0, result.stderr[-3000:]
    saved = sorted(path.name for path in (tmp_path / "checkpoints" / "quick").glob("step07_vae_1_vae*.npz"))
    assert saved == ["step07_vae_1_vae.npz", "step07_vae_1_vae_bernoulli.npz", "step07_vae_1_vae_latent2.npz"]
    # and steps 8 and A.1 read the one of their size and likelihood (they read the book's and retrained)
    for script, options, expected in [("step08_hierarchical_vae/1_hierarchical_vae.py", ["--latent-size", "2"],
                                       "step07_vae_1_vae_latent2.npz"),
                                      ("step08_hierarchical_vae/1_hierarchical_vae.py", ["--likelihood", "bernoulli"],
                                       "step07_vae_1_vae_bernoulli.npz"),
                                      ("step11_appendix_autoencoder/1_autoencoder.py", ["--latent-size", "2"],
                                       "step07_vae_1_vae_latent2.npz")]:
        result = _run_quick(script, tmp_path, *small[:4], *options)
        assert result.returncode == 0, result.stderr[-3000:]
        assert re.search(r"VAE( \(step 7\))?: loaded \S*" + re.escape(expected), result.stdout), (script, options,
                                                                                              result.stdout[-2000:])


def test_an_autoencoder_of_another_size_keeps_its_own_checkpoint_and_a2_reads_it(real_mnist_dir, tmp_path):
    """A.1 saved every autoencoder under one name: '--latent-size 2' overwrote the default one, and A.2
    at that size read the default file, refused it (another shape) and trained its own."""
    small = ["--data-dir", str(real_mnist_dir), "--train-limit", "64", "--heldout-limit", "32"]
    for options in ([], ["--latent-size", "2"]):
        result = _run_quick("step11_appendix_autoencoder/1_autoencoder.py", tmp_path, *small, *options)
        assert result.returncode == 0, result.stderr[-3000:]
    saved = sorted(path.name for path in (tmp_path / "checkpoints" / "quick").glob("step11_*1_autoencoder*.npz"))
    assert saved == ["step11_appendix_autoencoder_1_autoencoder.npz",
                     "step11_appendix_autoencoder_1_autoencoder_latent2.npz"]
    result = _run_quick("step11_appendix_autoencoder/2_denoising.py", tmp_path, *small, "--latent-size", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"plain autoencoder: loaded \S*step11_appendix_autoencoder_1_autoencoder_latent2\.npz",
                     result.stdout), result.stdout[-2000:]


def test_the_flow_step_fits_its_mixture_until_em_converges(tmp_path):
    """With the default tol 1e-3 and seed 6, EM stopped on a plateau after 4 iterations, 0.017 nats per
    point above one Gaussian (a finished fit: 0.6), and the table called the flow better than the mixture."""
    result = _run_quick("step13_appendix_flow/2_old_faithful.py", tmp_path, "--seed", "6")
    assert result.returncode == 0, result.stderr[-3000:]
    training = {name: float(re.search(re.escape(name) + r"\s+[\d,]+\s+(-?[\d.]+)", result.stdout).group(1))
                for name in ("one Gaussian (step 3)", "Gaussian mixture, K=2 (EM)")}
    assert training["Gaussian mixture, K=2 (EM)"] > training["one Gaussian (step 3)"] + 0.3, result.stdout


def test_a_gan_resumed_past_its_epochs_is_labelled_with_the_epochs_it_holds(real_mnist_dir, tmp_path):
    """--resume --epochs 1 on a 2-epoch checkpoint labelled the scores '1 epochs'; the model holds 2."""
    small = ["--data-dir", str(real_mnist_dir), "--train-limit", "64", "--heldout-limit", "32", "--score-images", "32",
             "--head-start-steps", "0"]
    assert _run_quick("step12_appendix_gan/1_gan.py", tmp_path, *small, "--epochs", "2").returncode == 0
    result = _run_quick("step12_appendix_gan/1_gan.py", tmp_path, *small, "--epochs", "1", "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "GAN, non-saturating, 2 epochs" in result.stdout
    assert "GAN, minimax, 1 epoch " in result.stdout   # --quick trains the minimax run 1 epoch: no plural


@pytest.mark.parametrize("script, lr", [("step06_neural_networks/1_gradients.py", "0.01"),
                                        ("step06_neural_networks/2_linear_regression.py", "5"),
                                        ("step06_neural_networks/3_neural_network.py", "50")])
def test_the_gradient_descent_steps_say_when_it_diverged(script, lr, tmp_path):
    """Steps 6.1 and 6.3 printed a NaN result and nothing else (6.2 said it diverged); all three let
    NumPy warn of overflows inside zero's ops at every step before."""
    result = _run_quick(script, tmp_path, "--lr", lr, "--iters", "200")
    assert result.returncode == 0 and "gradient descent diverged" in result.stdout, result.stderr[-3000:]
    assert "RuntimeWarning" not in result.stderr
    assert "diverged" not in _run_quick(script, tmp_path, "--iters", "200").stdout   # the default lr converges


def test_a_script_resumed_from_another_scripts_checkpoint_says_the_model_type_differs(real_mnist_dir, tmp_path):
    """Step 7 resumed from step 11.1's checkpoint listed --batch-size and --lr as the differences."""
    data = ["--data-dir", str(real_mnist_dir)]
    assert _run_quick("step11_appendix_autoencoder/1_autoencoder.py", tmp_path, *data).returncode == 0
    autoencoder = tmp_path / "checkpoints" / "quick" / "step11_appendix_autoencoder_1_autoencoder.npz"
    result = _run_quick("step07_vae/1_vae.py", tmp_path, *data, "--resume", "--checkpoint", str(autoencoder))
    assert result.returncode == 2 and "holds model type Autoencoder, not VAE" in result.stderr
    assert "--batch-size" not in result.stderr and "Traceback" not in result.stderr   # the reason alone


def test_extending_a_run_whose_learning_rate_decays_is_refused_naming_the_option_that_allows_it(
        real_mnist_dir, tmp_path):
    """Step 10.2's cosine decay spans all epochs, so --resume --epochs 2 after 1 is refused: the message now
    says how to train a run that can be extended."""
    data = ["--data-dir", str(real_mnist_dir), "--train-limit", "64", "--heldout-limit", "32", "--per-class", "1"]
    assert _run_quick("step10_conditional_diffusion/2_conditional_ddpm.py", tmp_path, *data).returncode == 0
    refused = _run_quick("step10_conditional_diffusion/2_conditional_ddpm.py", tmp_path, *data,
                         "--resume", "--epochs", "2")
    assert refused.returncode != 0 and "--epochs 1 (now 2)" in refused.stderr
    assert "use --lr-decay none" in refused.stderr


def test_sample_quality_scores_models_of_the_training_split_and_names_a_damaged_one(real_mnist_dir, tmp_path):
    """Step 10.3 checks whether each U-Net and the referee may have trained on its held-out images
    (zero.training.may_have_seen_heldout, tested beside it: that needs a run on the training split, not here).
    A model trained on the training split never saw a test image, so a run on the test split scores it; a
    damaged --model is named, not a traceback (the check's first version raised one)."""
    from zero.metrics import MnistClassifier
    from zero.training import save_checkpoint
    from zero.unet import UNet
    unet, referee, damaged = tmp_path / "unet.npz", tmp_path / "referee.npz", tmp_path / "damaged.npz"
    save_checkpoint(unet, UNet(channels=(4, 8, 8), time_embed_dim=8), epoch=1, settings={"source": "train"})
    save_checkpoint(referee, MnistClassifier(), epoch=1, settings={"source": "train"})
    damaged.write_text("not a checkpoint")
    small = ["--data-dir", str(real_mnist_dir), "--source", "test", "--samples", "4", "--train-limit", "64",
             "--heldout-limit", "32", "--classifier", str(referee)]
    result = _run_quick("step10_conditional_diffusion/3_sample_quality.py", tmp_path, *small, "--model", str(unet))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"classifier: loaded {referee}" in result.stdout and "unet.npz (1 epoch)" in result.stdout
    assert "untrained" not in result.stdout
    result = _run_quick("step10_conditional_diffusion/3_sample_quality.py", tmp_path, *small, "--model", str(damaged))
    assert result.returncode == 2 and "cannot read checkpoint" in result.stderr and "damaged.npz" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_damaged_referee_is_named_without_a_traceback_and_before_training(real_mnist_dir, tmp_path):
    """A damaged --classifier: step 10.3 ended in a traceback (a damaged --model in its message alone), and
    steps 10.2, B.1 and B.2 on the test split read the file only after training their models."""
    damaged, checkpoint = tmp_path / "damaged.npz", tmp_path / "model.npz"
    damaged.write_text("not a checkpoint")
    data = ["--data-dir", str(real_mnist_dir), "--source", "test", "--train-limit", "64", "--heldout-limit", "32",
            "--classifier", str(damaged)]
    for script, options in [("step10_conditional_diffusion/3_sample_quality.py", ["--samples", "4"]),
                            ("step10_conditional_diffusion/2_conditional_ddpm.py", ["--checkpoint", str(checkpoint)]),
                            ("step12_appendix_gan/1_gan.py", ["--checkpoint", str(checkpoint)]),
                            ("step12_appendix_gan/2_dcgan.py", ["--checkpoint", str(checkpoint)])]:
        result = _run_quick(script, tmp_path, *data, *options)
        assert result.returncode == 2 and "Traceback" not in result.stderr, f"{script}: {result.stderr[-3000:]}"
        assert f"error: classifier: cannot read checkpoint {damaged}" in result.stderr
        assert "epoch" not in result.stdout and not checkpoint.exists(), script   # nothing trained


def test_the_ddim_step_refuses_a_checkpoint_it_was_given_that_does_not_exist(tmp_path):
    """In quick mode an explicit --checkpoint that did not exist was replaced by an untrained U-Net."""
    missing = tmp_path / "no_such_unet.npz"
    result = _run_quick("step09_diffusion/3_ddim.py", tmp_path, "--checkpoint", str(missing))
    assert result.returncode == 2 and f"--checkpoint {missing}: no such file" in result.stderr
    assert "untrained" not in result.stdout


# Runs a step script with no MNIST mirror to download from: a folder without the files is then a setup error.
NO_DOWNLOAD_LAUNCHER = _launcher("import zero.mnist\nzero.mnist.MIRRORS = []")


def test_a_script_without_mnist_shows_the_message_alone_and_exits_with_status_2(tmp_path):
    """A --data-dir without the MNIST files ended in a traceback before the message saying where to put them."""
    command = [sys.executable, "-c", NO_DOWNLOAD_LAUNCHER, str(ROOT / "steps" / "step07_vae" / "1_vae.py"), "--quick",
               "--out", str(tmp_path / "figures"), "--data-dir", str(tmp_path / "empty")]
    result = subprocess.run(command, cwd=tmp_path, env=dict(os.environ, MPLBACKEND="Agg"), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "1_vae.py: error: could not download MNIST file" in result.stderr
    assert f"in {tmp_path / 'empty'}: put them there" in result.stderr


def test_a_script_with_a_damaged_mnist_file_says_what_to_do_without_a_traceback(tmp_path):
    """A corrupt file in the data folder ended in a ValueError's traceback; being there, it was never
    downloaded again, and nothing said to delete it."""
    data = tmp_path / "mnist"
    data.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (data / name).write_bytes(b"\x1f\x8b cut short")   # a gzip start, then nothing
    command = [sys.executable, str(ROOT / "steps" / "step06_neural_networks" / "4_mnist.py"), "--quick",
               "--out", str(tmp_path / "figures"), "--data-dir", str(data)]
    result = subprocess.run(command, cwd=tmp_path, env=dict(os.environ, MPLBACKEND="Agg"), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert (f"4_mnist.py: error: MNIST file {data / 't10k-images-idx3-ubyte.gz'} is corrupt or truncated gzip data"
            in result.stderr) and "Delete that file and zero downloads it again" in result.stderr


# Runs a step script on a disk that fills up while a file is written.
FULL_DISK_LAUNCHER = _launcher("import errno, zero.utils\n"
                               "def full(file, arrays):\n"
                               "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
                               "zero.utils.write_npz = full")


def test_a_script_whose_checkpoint_does_not_fit_on_the_disk_names_it_without_a_traceback(tmp_path):
    """The save ended in a traceback and OSError: [Errno 28] No space left on device, naming no file."""
    checkpoint = tmp_path / "moons.npz"
    checkpoint.write_bytes(b"an older run's checkpoint")
    script = ROOT / "steps" / "step13_appendix_flow" / "1_two_moons.py"
    command = [sys.executable, "-c", FULL_DISK_LAUNCHER, str(script), "--quick", "--out", str(tmp_path / "figures"),
               "--checkpoint", str(checkpoint)]
    result = subprocess.run(command, cwd=tmp_path, env=dict(os.environ, MPLBACKEND="Agg"), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert (f"1_two_moons.py: error: cannot save {checkpoint}: No space left on device; the previous {checkpoint} "
            f"is unchanged") in result.stderr
    assert checkpoint.read_bytes() == b"an older run's checkpoint"


@pytest.mark.skipif(cuda_available(), reason="CuPy sees a GPU here: --device cuda is no error")
def test_a_script_asked_for_cuda_without_a_gpu_shows_the_message_alone_and_exits_with_status_2(tmp_path):
    """Without CuPy the message says how to install it; with CuPy but no GPU (CuPy imports without one),
    it gives CUDA's reason."""
    result = _run_quick("step13_appendix_flow/1_two_moons.py", tmp_path, "--device", "cuda")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    reason = "CuPy is not installed" if zero.backend.cupy is None else "no usable GPU was found"
    assert f"1_two_moons.py: error: argument --device: device 'cuda' requested but {reason}" in result.stderr


def test_ctrl_c_in_a_script_prints_one_line_and_exits_with_status_130():
    """Every script installs the hook with step_parser: a KeyboardInterrupt then ends it without a traceback."""
    code = "import zero.cli; zero.cli.step_parser('a step'); raise KeyboardInterrupt"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 130, result.stderr[-3000:]
    assert result.stderr.strip() == "-c: interrupted"


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs POSIX process groups to press Ctrl-C")
def test_ctrl_c_in_run_all_names_the_step_to_go_on_from(tmp_path):
    """Ctrl-C in a terminal reaches run_all and its running script (one process group): run_all says
    where it stopped and how to go on, without a traceback of its own, and exits with status 130."""
    command = [sys.executable, str(ROOT / "steps" / "run_all.py"), "--quick", "--steps", "13"]
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    # a shell's background job (pytest ... &) starts with SIGINT ignored, and its children would inherit
    # that: give run_all the default handling a terminal's foreground job has
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert process.stdout.readline().strip() == ""            # run_all's blank line before a script
        assert process.stdout.readline().startswith("=== step13_appendix_flow/1_two_moons.py")
        process.stdout.readline()   # the script's first line: it runs (a Ctrl-C as it starts could beat its hook)
        os.killpg(process.pid, signal.SIGINT)                     # the whole group, as a terminal does
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr[-3000:]
    # the script interrupted (or, if it had just finished, the next one)
    assert re.search(r"run_all: interrupted in step13_appendix_flow/[12]_\w+\.py; to go on from that step, run it "
                     r"again with --steps 13-13 \(and the other options you gave\)\n", stderr), stderr[-3000:]
    assert f'File "{ROOT / "steps" / "run_all.py"}"' not in stderr  # no traceback through run_all itself


@pytest.mark.parametrize("script, checkpoint", [("step07_vae/1_vae.py", "step07_vae_1_vae.npz"),
                                                ("step09_diffusion/2_ddpm.py", "step09_diffusion_2_ddpm.npz")])
def test_a_run_that_diverges_stops_with_a_message_and_keeps_the_checkpoint_there(real_mnist_dir, tmp_path,
                                                                                 script, checkpoint):
    """Step 7 run again with --lr 1 trained on through NaN and saved its NaN model over the book's VAE,
    which steps 8 and A.1 load; step 9.2 saved one every epoch."""
    small = ["--data-dir", str(real_mnist_dir), "--train-limit", "64", "--heldout-limit", "32"]
    assert _run_quick(script, tmp_path, *small).returncode == 0
    path = tmp_path / "checkpoints" / "quick" / checkpoint
    before = path.read_bytes()
    result = _run_quick(script, tmp_path, *small, "--lr", "1e6")
    assert result.returncode == 2, result.stderr[-3000:]
    # the loss of a batch, or (9.2's two quick batches) a batch norm's running variance at the save
    assert re.search(r"error: (epoch 1, batch \d+ of \d+: the loss is (nan|inf)|saving a checkpoint .* holds NaN or "
                     r"inf values \(training diverged\?\))", result.stderr), result.stderr
    assert "Traceback" not in result.stderr and "checkpoint saved" not in result.stdout
    assert path.read_bytes() == before


def test_the_ddpm_step_trains_on_a_single_image(real_mnist_dir, tmp_path):
    """--train-limit 1: the U-Net's shape check ran on 2 time steps for the 1 image there was (a ValueError's
    traceback before training)."""
    result = _run_quick("step09_diffusion/2_ddpm.py", tmp_path, "--data-dir", str(real_mnist_dir),
                        "--train-limit", "1", "--heldout-limit", "1", "--samples", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "input (1, 1, 28, 28) -> output (1, 1, 28, 28)" in result.stdout


@pytest.mark.parametrize("script", ["step12_appendix_gan/1_gan.py", "step12_appendix_gan/2_dcgan.py"])
@pytest.mark.parametrize("batch_size", ["1", "3"])
def test_the_gan_steps_refuse_a_batch_size_they_cannot_train_with_before_any_work(real_mnist_dir, tmp_path, script,
                                                                                 batch_size):
    """--batch-size 1 (batch norm needs two examples) or more than the training images (batches are full): B.1
    printed its gradient demo, then both ended in train_gan's ValueError and its traceback."""
    result = _run_quick(script, tmp_path, "--data-dir", str(real_mnist_dir), "--train-limit", "2", "--heldout-limit",
                        "2", "--score-images", "2", "--batch-size", batch_size)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "--batch-size must lie in 2..2 (2 training images: every batch is full" in result.stderr
    assert "gradient of G's loss" not in result.stdout and not list(tmp_path.rglob("*.npz"))   # nothing trained


@pytest.mark.parametrize("script, options", [
    ("step06_neural_networks/1_gradients.py", ["--iters", "1"]),
    ("step06_neural_networks/2_linear_regression.py", ["--iters", "1"]),
    ("step06_neural_networks/3_neural_network.py", ["--iters", "1"]),
    ("step13_appendix_flow/1_two_moons.py", ["--couplings", "1"]),
    ("step13_appendix_flow/2_old_faithful.py", ["--couplings", "1"]),
    ("step09_diffusion/3_ddim.py", ["--samples", "1", "--ddim-steps", "1"]),
    ("step07_vae/1_vae.py", ["--train-limit", "8", "--heldout-limit", "1", "--iwae-samples", "1"]),
    ("step08_hierarchical_vae/1_hierarchical_vae.py", ["--train-limit", "8", "--heldout-limit", "1",
                                                      "--iwae-samples", "1"]),
    ("step09_diffusion/2_ddpm.py", ["--train-limit", "2", "--heldout-limit", "1", "--samples", "1"]),
    ("step10_conditional_diffusion/1_classifier.py", ["--train-limit", "8", "--heldout-limit", "1"]),
    ("step11_appendix_autoencoder/3_anomaly.py", ["--train-limit", "2", "--heldout-limit", "64"]),  # one non-2 of two
], ids=lambda value: value if isinstance(value, str) else None)
def test_a_count_of_one_is_printed_in_the_singular(real_mnist_dir, tmp_path, script, options):
    """'after 1 steps', 'loss after 1 iterations', 'RealNVP with 1 couplings', 'DDIM with 1 steps: 1 images',
    'held-out (1 images', 'DDPM: 1 samples', 'on 1 images', 'the 1 training images that are not a 2'."""
    result = _run_quick(script, tmp_path, *options,
                        *(["--data-dir", str(real_mnist_dir)] if _needs_mnist(ROOT / "steps" / script) else []))
    assert result.returncode == 0, result.stderr[-3000:]
    counted = r"(?<![\d.,])1 (?:held-out |training )?(?:image|step|iteration|sample|coupling)"
    assert not re.findall(counted + r"s\b.{0,12}", result.stdout), result.stdout
    assert re.search(counted + r"\b", result.stdout), result.stdout   # a count of one was printed
    assert "1 training image that are" not in result.stdout


def test_sample_quality_says_how_many_real_images_its_reference_holds_when_they_are_fewer_than_the_samples(
        real_mnist_dir, tmp_path):
    """--samples 8 with 2 training images: the summary called the FD of sets of 2 real images 'the FD of real
    images at this size' (8), and a Frechet distance depends on the count."""
    result = _run_quick("step10_conditional_diffusion/3_sample_quality.py", tmp_path, "--data-dir", str(real_mnist_dir),
                        "--samples", "8", "--train-limit", "2", "--heldout-limit", "2", "--ddim-steps", "1",
                        "--samplers", "ddim")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "at this size" not in result.stdout
    assert "FD of real images in sets of 2, all the training images there are: " in result.stdout


def test_the_gan_steps_comparison_figure_covers_only_the_epochs_both_runs_trained(real_mnist_dir, tmp_path):
    """--minimax-epochs 3 --epochs 1: the figure was titled 'over the first 3 epochs, same start' with the
    non-saturating run's curve covering 1."""
    script = ROOT / "steps/step12_appendix_gan/1_gan.py"
    command = [sys.executable, "-c", TITLE_RECORDER, str(script), "--quick", "--out", str(tmp_path / "figures"),
               "--data-dir", str(real_mnist_dir), "--train-limit", "32", "--heldout-limit", "2", "--score-images",
               "2", "--head-start-steps", "0", "--batch-size", "32", "--g-hidden-size", "8", "--d-hidden-size", "8",
               "--epochs", "1", "--minimax-epochs", "3"]
    result = subprocess.run(command, cwd=tmp_path, env=_script_env(script), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    titles = json.loads(result.stdout.split("TITLES ", 1)[1])
    assert "D(G(z)) over the first 1 epoch, same start" in titles, titles
    assert "GAN, minimax, 3 epochs" in result.stdout   # the scores still name the epochs each run trained


def test_run_all_refuses_a_device_zero_cannot_use_before_running_any_step(tmp_path):
    """run_all.py --device cud ran steps 1-5 and then every script that takes --device refused it, one by one."""
    result = subprocess.run([sys.executable, str(ROOT / "steps" / "run_all.py"), "--quick", "--steps", "1",
                             "--device", "cud"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "run_all.py: error: argument --device:" in result.stderr, result.stderr
    assert "cud" in result.stderr and "step01" not in result.stdout and not (tmp_path / "figures").exists()


@pytest.mark.parametrize("script, message", [
    ("step09_diffusion/3_ddim.py", r"3_ddim.py: error: \S*step09_diffusion_2_ddpm.npz not found: run "
                                   r"steps/step09_diffusion/2_ddpm.py first"),
    ("step10_conditional_diffusion/3_sample_quality.py", r"3_sample_quality.py: error: no diffusion checkpoint to "
                                                         r"score: run steps/step09_diffusion/2_ddpm.py or")])
def test_a_sampling_step_without_a_trained_model_says_what_to_run_first_and_exits_with_status_2(tmp_path, script,
                                                                                                message):
    """They ended with status 1 (SystemExit), unlike every other setup message; 10.3 only after training its
    referee for about a minute."""
    command = [sys.executable, str(ROOT / "steps" / script), "--out", str(tmp_path / "figures")]
    result = subprocess.run(command, cwd=tmp_path, env=dict(os.environ, MPLBACKEND="Agg"), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and re.search(message, result.stderr), result.stderr[-2000:]
    assert "classifier epoch" not in result.stdout + result.stderr
