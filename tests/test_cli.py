"""zero.cli: the step scripts' common options and where their files go."""
import argparse
import errno
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zero.cli import (add_data_dir_option, add_device_option, checkpoint_path, config_defaults, fill_from_config,
                      out_dir, parse_options, plural, running_under_ci, script_name, step_checkpoint, step_parser)
from zero.errors import SaveFailed, SetupError


def test_a_quick_run_writes_beside_a_real_runs_files_never_over_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parser = step_parser("a step", training=True)
    script = "steps/step07_vae/1_vae.py"
    real, quick = parser.parse_args([]), parser.parse_args(["--quick"])
    assert checkpoint_path(real, script) == Path("checkpoints/step07_vae_1_vae.npz")
    assert checkpoint_path(quick, script) == Path("checkpoints/quick/step07_vae_1_vae.npz")
    assert out_dir(real, script) == Path("figures/step07_vae/1_vae")
    assert out_dir(quick, script) == Path("figures/quick/step07_vae/1_vae")
    assert (tmp_path / "figures/quick/step07_vae/1_vae").is_dir() and (tmp_path / "checkpoints/quick").is_dir()
    chosen = parser.parse_args(["--quick", "--checkpoint", "mine.npz", "--out", "pictures"])
    assert checkpoint_path(chosen, script) == Path("mine.npz") and out_dir(chosen, script) == Path("pictures")
    # a run on other data keeps its own checkpoint (step 11.3: one model per digit left out)
    anomaly = "steps/step11_appendix_autoencoder/3_anomaly.py"
    assert checkpoint_path(real, anomaly, variant="_without_8") == Path(
        "checkpoints/step11_appendix_autoencoder_3_anomaly_without_8.npz")
    # and its figures beside the default run's, not over them (--out is taken as given)
    assert out_dir(real, script, "_latent2") == Path("figures/step07_vae/1_vae_latent2")
    assert out_dir(quick, anomaly, "_without_8") == Path("figures/quick/step11_appendix_autoencoder/3_anomaly_without_8")
    assert out_dir(chosen, script, "_latent2") == Path("pictures")
    # another step's checkpoint is read from the same world: a quick run reads that step's quick run
    assert step_checkpoint("step07_vae/1_vae", real) == Path("checkpoints/step07_vae_1_vae.npz")
    assert step_checkpoint("step07_vae/1_vae", quick) == Path("checkpoints/quick/step07_vae_1_vae.npz")


def test_a_training_scripts_defaults_and_extra_options_are_typed_and_settable():
    parser = step_parser("a step", training=True, seed=7, epochs=5, batch_size=64, lr=2e-4, latent_size=16)
    args = parser.parse_args([])
    assert (args.seed, args.epochs, args.batch_size, args.lr, args.latent_size) == (7, 5, 64, 2e-4, 16)
    assert not args.quick and not args.show and not args.resume
    assert args.out is None and args.checkpoint is None
    args = parser.parse_args(["--seed", "3", "--epochs", "2", "--batch-size", "4", "--lr", "0.5", "--latent-size", "8",
                              "--show", "--resume"])
    assert (args.seed, args.epochs, args.batch_size, args.lr, args.latent_size) == (3, 2, 4, 0.5, 8)
    assert isinstance(args.seed, int) and isinstance(args.lr, float) and isinstance(args.latent_size, int)
    assert args.show and args.resume


def test_a_yes_or_no_option_reads_as_one_and_refuses_a_value():
    parser = step_parser("a step", flip=False, sharpen=True)
    assert (parser.parse_args([]).flip, parser.parse_args([]).sharpen) == (False, True)
    args = parser.parse_args(["--flip", "--no-sharpen"])
    assert args.flip is True and args.sharpen is False
    with pytest.raises(SystemExit):  # type=bool would have read "False" as True
        parser.parse_args(["--flip", "False"])


def test_an_extra_option_whose_default_is_none_is_refused_by_name():
    with pytest.raises(TypeError, match="--latent-size is None"):
        step_parser("a step", latent_size=None)


@pytest.mark.parametrize("value", ["0", "-32", "3.5"])
def test_the_batch_size_must_be_a_positive_count(value, capsys):
    with pytest.raises(SystemExit):
        step_parser("a step", training=True).parse_args(["--batch-size", value])
    assert "--batch-size" in capsys.readouterr().err


def test_a_training_script_that_names_no_defaults_trains_one_epoch_of_32_image_batches_from_seed_0():
    args = step_parser("a step", training=True).parse_args([])
    assert (args.epochs, args.batch_size, args.seed) == (1, 32, 0)


def test_a_checkpoint_given_in_a_new_folder_gets_that_folder_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = step_parser("a step", training=True).parse_args(["--checkpoint", "runs/new/mine.npz"])
    assert checkpoint_path(args, "steps/step07_vae/1_vae.py") == Path("runs/new/mine.npz")
    assert (tmp_path / "runs/new").is_dir()


