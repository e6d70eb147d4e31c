"""zero.cli: the step scripts' common options and where their files go."""
from pathlib import Path

import pytest

from zero.cli import (add_device_option, checkpoint_path, out_dir, parse_options, running_under_ci, script_name,
                      step_checkpoint, step_parser)


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
    # another step's checkpoint is read from the same world: a quick run reads that step's quick run
    assert step_checkpoint("step07_vae/1_vae", real) == Path("checkpoints/step07_vae_1_vae.npz")
    assert step_checkpoint("step07_vae/1_vae", quick) == Path("checkpoints/quick/step07_vae_1_vae.npz")


def test_a_training_scripts_defaults_and_extra_options_are_typed_and_settable():
    parser = step_parser("a step", training=True, seed=7, epochs=5, batch_size=64, lr=2e-4, latent_size=16)
    args = parser.parse_args([])
    assert (args.seed, args.epochs, args.batch_size, args.lr, args.latent_size) == (7, 5, 64, 2e-4, 16)
    assert not args.quick and not args.show and not args.resume
    assert args.out is None and args.data_dir is None and args.checkpoint is None
    args = parser.parse_args(["--seed", "3", "--epochs", "2", "--batch-size", "4", "--lr", "0.5", "--latent-size", "8",
                              "--show", "--resume", "--data-dir", "mnist"])
    assert (args.seed, args.epochs, args.batch_size, args.lr, args.latent_size) == (3, 2, 4, 0.5, 8)
    assert isinstance(args.seed, int) and isinstance(args.lr, float) and isinstance(args.latent_size, int)
    assert args.show and args.resume and args.data_dir == Path("mnist")


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


def test_a_script_that_does_not_train_refuses_training_options(capsys):
    parser = step_parser("a step", iters=100)
    assert parser.parse_args(["--iters", "5"]).iters == 5
    with pytest.raises(SystemExit):
        parser.parse_args(["--epochs", "3"])
    assert "unrecognized arguments: --epochs" in capsys.readouterr().err


def test_the_device_defaults_to_zero_device(monkeypatch):
    monkeypatch.setenv("ZERO_DEVICE", "cuda")
    assert step_parser("a step", training=True).parse_args([]).device == "cuda"
    assert add_device_option(step_parser("a sampling step")).parse_args([]).device == "cuda"
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
    assert "--channels: expected whole numbers separated by commas, e.g. 10,20,50; got '32,x'" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-2"])
def test_an_int_extra_option_is_a_count_of_at_least_one(value, capsys):
    """--chains 0 or --iters 0 ended in an IndexError deep in the script."""
    parser = step_parser("a step", samples=16, lr=0.1)
    assert parser.parse_args(["--samples", "3", "--lr", "-0.5"]).samples == 3   # only ints are counts
    with pytest.raises(SystemExit):
        parser.parse_args(["--samples", value])
    assert f"argument --samples: must be at least 1, got {value}" in capsys.readouterr().err
