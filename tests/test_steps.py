"""Every course script runs end to end in quick mode: figures go to a
temporary folder, no window opens, the script exits 0."""
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, mnist_dir

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

# Runs a step script on the strict test device (zero.testing registers it; its arrays refuse to become
# NumPy arrays, as CuPy's do): a script line that copies device data to the host by accident fails here.
STRICT_LAUNCHER = """
import runpy, sys
import zero.testing
script = sys.argv[1]
sys.argv = [script] + sys.argv[2:]
runpy.run_path(script, run_name="__main__")
"""


@pytest.mark.parametrize("script", DEVICE_SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_script_with_a_device_option_runs_on_a_device_that_refuses_host_copies(script, tmp_path):
    env = _script_env(script, ZERO_DEVICE="cpu")
    command = [sys.executable, "-c", STRICT_LAUNCHER, str(script), "--quick", "--device", "strict",
               "--out", str(tmp_path / "figures")]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{script} on the strict device failed:\n{result.stderr[-5000:]}"


def test_the_scripts_that_train_or_sample_take_their_device_from_zero_device(tmp_path):
    """run_all.py --device cuda sets ZERO_DEVICE; the scripts that only sample (9.3, 10.3) must follow
    it too, or a GPU run of the course samples 1000-step chains on the CPU."""
    assert {"3_ddim.py", "3_sample_quality.py"} <= {p.name for p in DEVICE_SCRIPTS}
    for script in DEVICE_SCRIPTS:
        text = script.read_text(encoding="utf-8")
        assert 'add_argument("--device"' not in text, f"{script} defines --device itself, not by zero.cli"


def test_every_script_path_in_the_docs_exists():
    """Commands that README.md, the step scripts and the benchmarks tell a reader to run name real files
    (a renamed script must not leave a dead command behind)."""
    documents = [ROOT / "README.md", *STEP_SCRIPTS, *sorted((ROOT / "benchmarks").glob("*.py"))]
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


def test_the_vae_step_does_not_call_one_draw_a_tighter_bound(real_mnist_dir, tmp_path):
    """With K = 1 it printed 'tighter by -0.02': sampling noise, not a bound."""
    result = _run_quick("step07_vae/1_vae.py", tmp_path, "--data-dir", str(real_mnist_dir), "--iwae-samples", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "with K = 1 the -ELBO itself" in result.stdout and "tighter by" not in result.stdout