def test_a_run_started_again_without_resume_keeps_the_earlier_checkpoint_and_its_companions(
        tmp_path, monkeypatch, capsys):
    """Started again without --resume after a Ctrl-C in epoch 25 of 30, a run replaced those epochs with
    its own first one, silently. The earlier file (and a companion, a GAN's discriminator) is copied to
    <name>_previous.npz before training, where the copies load together; --resume copies nothing."""
    monkeypatch.chdir(tmp_path)
    def companion(path):
        return path.with_name(path.stem + "_discriminator.npz")
    parser = step_parser("a step", training=True)
    script = "steps/step12_appendix_gan/1_gan.py"
    fresh = parser.parse_args(["--checkpoint", "runs/gan.npz"])
    assert checkpoint_path(fresh, script, companions=[companion]) == Path("runs/gan.npz")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == []        # nothing there yet: nothing kept
    assert capsys.readouterr().out == ""
    (tmp_path / "runs/gan.npz").write_bytes(b"generator, epoch 25")
    (tmp_path / "runs/gan_discriminator.npz").write_bytes(b"discriminator, epoch 25")
    assert checkpoint_path(parser.parse_args(["--checkpoint", "runs/gan.npz", "--resume"]), script,
                           companions=[companion]) == Path("runs/gan.npz")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["gan.npz", "gan_discriminator.npz"]
    assert checkpoint_path(fresh, script, companions=[companion]) == Path("runs/gan.npz")
    assert (tmp_path / "runs/gan_previous.npz").read_bytes() == b"generator, epoch 25"
    assert (tmp_path / "runs/gan_previous_discriminator.npz").read_bytes() == b"discriminator, epoch 25"
    assert (tmp_path / "runs/gan.npz").read_bytes() == b"generator, epoch 25"   # replaced only by the first save
    assert capsys.readouterr().out == (
        "runs/gan.npz holds an earlier run: this run starts over and replaces it when it first saves. The earlier "
        "run is kept as runs/gan_previous.npz (to continue it instead: --resume --checkpoint runs/gan_previous.npz)\n")
    assert not list((tmp_path / "runs").glob(".*"))                           # no temporary file left


