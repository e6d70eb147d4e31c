"""Command-line options shared by the course's step scripts.

Every step script starts with `parser = step_parser(__doc__)` (plus
`training=True` for the scripts that train a network); those that train, sample or read MNIST
read their options with `args = parse_options(parser, quick={...})` (a --quick run's defaults;
a SetupError then ends the script with its message alone), the others (steps 1-5, 6.2, 6.5)
with `parser.parse_args()`. So every script offers the same switches: `--quick` (a tiny run
for the test suite), `--out` (where figures go), `--show` (open windows as well), and `--seed`
unless it draws no random numbers (those call `step_parser(..., seeded=False)`);
training scripts add `--device`, `--epochs`, `--batch-size`, `--checkpoint` and `--resume`;
scripts that only sample add `--device` with add_device_option, and those that read MNIST
`--data-dir` (add_data_dir_option, or zero.training.add_data_options with the split options).

A `--quick` run is a smoke test: by default its figures and checkpoints go under
figures/quick/ and checkpoints/quick/, and the other steps' checkpoints it reads come from
there too (step_checkpoint). Quick runs never overwrite, or use, a real run's results (step
7's 30-epoch VAE, say, which later steps read).
"""
import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

from zero.backend import get_backend
from zero.errors import SetupError
from zero.utils import copy_file_atomically, writable_folder


def _whole_number(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def positive_int(text):
    """argparse type for counts (--batch-size, --train-limit): a whole number of at least 1."""
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text):
    """argparse type for counts that may be 0 (--head-start-steps)."""
    value = _whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _finite_number(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def non_negative_float(text):
    """argparse type for amounts (noise levels, guidance scales): a finite number >= 0."""
    value = _finite_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value:g}")
    return value


def positive_float(text):
    """argparse type for --lr: a finite number > 0 (0 would train nothing, a negative one climb the loss)."""
    value = _finite_number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value:g}")
    return value


def path_arg(text):
    """argparse type for files and folders: a Path with ~ expanded, as a shell does for ~/x but not
    for --out=~/x or a quoted "~/x" (which made a folder named '~' in the current one)."""
    return Path(text).expanduser()


def seed_int(text):
    """argparse type for --seed: a whole number in 0 .. 2^31 - 1 (NumPy's seeds are 0 .. 2^32 - 1; the
    scripts derive a few more seeds by adding small numbers)."""
    value = _whole_number(text)
    if not 0 <= value < 2 ** 31:
        raise argparse.ArgumentTypeError(f"must lie in 0 .. 2^31 - 1, got {value}")
    return value