def test_an_earlier_checkpoint_that_cannot_be_kept_stops_the_run_before_training_naming_it(tmp_path, monkeypatch):
    """The disk full while copying: SaveFailed (a SetupError: the script shows its message alone), the earlier
    file unchanged, no half-written copy and no temporary file left."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.npz").write_bytes(b"epoch 25")
    def full(source, target):
        target.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(shutil, "copyfileobj", full)
    args = step_parser("a step", training=True).parse_args(["--checkpoint", "model.npz"])
    with pytest.raises(SaveFailed, match=r"^cannot save model_previous.npz: No space left on device; no file was "
                                         r"written$"):
        checkpoint_path(args, "steps/step07_vae/1_vae.py")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
    assert (tmp_path / "model.npz").read_bytes() == b"epoch 25"


@pytest.mark.parametrize("spelling", ["--{}=~/{}", "--{} ~/{}"])
def test_a_tilde_in_a_path_option_is_the_home_folder_also_where_no_shell_expands_it(spelling, tmp_path, monkeypatch):
    """--out=~/figures (and a quoted "~/figures") reach the script with the ~ in them: taken as they
    were, they made a folder named '~' in the current one. Every path option expands it now."""
    monkeypatch.setenv("HOME", str(tmp_path))
    argv = []
    for option, name in (("out", "figures"), ("checkpoint", "runs/vae.npz"), ("data-dir", "mnist")):
        argv += spelling.format(option, name).split(" ")
    args = add_data_dir_option(step_parser("a step", training=True)).parse_args(argv)
    assert (args.out, args.checkpoint, args.data_dir) == (
        tmp_path / "figures", tmp_path / "runs" / "vae.npz", tmp_path / "mnist")


def test_a_script_that_does_not_train_refuses_training_options(capsys):
    parser = step_parser("a step", iters=100)
    assert parser.parse_args(["--iters", "5"]).iters == 5
    with pytest.raises(SystemExit):
        parser.parse_args(["--epochs", "3"])
    assert "unrecognized arguments: --epochs" in capsys.readouterr().err


def test_the_device_defaults_to_zero_device(monkeypatch):
    monkeypatch.setenv("ZERO_DEVICE", "cpu:0")   # a device this machine has (the value is checked)
    assert step_parser("a step", training=True).parse_args([]).device == "cpu:0"
    assert add_device_option(step_parser("a sampling step")).parse_args([]).device == "cpu:0"
    monkeypatch.delenv("ZERO_DEVICE")
    assert step_parser("a step", training=True).parse_args([]).device == "cpu"
    assert add_device_option(step_parser("a sampling step")).parse_args([]).device == "cpu"


def test_a_default_figure_folder_is_used_unless_out_is_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parser = step_parser("a step", default_out=Path("pictures/mine"))
    assert out_dir(parser.parse_args([]), "steps/step02_mle/1_fit.py") == Path("pictures/mine")
    assert (tmp_path / "pictures/mine").is_dir()
    assert out_dir(parser.parse_args(["--out", "other"]), "steps/step02_mle/1_fit.py") == Path("other")


def test_script_name_of_a_relative_path_uses_the_real_folder(tmp_path, monkeypatch):
    folder = tmp_path / "steps" / "step07_vae"
    folder.mkdir(parents=True)
    monkeypatch.chdir(folder)
    assert script_name("1_vae.py") == "step07_vae/1_vae"


def test_the_data_dir_help_names_the_folders_zero_mnist_reads():
    # the help text writes them out (importing zero.mnist would slow every script's start-up)
    from zero import mnist
    from zero.cli import add_data_dir_option
    parser = add_data_dir_option(argparse.ArgumentParser())
    help_text = " ".join(parser.format_help().split())
    for name in (f"${mnist.ENV_VAR}", str(mnist.DEFAULT_DIR)):  # each whole: not followed by more of a name
        assert re.search(re.escape(name) + r"(?![\w/])", help_text), (name, help_text)


def test_help_gives_every_options_default_and_for_config_options_each_configs_value():
    """About 60 options of the step scripts printed no default and no description (--epochs, --lr,
    --gammas): a student could not tell from --help that step 7 trains 30 epochs."""
    parser = step_parser("a step", training=True, epochs=30, lr=3e-4, gammas="0,1,3,5", flip=False)
    parser.add_argument("--per-class", type=int, default=8)
    parser.add_argument("--sampler", default=None, choices=["ddpm", "ddim"], help="how to sample")
    help_text = " ".join(parser.format_help().split())   # argparse wraps lines at the terminal's width
    for expected in ("--epochs EPOCHS passes over the training images (default: 30)",
                     "--batch-size BATCH_SIZE images per optimizer step (default: 32)",
                     "--seed SEED random seed (default: 0)", "--lr LR default: 0.0003",
                     "--gammas GAMMAS default: 0,1,3,5", "--per-class PER_CLASS default: 8"):
        assert expected in help_text
    assert help_text.endswith("--sampler {ddpm,ddim} how to sample")   # no default to give: nothing added
    assert "--quick tiny, fast run (used by the test suite) --out" in help_text   # a switch's False is not shown
    assert help_text.count("(default:") == 5 and "None" not in help_text
    configs = {"cpu": dict(epochs=10, batch_size=32, train_limit=8000), "book": dict(epochs=10, batch_size=128,
                                                                                    train_limit=None)}
    config_defaults(parser, configs)
    parser.add_argument("--train-limit", type=int, help="use only the first N training images")
    config_defaults(parser, configs)
    assert (parser.get_default("epochs"), parser.get_default("batch_size"), parser.get_default("train_limit")) == (
        None, None, None)
    help_text = " ".join(parser.format_help().split())
    assert "--epochs EPOCHS passes over the training images (by --config: cpu 10, book 10)" in help_text
    assert "--batch-size BATCH_SIZE images per optimizer step (by --config: cpu 32, book 128)" in help_text
    assert "--train-limit TRAIN_LIMIT use only the first N training images (by --config: cpu 8000, book none)" in help_text
    assert " ".join(parser.format_help().split()) == help_text   # formatting twice adds nothing


def test_help_keeps_the_docstring_layout():
    description = "Step 2.1: fit a normal distribution.\n\n    x = load_heights()\n    mu, sigma = normal_mle(x)\n"
    assert "    x = load_heights()\n    mu, sigma = normal_mle(x)" in step_parser(description).format_help()


@pytest.mark.parametrize("value, expected", [("true", True), ("TRUE", True), ("1", True), ("yes", True),
                                             ("", False), ("0", False), ("false", False), (None, False)])
def test_running_under_ci_reads_the_ci_variable(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert running_under_ci() is expected


def test_quick_sets_defaults_that_options_given_on_the_command_line_override(monkeypatch):
    """--quick --epochs 3 once trained 1 epoch: the quick values replaced what was typed."""
    parser = step_parser("doc", training=True, epochs=30, train_limit=0)
    quick = dict(epochs=1, train_limit=512)
    for argv, expected in [([], (30, 0)), (["--quick"], (1, 512)), (["--quick", "--epochs", "3"], (3, 512)),
                           (["--epochs", "3"], (3, 0))]:
        monkeypatch.setattr("sys.argv", ["script.py", *argv])
        args = parse_options(parser, quick=quick)
        assert (args.epochs, args.train_limit) == expected, argv
        parser.set_defaults(epochs=30, train_limit=0)  # a script parses once; the test reuses the parser
    monkeypatch.setattr("sys.argv", ["script.py", "--quick"])
    with pytest.raises(ValueError, match=r"quick sets \['epoch'\]"):
        parse_options(step_parser("doc", training=True), quick=dict(epoch=1))


def test_comma_list_reads_numbers_and_names_the_option_when_it_cannot(capsys):
    from zero.cli import comma_list
    parser = step_parser("a step")
    assert comma_list(parser, "32,64,128", int, "--channels") == [32, 64, 128]
    assert comma_list(parser, "0,1.5", float, "--gammas") == [0.0, 1.5]
    with pytest.raises(SystemExit):
        comma_list(parser, "32,x", int, "--channels")
    expected = "--channels: expected whole numbers separated by commas, e.g. 10,20,50; got '32,x'"
    assert expected in capsys.readouterr().err
    assert comma_list(parser, "1,10", int, "--ddim-steps", minimum=1) == [1, 10]
    with pytest.raises(SystemExit):
        comma_list(parser, "10,0", int, "--ddim-steps", minimum=1)
    assert "--ddim-steps: every value must be at least 1, got '10,0'" in capsys.readouterr().err


def test_comma_list_refuses_values_above_the_maximum_or_another_count_naming_the_option(capsys):
    """--ddim-steps 1001 was printed as 1001 steps though 1000 were run; --channels 4,8 ended in a traceback."""
    from zero.cli import comma_list
    parser = step_parser("a step")
    assert comma_list(parser, "10,1000", int, "--ddim-steps", minimum=1, maximum=1000) == [10, 1000]
    with pytest.raises(SystemExit):
        comma_list(parser, "10,1001", int, "--ddim-steps", minimum=1, maximum=1000)
    assert "--ddim-steps: every value must be at most 1000, got '10,1001'" in capsys.readouterr().err
    assert comma_list(parser, "4,8,8", int, "--channels", length=3) == [4, 8, 8]
    with pytest.raises(SystemExit):
        comma_list(parser, "4,8", int, "--channels", length=3)
    assert "--channels: expected 3 values separated by commas, got 2 in '4,8'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        comma_list(parser, "4,8,8,16", int, "--channels", length=3)   # one too many is refused too
    assert "--channels: expected 3 values separated by commas, got 4 in '4,8,8,16'" in capsys.readouterr().err


def test_comma_list_without_a_maximum_or_length_takes_any_size_and_count():
    from zero.cli import comma_list
    assert comma_list(step_parser("a step"), "5000,1,2,3", int, "--ddim-steps", minimum=1) == [5000, 1, 2, 3]


@pytest.mark.parametrize("value", ["0", "-2"])
def test_an_int_extra_option_is_a_count_of_at_least_one(value, capsys):
    """--chains 0 or --iters 0 ended in an IndexError deep in the script."""
    parser = step_parser("a step", samples=16, lr=0.1)
    assert parser.parse_args(["--samples", "3", "--lr", "0.5"]).samples == 3
    with pytest.raises(SystemExit):
        parser.parse_args(["--samples", value])
    assert f"argument --samples: must be at least 1, got {value}" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--lr", "-1"], "argument --lr: must be greater than 0, got -1"),
    (["--lr", "0"], "argument --lr: must be greater than 0, got 0"),
    (["--lr", "nan"], "argument --lr: must be a finite number, got 'nan'"),
    (["--noise-std", "inf"], "argument --noise-std: must be a finite number, got 'inf'"),
    (["--noise-std", "-0.1"], "argument --noise-std: must be at least 0, got -0.1"),
    (["--lr", "fast"], "argument --lr: expected a number, got 'fast'"),
])
def test_a_float_extra_option_is_a_finite_amount_and_the_learning_rate_positive(argv, message, capsys):
    """--lr -1 ended in a traceback from Adam after the data had loaded; --noise-std nan trained on NaN."""
    parser = step_parser("a step", training=True, lr=0.1, noise_std=0.5)
    args = parser.parse_args(["--lr", "1e-3", "--noise-std", "0"])
    assert (args.lr, args.noise_std) == (1e-3, 0.0)
    with pytest.raises(SystemExit):
        parser.parse_args(argv)
    assert message in capsys.readouterr().err


# --- from a mutation audit of zero/cli.py and steps/run_all.py -------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]


def test_a_count_of_one_is_accepted(capsys):
    parser = step_parser("a step", training=True, samples=16)
    args = parser.parse_args(["--batch-size", "1", "--samples", "1"])
    assert (args.batch_size, args.samples) == (1, 1)


def test_a_count_that_is_not_a_number_is_refused_saying_what_was_expected(capsys):
    with pytest.raises(SystemExit):
        step_parser("a step", training=True).parse_args(["--batch-size", "ten"])
    assert "argument --batch-size: expected a whole number, got 'ten'" in capsys.readouterr().err


@pytest.mark.parametrize("training", [True, False])
def test_the_seed_is_a_whole_number_numpy_takes_not_a_count(training, capsys):
    """-1 and 2^32 ended in NumPy's seed error; 2^32 - 1 after training, where a script adds 1."""
    parser = step_parser("a step", training=training, seed=7)
    assert parser.parse_args(["--seed", "0"]).seed == 0
    assert parser.parse_args(["--seed", str(2 ** 31 - 1)]).seed == 2 ** 31 - 1
    for bad, message in (("-1", "must lie in 0 .. 2^31 - 1, got -1"),
                         (str(2 ** 31), f"must lie in 0 .. 2^31 - 1, got {2 ** 31}"),
                         ("x", "expected a whole number, got 'x'")):
        with pytest.raises(SystemExit):
            parser.parse_args(["--seed", bad])
        assert f"--seed: {message}" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["32,,64", "32,", ",32", "", " "])
def test_comma_list_refuses_empty_items(text, capsys):
    from zero.cli import comma_list
    with pytest.raises(SystemExit):
        comma_list(step_parser("a step"), text, int, "--channels")
    assert "--channels: expected whole numbers" in capsys.readouterr().err


def test_comma_list_of_floats_names_numbers_and_a_float_example(capsys):
    from zero.cli import comma_list
    with pytest.raises(SystemExit):
        comma_list(step_parser("a step"), "0,x", float, "--gammas")
    assert "--gammas: expected numbers separated by commas, e.g. 0,1.5,3; got '0,x'" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["0,nan", "inf", "3,-inf", "1e999"])
def test_comma_list_of_floats_refuses_a_value_that_is_not_finite_naming_the_option(text, capsys):
    """Single-number options refuse NaN and inf as they are read, but a list took them: NaN passes
    `min(values) < minimum`, so step 10.2's --gammas 0,nan trained the whole U-Net and only then
    failed in the guidance check, with a traceback. (Found by a helper's mutation audit.)"""
    from zero.cli import comma_list
    with pytest.raises(SystemExit):
        comma_list(step_parser("a step"), text, float, "--gammas", minimum=0)
    assert f"--gammas: every value must be a finite number, got {text!r}" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--bogus"], ["--quick", "--bogus"]])