def device_name(text):
    """--device's value, checked as the options are read: a device zero cannot use here (a typo,
    'cuda:1', 'cuda' without CuPy or a GPU) ends the script before any work, with the reason."""
    try:
        get_backend(text)
    except (ValueError, SetupError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_device_option(parser):
    """--device, by default $ZERO_DEVICE or cpu (`steps/run_all.py --device cuda` sets that variable, so
    every script that computes on a device, training or only sampling, follows it)."""
    parser.add_argument("--device", default=os.environ.get("ZERO_DEVICE", "cpu"), type=device_name,
                        help="cpu or cuda (cuda needs CuPy: pip install -e '.[gpu]'); "
                             "default: $ZERO_DEVICE or cpu")
    return parser


def at_least(parser, args, minimum, options, reason):
    """End the script, naming the option, if one of `options` (attribute names of args) is below
    minimum: checked right after parsing, not after training."""
    for name in options:
        value = getattr(args, name, None)
        if value is not None and value < minimum:
            parser.error(f"--{name.replace('_', '-')} must be at least {minimum} here ({reason}), got {value}")


def plural(count, noun, spec=""):
    """'1 epoch', '2 epochs': a count with its noun, singular for one; spec formats the count
    (plural(2000, "image", ",") is '2,000 images')."""
    return f"{count:{spec}} {noun}" if count == 1 else f"{count:{spec}} {noun}s"


def comma_list(parser, text, kind, option, minimum=None, maximum=None, length=None):
    """'32,64,128' -> [32, 64, 128] for an option that takes a list (kind: int or float), each item at least
    `minimum` and at most `maximum`, and `length` items, if given; anything else ends the script with the
    option named, as argparse does for its own."""
    try:
        values = [kind(item) for item in text.split(",")]
    except ValueError:
        parser.error(f"{option}: expected {'whole numbers' if kind is int else 'numbers'} separated by commas, "
                     f"e.g. {'10,20,50' if kind is int else '0,1.5,3'}; got {text!r}")
    if not all(math.isfinite(value) for value in values):   # NaN would pass every comparison below
        parser.error(f"{option}: every value must be a finite number, got {text!r}")
    if length is not None and len(values) != length:
        parser.error(f"{option}: expected {length} values separated by commas, got {len(values)} in {text!r}")
    if minimum is not None and min(values) < minimum:
        parser.error(f"{option}: every value must be at least {minimum}, got {text!r}")
    if maximum is not None and max(values) > maximum:
        parser.error(f"{option}: every value must be at most {maximum}, got {text!r}")
    return values


def add_data_dir_option(parser):
    """--data-dir, for the scripts that read MNIST (zero.training.add_data_options adds it too).
    The help writes out zero.mnist's ENV_VAR and DEFAULT_DIR rather than importing zero.mnist,
    whose download code would load at every script's start; tests/test_cli.py checks they agree."""
    parser.add_argument("--data-dir", type=path_arg, default=None,
                        help="folder with the MNIST files (default: $ZERO_DATA_DIR, "
                             "then ~/.cache/zero/mnist, downloading if needed)")
    return parser


def _shows_default(action):
    """Whether --help gives this option's default: not for None, nor for a switch's False."""
    default = action.default
    return (bool(action.option_strings) and default is not None and default is not False
            and default is not argparse.SUPPRESS)


class DefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """--help keeps the docstring's layout and gives each option's default, unless its help
    already speaks of it."""

    def _get_help_string(self, action):
        text = action.help
        if not _shows_default(action) or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


class StepParser(argparse.ArgumentParser):
    """An ArgumentParser whose --help shows the default of every option, also of those added
    without a help text (beside which argparse prints nothing), and for the options a --config
    fills (configs, set by config_defaults), the value each config gives."""

    configs = {}

    def format_help(self):
        for action in self._actions:
            by_config = [f"{name} {'none' if values[action.dest] is None else values[action.dest]}"
                         for name, values in self.configs.items() if action.dest in values]
            if by_config and "by --config" not in (action.help or ""):
                action.help = f"{action.help or ''} (by --config: {', '.join(by_config)})".strip()
            elif action.help is None and _shows_default(action):
                action.help = "default: %(default)s"
        return super().format_help()


def config_defaults(parser, configs):
    """The options that --config sets (configs: {config name: {option: value}}) get the default None,
    by which fill_from_config tells the ones given on the command line; --help lists each config's value."""
    parser.set_defaults(**{name: None for values in configs.values() for name in values})
    parser.configs = configs


def step_parser(description, training=False, default_out=None, seeded=True, **training_defaults):
    """An ArgumentParser with the course's common options.

    description: the script's docstring. default_out: figure folder, by
    default ``figures/<script name>``. seeded: offer --seed (False for a
    script that draws no random numbers, so that no option does nothing). training_defaults: defaults for
    epochs, batch_size and the like of a training script, and extra options
    (samples=16 adds --samples), typed by their default: an int one is a count
    and must be at least 1 (add an int that may be 0 with parser.add_argument).
    """
    parser = StepParser(description=description, formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="tiny, fast run (used by the test suite)")
    parser.add_argument("--out", type=path_arg, default=default_out,
                        help="folder for the figures (default: figures/<script>, figures/quick/<script> with --quick)")
    parser.add_argument("--show", action="store_true",
                        help="also open the figures in windows")
    if seeded:
        parser.add_argument("--seed", type=seed_int, default=training_defaults.pop("seed", 0),
                            help="random seed")
    if training:
        add_device_option(parser)
        parser.add_argument("--epochs", type=positive_int, default=training_defaults.pop("epochs", 1),
                            help="passes over the training images")
        parser.add_argument("--batch-size", type=positive_int, default=training_defaults.pop("batch_size", 32),
                            help="images per optimizer step")
        parser.add_argument("--checkpoint", type=path_arg, default=None,
                            help="checkpoint file this run writes and --resume reads (default: "
                                 "checkpoints/<step folder>_<script>.npz; under checkpoints/quick/ with --quick)")
        parser.add_argument("--resume", action="store_true",
                            help="start from --checkpoint if it exists")
    for name, value in training_defaults.items():
        option = "--" + name.replace("_", "-")
        if isinstance(value, bool):  # type=bool would read "--flag False" as True
            parser.add_argument(option, action=argparse.BooleanOptionalAction, default=value)
        elif value is None:
            raise TypeError(f"step_parser: the default of {option} is None, which gives no type; "
                            f"add that option with parser.add_argument instead")
        else:  # counts >= 1, learning rates > 0, other numbers (noise levels, gamma) >= 0
            number_type = positive_float if name == "lr" else non_negative_float
            kind = {int: positive_int, float: number_type}.get(type(value), type(value))
            parser.add_argument(option, type=kind, default=value)
    show_setup_errors(parser.prog)   # a SetupError (no MNIST files, an unwritable folder): its message alone
    return parser


def parse_options(parser, quick=None):
    """parser.parse_args(), with `quick` ({option: value}) as the defaults of a --quick run:
    options given on the command line keep their values (--quick --epochs 3 trains 3 epochs).
    From here on, a SetupError (no MNIST files, no CuPy for --device cuda) ends the script as a
    wrong option does: its message alone, exit status 2 (show_setup_errors)."""
    show_setup_errors(parser.prog)
    args = parser.parse_args()
    if args.quick and quick:
        unknown = sorted(set(quick) - set(vars(args)))
        if unknown:
            raise ValueError(f"parse_options: quick sets {unknown}, which the parser does not have")
        parser.set_defaults(**quick)
        args = parser.parse_args()
    return args


def fill_from_config(parser, args, configs, quick, default="cpu"):
    """Give the options left unset (None) the values of the chosen --config, configs[args.config] (by
    default `default`), or in a --quick run those of `quick`, whose tiny sizes replace every config:
    --quick with a --config is refused rather than silently ignoring it, and a --quick run's config
    is 'quick' (the name its checkpoint's settings record). Returns the names of the options that
    were given on the command line, not filled in."""
    if args.quick and args.config is not None:
        parser.error(f"--config {args.config} does not apply with --quick, which uses its own tiny sizes: "
                     f"give one of them")
    args.config = "quick" if args.quick else args.config or default
    chosen = quick if args.quick else configs[args.config]
    given = {name for name in chosen if getattr(args, name) is not None}
    for name, value in chosen.items():
        if name not in given:
            setattr(args, name, value)
    return given


class CheckFailed(AssertionError):
    """A result a step script checks is wrong (see check): a bug, shown with its traceback."""


def check(condition, message):
    """Stop a step script when a result it checks is wrong. Scripts compute some things two ways
    that must agree (by hand and with the library), or show a property the math guarantees (EM
    never lowers the likelihood); they print what they compared, and check(agreed, what) makes
    a disagreement end the run (CheckFailed, exit status 1) instead of one printed line among
    many that a reader, or the test suite running every script, could miss."""
    if not condition:
        raise CheckFailed(message)


def check_within_standard_errors(what, measured, expected, standard_errors, limit=5):
    """Stop a step script (CheckFailed, as check does) when a simulated estimate lies `limit` or more
    standard errors from the value the theory gives it. measured, expected, standard_errors: numbers
    or arrays of one shape, compared entry by entry. The check is generous on purpose: chance alone puts
    an estimate that is nearly normal beyond 5 of its standard errors with probability 5.7e-7 (the two
    tails of N(0, 1) beyond 5), so a failure points to a bug, not bad luck. Returns the gaps
    (measured - expected) / standard_errors."""
    measured, expected, standard_errors = (np.asarray(value, dtype=np.float64)
                                           for value in (measured, expected, standard_errors))
    if not (standard_errors > 0).all():
        raise ValueError(f"check_within_standard_errors: the standard errors of {what} must be positive, "
                         f"got {standard_errors}")
    gaps = (measured - expected) / standard_errors
    check(bool((np.abs(gaps) < limit).all()),
          f"{what}: measured {measured}, the theory's {expected}; {np.round(gaps, 1)} standard errors apart, "
          f"not all within {limit}")
    return gaps


def show_setup_errors(prog):
    """Make an uncaught SetupError, something the person running the script must fix, print only
    "prog: error: message" and exit with status 2, and Ctrl-C print "prog: interrupted" and exit
    with status 130 (128 + SIGINT, what shells report); every other exception is a bug and keeps
    its traceback (Python's usual handling, sys.excepthook)."""
    previous = sys.excepthook
    if getattr(previous, "shows_setup_errors", False):   # already installed
        return

    def hook(kind, error, traceback):
        if issubclass(kind, KeyboardInterrupt):   # the person stopped it: not an error to trace
            print(f"\n{prog}: interrupted", file=sys.stderr)
            raise SystemExit(130)
        if not issubclass(kind, SetupError):
            return previous(kind, error, traceback)
        print(f"{prog}: error: {error}", file=sys.stderr)
        raise SystemExit(2)   # Python exits with this status when its excepthook raises SystemExit
    hook.shows_setup_errors = True
    sys.excepthook = hook


def script_name(path):
    """'steps/step07_vae/1_vae.py' -> 'step07_vae/1_vae': names figure folders."""
    path = Path(path).resolve()
    return f"{path.parent.name}/{path.stem}"


def _run_folder(kind, args):
    """figures/ or checkpoints/, with a quick/ subfolder for --quick runs."""
    return Path(kind) / "quick" if getattr(args, "quick", False) else Path(kind)


def out_dir(args, script_file, variant=""):
    """The figure folder for this run, created if needed: --out, or figures/<script><variant>
    (variant: as checkpoint_path's, so that a model of another size, '_latent2', draws its
    figures beside the default one's instead of over them)."""
    if args.out is not None:
        folder = args.out
    else:
        script = script_name(script_file)
        folder = _run_folder("figures", args) / Path(script).parent / (Path(script).name + variant)
    return writable_folder(folder, "figures (--out)")


def step_checkpoint(script, args):
    """Where the step script `script` ('step07_vae/1_vae') writes its checkpoint by default:
    checkpoints/step07_vae_1_vae.npz, or under checkpoints/quick/ when args.quick, so a quick
    run that reads another step's model reads that step's quick run, never a real one."""
    return _run_folder("checkpoints", args) / (script.replace("/", "_") + ".npz")


def variant_name(*settings):
    """What a checkpoint's name gets for the settings that differ from the ones later steps look for:
    settings are (name, value, default) triples; '' when every value is its default, else e.g.
    '_hidden400_latent2'. A model of another size is then saved beside the default one instead of
    over it, and a step that reads it looks for the one of its own size."""
    return "".join(f"_{name}{value}" for name, value, default in settings if value != default)


def checkpoint_path(args, script_file, variant="", companions=()):
    """The checkpoint file for this run (its folder created if needed): --checkpoint, or the
    script's default, with `variant` appended to its name for runs that train on other data
    ('_without_2'), so that --resume never continues a model trained on something else.
    A run without --resume where a checkpoint already is starts over: keep_earlier_run keeps
    that file (and its companions: functions giving the files saved with it, a GAN's
    discriminator) before this run's first save replaces it."""
    path = args.checkpoint
    if path is None:
        path = step_checkpoint(script_name(script_file) + variant, args)
    if path.is_dir():  # found before training, not when the trained model is saved
        raise SetupError(f"--checkpoint {path} is a folder: give a file in it, e.g. {path / 'model.npz'}")
    writable_folder(path.parent, f"--checkpoint {path}")   # found before training too
    if path.exists() and not getattr(args, "resume", False):
        keep_earlier_run(path, companions)
    return path


def keep_earlier_run(path, companions=()):
    """Copy the checkpoint at `path` to <name>_previous.npz beside it (and each companion file,
    companion(path), to companion(<name>_previous.npz), so that the copies load together), and
    say so: a run started again without --resume, after a Ctrl-C in epoch 25 of 30, say, would
    otherwise replace those epochs with its own first one. The copy is made now, before any
    training; an earlier _previous file is replaced. Returns the copy's path."""
    previous = path.with_name(f"{path.stem}_previous{path.suffix}")
    copies = [(path, previous)] + [(companion(path), companion(previous)) for companion in companions]
    for source, target in copies:
        if source.exists():
            copy_file_atomically(source, target)
    print(f"{path} holds an earlier run: this run starts over and replaces it when it first saves. The earlier "
          f"run is kept as {previous} (to continue it instead: --resume --checkpoint {previous})")
    return previous


def running_under_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