def test_parse_options_refuses_an_unknown_option_with_or_without_quick(argv, monkeypatch, capsys):
    parser = step_parser("doc", training=True, epochs=30)
    monkeypatch.setattr("sys.argv", ["script.py", *argv])
    with pytest.raises(SystemExit):
        parse_options(parser, quick=dict(epochs=1))
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_options_without_a_quick_attribute_use_the_real_runs_folders():
    from argparse import Namespace
    assert step_checkpoint("step07_vae/1_vae", Namespace()) == Path("checkpoints/step07_vae_1_vae.npz")


def test_a_script_run_twice_reuses_its_figure_and_checkpoint_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = step_parser("a step", training=True).parse_args(["--quick"])
    script = "steps/step07_vae/1_vae.py"
    assert out_dir(args, script) == out_dir(args, script) == Path("figures/quick/step07_vae/1_vae")
    assert checkpoint_path(args, script) == checkpoint_path(args, script)


def test_checkpoint_path_creates_the_folder_but_not_the_file(tmp_path, monkeypatch):
    """A folder made where the checkpoint file goes would make its save fail."""
    monkeypatch.chdir(tmp_path)
    for argv in ([], ["--checkpoint", "runs/new/mine.npz"]):
        path = checkpoint_path(step_parser("a step", training=True).parse_args(argv), "steps/step07_vae/1_vae.py")
        assert path.parent.is_dir() and not path.exists()


def test_a_checkpoint_path_that_is_a_folder_is_refused_before_training(tmp_path, monkeypatch):
    """It failed with IsADirectoryError when the trained model was saved."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(SetupError, match=r"--checkpoint runs is a folder: give a file in it, e.g. runs/model.npz"):
        checkpoint_path(step_parser("a step", training=True).parse_args(["--checkpoint", "runs"]), "steps/x/1_a.py")


def test_a_checkpoint_or_figure_folder_that_cannot_be_written_is_refused_before_any_work(tmp_path, monkeypatch):
    """--checkpoint under a file trained the whole run, then failed to save it (naming a temporary file)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("")
    args = step_parser("a step", training=True).parse_args(["--checkpoint", "a_file/run.npz", "--out", "a_file/figs"])
    with pytest.raises(SetupError, match=r"--checkpoint a_file/run.npz: a_file is a file, not a folder"):
        checkpoint_path(args, "steps/x/1_a.py")
    with pytest.raises(SetupError, match=r"figures \(--out\): a_file is a file, not a folder"):
        out_dir(args, "steps/x/1_a.py")


def test_the_help_says_where_a_quick_run_writes():
    help_text = " ".join(step_parser("a step", training=True).format_help().split())
    assert "figures/quick/<script> with --quick" in help_text
    assert "under checkpoints/quick/ with --quick" in help_text
    assert "default: $ZERO_DEVICE or cpu" in help_text


def _run_all():
    import runpy
    return runpy.run_path(str(ROOT / "steps" / "run_all.py"))


def test_run_all_reads_step_ranges_and_lists():
    parse_range = _run_all()["parse_range"]
    assert parse_range("1-3,5") == {1, 2, 3, 5}
    assert parse_range("4") == {4} and parse_range("2-2") == {2}
    assert parse_range("9,7-8,8") == {7, 8, 9}


@pytest.mark.parametrize("text", ["", "1,", "-3", "2-1", "1-3-5", "x-2"])
def test_run_all_refuses_a_malformed_or_reversed_range(text):
    with pytest.raises(argparse.ArgumentTypeError):
        _run_all()["parse_range"](text)


def test_run_all_refuses_an_open_ended_range():
    """parse_range read '7-' as step 7 alone (int(high or low)), so --steps 7- ran one step."""
    with pytest.raises(argparse.ArgumentTypeError):
        _run_all()["parse_range"]("7-")


def test_run_all_numbers_steps_by_their_folder_and_puts_an_unnumbered_folder_last():
    step_number = _run_all()["step_number"]
    assert step_number(Path("step07_vae")) == 7
    assert step_number(Path("step11_appendix_autoencoder")) == 11
    assert step_number(Path("step3_short")) == 3
    assert step_number(Path("steps_extra")) == 99


@pytest.fixture
def fake_course(tmp_path, monkeypatch):
    """run_all's main() on a made-up steps folder, with run_script recorded instead of run (each script
    reports a peak memory of 10 MB times its place in the run): returns
    (run(argv, failing=()) -> exit code, calls as (script relative to the folder, its options, its env))."""
    steps = tmp_path / "steps"
    for name in ["step01_first/2_b.py", "step01_first/1_a.py", "step01_first/_shared.py", "step2_second/1_c.py",
                 "step10_tenth/1_d.py", "step11_appendix_extra/1_e.py"]:
        (steps / name).parent.mkdir(parents=True, exist_ok=True)
        (steps / name).write_text("raise SystemExit('not to be run')\n")
    (steps / "step03_not_a_folder.py").write_text("")
    main = _run_all()["main"]
    monkeypatch.setitem(main.__globals__, "STEPS_DIR", steps)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZERO_AUDIT_KEPT", "yes")
    monkeypatch.delenv("ZERO_DEVICE", raising=False)
    monkeypatch.delenv("ZERO_DATA_DIR", raising=False)
    calls = []

    def run(argv, failing=(), memory=True):
        def fake_run_script(command, env):
            script = Path(command[1]).relative_to(steps).as_posix()
            calls.append((command[0], script, command[2:], env))
            return (1 if script in failing else 0), (10.0 * len(calls) if memory else None)
        monkeypatch.setitem(main.__globals__, "run_script", fake_run_script)
        monkeypatch.setattr("sys.argv", ["run_all.py", *argv])
        try:
            main()
        except SystemExit as exit:
            return exit.code
        return 0
    return run, calls


def test_run_all_runs_the_chosen_steps_in_order_quick_on_the_device_with_the_data_folder(fake_course, capsys):
    run, calls = fake_course
    assert run(["--steps", "10-11,1", "--quick", "--device", "strict", "--data-dir", "mnist"]) == 0
    assert [script for _, script, _, _ in calls] == [
        "step01_first/1_a.py", "step01_first/2_b.py", "step10_tenth/1_d.py", "step11_appendix_extra/1_e.py"]
    for executable, _, options, env in calls:
        assert executable == sys.executable and options == ["--quick"]
        assert env["ZERO_DEVICE"] == "strict" and env["ZERO_AUDIT_KEPT"] == "yes"
        assert env["ZERO_DATA_DIR"] == str(Path("mnist").resolve())
    out = capsys.readouterr().out
    assert "--- step01_first/1_a.py: ok in " in out and " s, peak memory 10 MB\n" in out
    assert re.search(r"All steps done: 4 scripts ok in \d+\.\d s\. The most memory a script took: 40 MB "
                     r"\(step11_appendix_extra/1_e.py\)\. Figures are in figures/quick/\.", out)


def test_run_all_expands_a_tilde_in_the_data_folder(fake_course, monkeypatch, tmp_path):
    """--data-dir=~/mnist reaches the program with its ~: resolved as it was, it named ./~/mnist."""
    monkeypatch.setenv("HOME", str(tmp_path))
    run, calls = fake_course
    assert run(["--steps", "1", "--data-dir=~/mnist"]) == 0
    assert {env["ZERO_DATA_DIR"] for _, _, _, env in calls} == {str(tmp_path / "mnist")}


def test_run_all_without_options_runs_every_step_in_step_order_with_their_defaults(fake_course, capsys):
    run, calls = fake_course
    assert run([]) == 0
    assert [script for _, script, _, _ in calls] == [
        "step01_first/1_a.py", "step01_first/2_b.py", "step2_second/1_c.py", "step10_tenth/1_d.py",
        "step11_appendix_extra/1_e.py"]
    assert all(options == [] and "ZERO_DEVICE" not in env and "ZERO_DATA_DIR" not in env
               for _, _, options, env in calls)
    calls.clear()
    assert run(["--device", "strict", "--steps", "2"], memory=False) == 0   # the device without --quick too
    assert [(script, env["ZERO_DEVICE"]) for _, script, _, env in calls] == [("step2_second/1_c.py", "strict")]
    out = capsys.readouterr().out.split("\n=== step2_second")[-1]   # the second run's output
    assert "Figures are in figures/." in out and "memory" not in out   # where the OS does not say (Windows)


@pytest.mark.skipif(not hasattr(os, "wait4"), reason="os.wait4 is POSIX only (the Windows path is tested below)")
def test_run_all_runs_a_script_and_measures_its_own_peak_memory(tmp_path):
    """Each script's peak memory is its own (os.wait4 on its process), not the largest of the run so far:
    a small script after a large one reports its small peak. Measured from a small process, as run_all
    is: Linux counts the memory of the process a script was started from in the script's peak."""
    large, small = tmp_path / "large.py", tmp_path / "small.py"
    large.write_text("import numpy as np\nx = np.ones(40_000_000)\nraise SystemExit(3)\n")   # 320 MB touched
    small.write_text("pass\n")
    measure = (f"import os, runpy, sys\n"
               f"run_script = runpy.run_path({str(ROOT / 'steps' / 'run_all.py')!r})['run_script']\n"
               f"for script in {[str(large), str(small)]!r}:\n"
               f"    print(*run_script([sys.executable, script], dict(os.environ)))\n")
    result = subprocess.run([sys.executable, "-c", measure], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    (large_status, large_mb), (small_status, small_mb) = [line.split() for line in result.stdout.splitlines()]
    assert large_status == "3" and float(large_mb) > 320
    assert small_status == "0" and 1 < float(small_mb) < 100


def test_run_all_without_os_wait4_runs_the_script_and_reports_no_memory(tmp_path, monkeypatch):
    """Windows has no os.wait4: the script still runs and its exit status is kept; the memory is None."""
    run_script = _run_all()["run_script"]
    script = tmp_path / "script.py"
    script.write_text("raise SystemExit(3)\n")
    monkeypatch.delattr(os, "wait4", raising=False)
    assert run_script([sys.executable, str(script)], dict(os.environ)) == (3, None)


def test_run_all_gives_durations_in_seconds_under_a_minute_else_in_minutes():
    duration = _run_all()["duration"]
    assert (duration(1.23), duration(59.94), duration(2094)) == ("1.2 s", "59.9 s", "34.9 minutes")


def test_run_all_goes_on_after_a_failing_script_and_ends_naming_it_with_exit_code_1(fake_course, capsys):
    run, calls = fake_course
    assert run(["--steps", "1-2"], failing={"step01_first/1_a.py"}) == 1
    assert len(calls) == 3
    out = capsys.readouterr().out
    assert re.search(r"1 of 3 scripts failed \(\d+\.\d s in all\):\n  step01_first/1_a.py\n", out + "\n")
    assert "All steps done" not in out
    assert "--- step01_first/1_a.py: FAILED" in out and "--- step01_first/2_b.py: ok" in out


def test_zero_epochs_are_refused_rather_than_saving_an_untrained_checkpoint(capsys):
    """--epochs 0 trained nothing and still wrote the untrained model as the step's checkpoint,
    which later steps would have read as trained."""
    with pytest.raises(SystemExit):
        step_parser("a step", training=True).parse_args(["--epochs", "0"])
    assert "argument --epochs: must be at least 1, got 0" in capsys.readouterr().err


def test_plural_puts_one_in_the_singular():
    """Scripts printed 'trained 1 epochs'."""
    assert [plural(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]


def test_plural_formats_the_count_as_told():
    """Counts of images print with thousands separators ('2,000 images'), step counts in a column ('   1 step')."""
    assert [plural(n, "image", ",") for n in (1, 2000)] == ["1 image", "2,000 images"]
    assert plural(1, "step", "4d") == "   1 step"


def _config_parser():
    parser = step_parser("a step", training=True)
    parser.add_argument("--config", default=None, choices=["cpu", "book"])
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--eta", type=float, default=None)
    return parser


CONFIGS = {"cpu": dict(lr=1e-3, eta=1.0), "book": dict(lr=1e-4, eta=0.0)}


@pytest.mark.parametrize("argv, config, lr, eta, given", [
    ([], "cpu", 1e-3, 1.0, set()),
    (["--config", "book", "--lr", "0.5"], "book", 0.5, 0.0, {"lr"}),
    (["--quick", "--eta", "0.5"], "quick", 2e-3, 0.5, {"eta"}),   # saved 'cpu' in its settings before
])
def test_fill_from_config_fills_what_was_not_given_and_says_what_was(argv, config, lr, eta, given, monkeypatch):
    parser = _config_parser()
    monkeypatch.setattr(sys, "argv", ["step.py", *argv])
    args = parse_options(parser)
    assert fill_from_config(parser, args, CONFIGS, quick=dict(lr=2e-3, eta=1.0)) == given
    assert (args.config, args.lr, args.eta) == (config, lr, eta)


def test_quick_with_a_config_is_refused_naming_the_option(monkeypatch, capsys):
    """--quick --config book silently trained the quick sizes."""
    parser = _config_parser()
    monkeypatch.setattr(sys, "argv", ["step.py", "--quick", "--config", "book"])
    with pytest.raises(SystemExit) as exit_:
        fill_from_config(parser, parse_options(parser), CONFIGS, quick=dict(lr=2e-3, eta=1.0))
    assert exit_.value.code == 2
    assert "--config book does not apply with --quick, which uses its own tiny sizes" in capsys.readouterr().err


@pytest.mark.parametrize("raised, status, shown, hidden", [
    ("SetupError('no MNIST files in /data')", 2, "step.py: error: no MNIST files in /data", "Traceback"),
    ("CheckpointRefused('checkpoint c.npz holds model type VAE')", 2, "step.py: error: checkpoint c.npz holds",
     "Traceback"),   # a refused --resume is a SetupError too
    ("ValueError('a bug')", 1, "Traceback", "step.py: error"),   # anything else keeps its traceback
])
def test_a_setup_error_ends_a_script_with_its_message_alone_and_a_bug_with_its_traceback(raised, status, shown, hidden,
                                                                                          tmp_path):
    """No MNIST at --data-dir, or --device cuda without CuPy, showed a traceback before the message."""
    script = tmp_path / "step.py"
    script.write_text("from zero.cli import parse_options, step_parser\n"
                      "from zero.errors import CheckpointRefused, SetupError\n"
                      "parse_options(step_parser('a step'))\n"
                      f"raise {raised}\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == status and shown in result.stderr and hidden not in result.stderr, result.stderr


@pytest.mark.parametrize("device, reason", [("tpu", "unknown device 'tpu'"), ("cuda:1", "CUDA_VISIBLE_DEVICES=1")])
def test_a_device_zero_cannot_use_is_refused_as_the_options_are_read(device, reason, capsys):
    parser = add_device_option(argparse.ArgumentParser(prog="step"))
    assert parser.parse_args(["--device", "cpu"]).device == "cpu"
    with pytest.raises(SystemExit) as exit_status:
        parser.parse_args(["--device", device])
    error = capsys.readouterr().err
    assert exit_status.value.code == 2 and "argument --device" in error and reason in error


def test_a_device_whose_setup_is_missing_is_refused_as_the_options_are_read(monkeypatch, capsys):
    """--device cuda without CuPy or a GPU is a SetupError, not a ValueError: refused as a wrong option too."""
    import zero.cli
    from zero.errors import SetupError

    def no_cupy(device):
        raise SetupError(f"device {device!r} requested but CuPy is not installed")
    monkeypatch.setattr(zero.cli, "get_backend", no_cupy)
    parser = add_device_option(argparse.ArgumentParser(prog="step"))
    with pytest.raises(SystemExit) as exit_status:
        parser.parse_args(["--device", "cuda"])
    error = capsys.readouterr().err
    assert exit_status.value.code == 2
    assert "argument --device: device 'cuda' requested but CuPy is not installed" in error


def test_a_count_that_may_be_zero_takes_zero_and_refuses_a_negative_by_name(capsys):
    """non_negative_int (--head-start-steps) was never tested on its own (a helper's mutation audit):
    dropping its `value < 0` check left every test passing, so --head-start-steps -5 would have run."""
    from zero.cli import non_negative_int
    parser = argparse.ArgumentParser()
    parser.add_argument("--head-start-steps", type=non_negative_int, default=100)
    assert parser.parse_args(["--head-start-steps", "0"]).head_start_steps == 0
    assert parser.parse_args(["--head-start-steps", "7"]).head_start_steps == 7
    with pytest.raises(SystemExit):
        parser.parse_args(["--head-start-steps", "-5"])
    assert "argument --head-start-steps: must be at least 0, got -5" in capsys.readouterr().err


def test_at_least_accepts_the_minimum_itself_and_refuses_below_it_naming_the_option(capsys):
    """at_least's `value < minimum` could become `<=` unnoticed: --heldout-limit 2 (enough for a
    covariance) would have been refused."""
    from zero.cli import at_least
    parser = step_parser("a step", heldout_limit=100)
    args = parser.parse_args(["--heldout-limit", "2"])
    at_least(parser, args, 2, ("heldout_limit", "missing_option"), "a covariance needs two images")
    assert args.heldout_limit == 2                        # passed, and an option the script lacks is skipped
    args = parser.parse_args(["--heldout-limit", "1"])
    with pytest.raises(SystemExit):
        at_least(parser, args, 2, ("heldout_limit",), "a covariance needs two images")
    assert "--heldout-limit must be at least 2 here (a covariance needs two images), got 1" in capsys.readouterr().err


def test_check_passes_quietly_and_stops_a_script_when_its_result_is_wrong(tmp_path):
    from zero.cli import CheckFailed, check
    check(True, "never shown")
    check(np.bool_(True), "NumPy's booleans too")
    with pytest.raises(CheckFailed, match="by hand and library disagree"):
        check(np.bool_(False), "by hand and library disagree")
    script = tmp_path / "script.py"   # a step script: the failure is a bug, with a traceback and status 1
    script.write_text("import zero.cli\nzero.cli.step_parser('a step').parse_args()\n"
                      "zero.cli.check(1 + 1 == 3, 'one plus one is not three')\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert result.stderr.strip().endswith("zero.cli.CheckFailed: one plus one is not three")


def test_a_simulated_value_within_5_standard_errors_passes_and_one_beyond_stops_the_script_naming_it():
    from zero.cli import CheckFailed, check_within_standard_errors
    gaps = check_within_standard_errors("the mean", 10.4, 10.0, 0.1)   # 4 standard errors: passes
    assert gaps == pytest.approx(4.0)
    with pytest.raises(CheckFailed, match=r"the mean: measured 10.6, the theory's 10.0; 6.0 standard errors apart"):
        check_within_standard_errors("the mean", 10.6, 10.0, 0.1)
    with pytest.raises(CheckFailed, match="the variance"):   # below the theory counts as much as above
        check_within_standard_errors("the variance", 9.4, 10.0, 0.1)
    with pytest.raises(CheckFailed):                        # exactly the limit is already too far
        check_within_standard_errors("the mean", 10.5, 10.0, 0.1)


def test_standard_errors_are_compared_entry_by_entry_and_must_be_positive():
    from zero.cli import CheckFailed, check_within_standard_errors
    measured, expected = np.array([[1.0, 2.0], [2.0, 3.0]]), np.array([[1.1, 2.0], [2.0, 2.0]])
    gaps = check_within_standard_errors("a covariance", measured, expected, [[0.1, 1.0], [1.0, 0.5]])
    np.testing.assert_allclose(gaps, [[-1.0, 0.0], [0.0, 2.0]])
    with pytest.raises(CheckFailed, match="a covariance"):   # the one entry with a small standard error
        check_within_standard_errors("a covariance", measured, expected, [[0.1, 1.0], [1.0, 0.1]])
    with pytest.raises(ValueError, match="standard errors of the mean must be positive, got 0.0"):
        check_within_standard_errors("the mean", 1.0, 1.0, 0.0)


def test_variant_name_names_only_the_settings_that_differ_from_their_defaults():
    from zero.cli import variant_name
    assert variant_name() == variant_name(("hidden", 200, 200), ("latent", 20, 20)) == ""
    assert variant_name(("hidden", 200, 200), ("latent", 2, 20)) == "_latent2"
    assert variant_name(("hidden", 400, 200), ("latent", 2, 20)) == "_hidden400_latent2"
