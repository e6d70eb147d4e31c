"""What every training script of the course shares: its MNIST data and its checkpoints.

    data = mnist_splits_from(args)               # --data-dir, --source, --train-limit, --heldout-limit
    print(data.description)                     # says which images were used
    ...
    save_checkpoint(path, model, optimizer, epoch, history)
    state = load_checkpoint(path, model, optimizer)   # {'epoch': ..., 'history': {...}}

Data: MNIST's official split is 60,000 training and 10,000 test images. Where only the
test split is at hand (this course's CI), its first 8,000 images are the training set and
its last 2,000 the held-out set, so every step reports numbers on images it never trained on.

Checkpoints: one .npz file holding the model's class name and weights (under "model/<name>"), the
optimizer's state ("optimizer/<name>"), the number of finished epochs, the loss history
("history/<name>"), the settings the weights depend on ("config/<name>", such as a VAE's
likelihood: loading into a model with other settings is refused) and the script options the
training run was started with ("settings/<name>", run_settings: a `--resume` with another
learning rate, batch size, seed or data is refused, as it would not continue that run). It is
written to a temporary file and renamed into place, so an interrupted save leaves the previous
checkpoint intact; loading checks every entry before changing anything, so a failed load
leaves model and optimizer as they were.

Another step's model, for comparison (step 8's VAE, step 11's): `restore_or_fit` reads its
checkpoint when it holds enough training, and otherwise trains the model here.
"""
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from zero.backend import DEFAULT_DTYPE, device_of, to_device, to_numpy
from zero.cli import add_data_dir_option, plural, positive_int
from zero.core import Variable, date_change, no_grad, test_mode
from zero.data import Dataset, epoch_loader
from zero.errors import CheckpointRefused, DataFileDamaged, SetupError, TrainingDiverged
from zero.layers import check_stored_array
from zero.mnist import SPLITS, find_local, load_mnist, mnist_dir
from zero.optimizers import Adam
from zero.utils import NPZ_READ_ERRORS, check_count, check_not_empty, read_npz, save_npz_atomically

TEST_ONLY_TRAIN_SIZE = 8_000   # test images 0..7999 train, 8000..9999 are held out
FORMAT_VERSION = 1


# =============================================================================
# MNIST: training and held-out images
# =============================================================================
@dataclass
class MnistSplits:
    """Training and held-out images, (N, 784) float32 in [0, 1], with labels, a description and
    the split they come from: source 'train' or 'test' (what 'auto' chose)."""
    x_train: np.ndarray
    t_train: np.ndarray
    x_heldout: np.ndarray
    t_heldout: np.ndarray
    description: str
    source: str


def mnist_splits(data_dir=None, source="auto", train_limit=None, heldout_limit=None):
    """MNIST as training and held-out sets (flattened images).

    source: 'train' (train on the 60,000 training images, hold out the 10,000 test images),
    'test' (only the test split: its first 8,000 images train, its last 2,000 are held out),
    or 'auto': 'test' if the test split's two files are in the data folder and neither training
    file is, else 'train' (nothing there yet: load_mnist downloads both splits; half a training
    split, an interrupted download say: the missing file is downloaded, or named with where to put it).
    train_limit / heldout_limit: keep only the first so many images of each set (None: all).
    """
    check_count("mnist_splits", "train_limit", train_limit, optional=True)
    check_count("mnist_splits", "heldout_limit", heldout_limit, optional=True)
    folder = mnist_dir(data_dir)
    if source == "auto":
        has_train = any(find_local(folder, name) for name in SPLITS["train"][:2])
        has_test = all(find_local(folder, name) for name in SPLITS["test"][:2])
        source = "test" if has_test and not has_train else "train"
    if source not in ("train", "test"):
        raise ValueError(f"mnist_splits: source must be 'auto', 'train' or 'test', got {source!r}")
    try:
        if source == "train":
            x_train, t_train = load_mnist("train", folder, flatten=True)
            x_heldout, t_heldout = load_mnist("test", folder, flatten=True)
            first_heldout = 0  # where the held-out images start in the test split
        else:
            x, t = load_mnist("test", folder, flatten=True)
            x_train, t_train = x[:TEST_ONLY_TRAIN_SIZE], t[:TEST_ONLY_TRAIN_SIZE]
            x_heldout, t_heldout = x[TEST_ONLY_TRAIN_SIZE:], t[TEST_ONLY_TRAIN_SIZE:]
            first_heldout = TEST_ONLY_TRAIN_SIZE
    except DataFileDamaged:   # names the file and what to do: nothing to add
        raise
    except SetupError as error:   # the file that failed first: say all that this run reads, in one message
        raise SetupError(f"{error}\n{_files_needed(source, folder)}") from None
    x_train, t_train = x_train[:train_limit], t_train[:train_limit]
    x_heldout, t_heldout = x_heldout[:heldout_limit], t_heldout[:heldout_limit]
    train_split = "training" if source == "train" else "test"   # the held-out images are always the test split's
    description = (f"training on {plural(len(x_train), 'image', ',')} (MNIST {train_split} split, "
                   f"{_image_range(0, len(x_train))}), held out {plural(len(x_heldout), 'image', ',')} "
                   f"(MNIST test split, {_image_range(first_heldout, len(x_heldout))}) from {folder}")
    return MnistSplits(x_train, t_train, x_heldout, t_heldout, description, source)


def _files_needed(source, folder):
    """Every MNIST file a run on `source` reads, and the other way to run, for a setup error."""
    test_files = " and ".join(SPLITS["test"][:2])
    if source == "test":
        return f"This run reads the test split alone: {test_files} in {folder}."
    return (f"This run reads both splits from {folder}: {' and '.join(SPLITS['train'][:2])} (training), "
            f"{test_files} (held out). With the test split's two files alone, source 'test' (the scripts' "
            f"--source test) trains on its first {TEST_ONLY_TRAIN_SIZE:,} images and holds out the rest.")


def _image_range(first, count):
    return f"image {first}" if count == 1 else f"images {first}-{first + count - 1}"


def mnist_splits_from(args):
    """mnist_splits with a step script's options (--data-dir, --source, --train-limit,
    --heldout-limit). args.source becomes the split actually used, so that a checkpoint's
    settings name it: a run started with 'auto' on the test split alone must not be resumed
    on the training split once it has been downloaded."""
    data = mnist_splits(args.data_dir, args.source, args.train_limit, args.heldout_limit)
    args.source = data.source
    return data


def add_data_options(parser, train_limit=None, heldout_limit=None):
    """--data-dir, --source and --train-limit / --heldout-limit options for mnist_splits_from."""
    add_data_dir_option(parser)
    parser.add_argument("--source", default="auto", choices=["auto", "train", "test"],
                        help="which MNIST split to train on: 'train' (hold out the test split), "
                             "'test' (its first 8,000 train, its last 2,000 are held out), "
                             "'auto' (train if available)")
    parser.add_argument("--train-limit", type=positive_int, default=train_limit,
                        help="use only the first N training images")
    parser.add_argument("--heldout-limit", type=positive_int, default=heldout_limit,
                        help="use only the first N held-out images")
    return parser


# =============================================================================
# The training loop
# =============================================================================
def mean_loss(model, images, batch_size=500, device=None):
    """model.loss(x) averaged over all images (N, ...) host array, without a graph and in test mode
    (dropout off, batch norm on its running statistics, which stay as they are): a float.
    The batches go to `device`, by default the model's."""
    device = model.device if device is None else device
    check_not_empty("mean_loss", images, "images to average the loss over")
    check_count("mean_loss", "batch_size", batch_size)
    total = 0.0
    with no_grad(), test_mode():
        for start in range(0, len(images), batch_size):
            x = Variable(to_device(images[start:start + batch_size].astype(model.dtype, copy=False), device))
            total += model.loss(x).item() * len(x)  # .item(): explicit host copy of one number
    return total / len(images)


def loss_history(history, keys):
    """The dict of lists a training loop appends its losses to: `history` (a resumed run's, as
    load_checkpoint returns it) given an empty list under each of `keys` it lacks (a checkpoint
    saved without a history loads as {}, and its run failed only after a whole epoch), or a new one."""
    history = {} if history is None else history
    for key in keys:
        history.setdefault(key, [])
    return history


def finite_loss(loss, where):
    """loss.item() (the one number per step that a training loop copies to the host, for its report),
    checked: NaN or inf means the run has diverged (most often, a learning rate too large), and every
    later step and any checkpoint saved would carry it. TrainingDiverged then, naming `where` (the
    loop, its epoch and batch). The loops call it between the forward pass and backward, so the
    weights stay as the last finite step left them, and before they save anything, so the last
    checkpoint stays as it was."""
    value = loss.item()
    if not math.isfinite(value):
        raise TrainingDiverged(f"{where}: the loss is {value}: training diverged (a smaller learning rate "
                               f"usually helps). Stopped before saving: a checkpoint saved before is unchanged")
    return value


def fit(model, optimizer, x_train, epochs, batch_size=32, device=None, seed=0, x_heldout=None,
        history=None, start_epoch=0, description="training", report_every=1, checkpoint=None, settings=None):
    """Minimise model.loss(x) by mini-batches, epochs start_epoch+1 .. epochs, with a progress bar.

    x_train, x_heldout: host arrays (N, ...). The batch order of epoch e comes from seed (seed, e),
    so a resumed run visits the same batches as an uninterrupted one. Appends each epoch's mean
    training loss (and held-out loss, if x_heldout is given) to history['train_loss'] and
    history['heldout_loss']; returns history. The losses are printed every `report_every` epochs
    and after the last (a small data set trained for hundreds of epochs prints a few lines).
    With a `checkpoint` path, model and optimizer are saved there (with `settings`, save_checkpoint)
    whenever the losses are printed, so an interrupted run can resume from the last report.
    The batches go to `device`, by default the model's. A loss of NaN or inf stops the run
    (finite_loss: TrainingDiverged). The model is put in training mode first (dropout, batch norm).
    """
    device = model.device if device is None else device
    check_not_empty("fit", x_train, "training images")
    if x_heldout is not None:   # found now, not after the first epoch's training
        check_not_empty("fit", x_heldout, "held-out images")
    check_count("fit", "epochs", epochs, at_least=0)
    check_count("fit", "start_epoch", start_epoch, at_least=0)
    check_count("fit", "batch_size", batch_size)
    check_count("fit", "report_every", report_every)
    history = loss_history(history, ["train_loss", "heldout_loss"])
    model.train()   # a model evaluated or sampled from before (model.eval()) would train with dropout off
    for epoch in range(start_epoch + 1, epochs + 1):
        loader = epoch_loader(Dataset(x_train), batch_size, seed, epoch, device, model.dtype)
        total = 0.0
        with tqdm(loader, desc=f"{description} epoch {epoch}/{epochs}", leave=False) as bar:
            for batch, x in enumerate(bar, start=1):
                loss = model.loss(x)  # the batch is a constant: no input gradient is computed
                # one number per step to the host, for the report, checked before backward: NaN stops the run
                total += finite_loss(loss, f"{description} epoch {epoch}, batch {batch} of {len(loader)}")
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        history["train_loss"].append(total / len(loader))
        message = f"{description} epoch {epoch}/{epochs}: training loss {history['train_loss'][-1]:.3f}"
        if x_heldout is not None:
            history["heldout_loss"].append(mean_loss(model, x_heldout, device=device))
            message += f", held-out loss {history['heldout_loss'][-1]:.3f}"
        if epoch % report_every == 0 or epoch == epochs:
            print(message)
            if checkpoint is not None:   # Ctrl-C loses at most the epochs since this report
                save_checkpoint(checkpoint, model, optimizer, epoch, history, settings)
    return history


# =============================================================================
# Checkpoints
# =============================================================================
def _is_count_list(value):
    """Whether a per-parameter state list holds step counts (ints, Adam's t) rather than arrays."""
    return all(isinstance(v, (int, np.integer)) for v in value)


def _optimizer_param_names(model, optimizer):
    """The model's name of each of the optimizer's parameters, in the optimizer's order ('' for one the
    model does not hold): its state is saved by position, so a file is only read into the same order."""
    names = {id(param): name for name, param in model.named_params()}
    return [names.get(id(param), "") for param in optimizer.params]


def _optimizer_state(optimizer):
    """The optimizer's state as {name: host array}: 'lr', and each per-parameter list that its class
    names in `state_lists` (Adam's moments and step counts, momentum buffers)."""
    state = {"lr": np.asarray(optimizer.lr, dtype=np.float64)}
    for name in type(optimizer).hyperparameters:
        state[f"hyper/{name}"] = np.asarray(getattr(optimizer, name), dtype=np.float64)
    for attribute in type(optimizer).state_lists:
        value = getattr(optimizer, attribute)
        if _is_count_list(value):
            state[attribute] = np.asarray(value, dtype=np.int64)
            continue
        for index, (entry, param) in enumerate(zip(value, optimizer.params)):
            if entry is not None:   # in its parameter's dtype: after model.astype, the state converts at the next step
                dtype = entry.dtype if param.data is None else param.data.dtype
                state[f"{attribute}.{index}"] = to_numpy(entry).astype(dtype, copy=False)
    return state


# The script options a training run depends on: a run resumed with other values would not continue
# the one in the checkpoint (other data, another learning rate or batch order), so resume refuses it.
# The model's sizes are here too, for a clearer message than a shape mismatch. Options that may change
# between a run and its continuation (--epochs, --device, --data-dir, figures and sampling) are not.
RUN_SETTINGS = ("seed", "batch_size", "lr", "lr_decay", "config", "source", "train_limit", "heldout_limit",
                "points", "noise", "noise_std", "heldout_size", "anomaly_digit",
                "hidden_size", "latent_size", "levels", "likelihood", "couplings", "g_hidden_size",
                "d_hidden_size", "width", "channels", "time_embed_dim")


# Why an option that usually may change between a run and its continuation is one of its settings
# (run_settings' `also`): said when a --resume changes it.
SETTING_REASONS = {
    "epochs": "--epochs is one of them because the learning rate decays over all the epochs (--lr-decay cosine): "
              "a run so trained cannot be extended; to train a run that --resume --epochs N can extend, "
              "use --lr-decay none",
}


def run_settings(args, exclude=(), also=()):
    """{option: value as text} of the RUN_SETTINGS that the script's options `args` have.
    exclude: options of that list that do not change this script's training (--heldout-limit
    where the held-out images are only scored after training); also: options that do here
    (--epochs, when the learning rate decays over all epochs)."""
    names = [name for name in RUN_SETTINGS if name not in exclude] + list(also)
    return {name: str(getattr(args, name)) for name in names if hasattr(args, name)}


def save_checkpoint(path, model, optimizer=None, epoch=0, history=None, settings=None, planned_epochs=None):
    """Write model weights, optimizer state, epoch and history {name: list of numbers} atomically,
    with the state of NumPy's global random generator (the noise of a VAE or a diffusion model,
    dropout): `resume` restores it, so a resumed run draws what an uninterrupted one would have.
    (CuPy's generator, which draws the noise on a GPU, is not saved.) settings: the run's
    options {name: text} (run_settings(args)), which a resumed run must repeat. planned_epochs:
    the epochs the run is to reach, for a file saved during training (load_checkpoint's
    state then tells a half-trained model from a finished one). Weights or optimizer
    state holding NaN or inf (a diverged run) are not saved: TrainingDiverged, the file unchanged."""
    return save_npz_atomically(path, checkpoint_arrays(model, optimizer, epoch, history, settings, planned_epochs))


def checkpoint_arrays(model, optimizer=None, epoch=0, history=None, settings=None, planned_epochs=None):
    """What save_checkpoint writes, as {entry name: host array}."""
    saving = f"saving a checkpoint of {type(model).__name__}"
    check_count(saving, "epoch", epoch, at_least=0)
    check_count(saving, "planned_epochs", planned_epochs, at_least=epoch, optional=True)
    history_arrays = {}
    for name, values in (history or {}).items():
        try:
            history_arrays[name] = np.asarray(values, dtype=np.float64)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{saving}: history {name!r} must be a list of numbers ({error})") from None
        if history_arrays[name].ndim != 1:
            raise ValueError(f"{saving}: history {name!r} must be a list of numbers, "
                             f"got shape {history_arrays[name].shape}")
    arrays = {"format_version": np.asarray(FORMAT_VERSION), "epoch": np.asarray(int(epoch)),
              "model_type": np.asarray(type(model).__name__)}
    if planned_epochs is not None:
        arrays["planned_epochs"] = np.asarray(int(planned_epochs))
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    arrays.update({"random/keys": keys, "random/position": np.asarray(position),
                   "random/has_gauss": np.asarray(has_gauss), "random/cached_gaussian": np.asarray(cached_gaussian)})
    for name, param in model.named_params():
        if param.data is None:
            raise RuntimeError(f"cannot save a checkpoint of {type(model).__name__}: parameter {name!r} "
                               f"is not created yet (call the model on a batch first)")
        arrays[f"model/{name}"] = to_numpy(param.data)
    for name, buffer in model.named_buffers():
        if buffer is not None:
            arrays[f"buffer/{name}"] = to_numpy(buffer)
    for name, value in model.checkpoint_config().items():
        arrays[f"config/{name}"] = np.asarray(str(value))
    if optimizer is not None:
        arrays["optimizer_type"] = np.asarray(type(optimizer).__name__)
        arrays["optimizer/param_names"] = np.asarray(_optimizer_param_names(model, optimizer))
        for name, array in _optimizer_state(optimizer).items():
            arrays[f"optimizer/{name}"] = array
    for name, array in history_arrays.items():
        arrays[f"history/{name}"] = array
    for name, value in (settings or {}).items():
        arrays[f"settings/{name}"] = np.asarray(str(value))
    for name, array in arrays.items():   # a diverged model would replace a good checkpoint, and load everywhere
        if name.startswith(("model/", "buffer/", "optimizer/")) and not _all_finite(array):
            raise TrainingDiverged(f"{saving}: {name} holds NaN or inf values (training diverged?): not saved, "
                                   f"so a checkpoint already there is unchanged")
    return arrays


def _all_finite(array):
    """Whether a host array holds no NaN or inf (arrays of integers or text: always)."""
    return array.dtype.kind not in "fc" or bool(np.isfinite(array).all())


def read_checkpoint(path, names=None, optional=()):
    """{name: array} of the checkpoint file's entries (all, or those in `names`, plus those of
    `optional` that the file holds); a missing file raises FileNotFoundError, anything else that
    is not a readable .npz archive ValueError."""
    try:
        arrays = read_npz(path, names, optional)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint not found: {path}") from None
    except NPZ_READ_ERRORS as error:
        raise ValueError(f"cannot read checkpoint {path}: corrupt or not a checkpoint ({error})") from None
    if arrays is None:
        raise ValueError(f"cannot read checkpoint {path}: not an .npz archive")
    return arrays


def _resolve(model, dotted):
    """(owning layer, attribute) of a dotted buffer name such as 'block.norm.running_mean'."""
    *path, attribute = dotted.split(".")
    layer = model
    for part in path:
        layer = getattr(layer, part)
    return layer, attribute


def load_checkpoint(path, model, optimizer=None, settings=None):
    """Restore a checkpoint written by save_checkpoint into model (and optimizer), on their device.

    Everything is checked before anything changes: a missing, corrupt or mismatching file, or one
    whose weights hold NaN or inf, raises an error naming the file and the entry, and leaves model
    and optimizer untouched.
    settings: this run's options {name: text}; each one the file also holds must be the same, and
    a file that recorded settings must hold every one of this run's but source (one saved before
    an option existed is refused, naming it); a file saved without settings is not checked.
    Returns {'epoch': int, 'history': {name: list of floats}, 'random_state': the saved state of
    NumPy's global generator (None in older files), which restore_random_state sets,
    'planned_epochs': the epochs its run was to reach (int), or None if the file does not say}.
    """
    apply, state = stage_checkpoint(path, model, optimizer, settings)
    apply()
    return state


def stage_checkpoint(path, model, optimizer=None, settings=None):
    """load_checkpoint in two halves: read and check the file, changing nothing, and return
    (apply, state); apply() then restores model and optimizer. Loading several checkpoints
    that belong together (a GAN's two players) checks them all before applying any."""
    path = Path(path)
    stored = read_checkpoint(path)
    if "format_version" not in stored or "epoch" not in stored:
        raise ValueError(f"checkpoint {path}: not a zero checkpoint (no format_version/epoch entry)")
    version = _stored_number(path, stored, "format_version", "iu")
    if version > FORMAT_VERSION:
        raise ValueError(f"checkpoint {path} has format version {version}; this zero reads up to {FORMAT_VERSION}: "
                         f"it was written by a newer zero")
    kind = type(model).__name__   # first: another model's file differs in everything else too
    if "model_type" in stored and str(stored["model_type"]) != kind:   # absent from files written before it was saved
        raise ValueError(f"checkpoint {path} holds model type {stored['model_type']}, not {kind}: "
                         f"it was written by another script or for another model")
    _check_settings(path, stored, settings or {})
    for name, value in model.checkpoint_config().items():  # absent from files written before settings were saved
        if f"config/{name}" in stored and str(stored[f"config/{name}"]) != str(value):
            raise ValueError(f"checkpoint {path} was trained with {name} {str(stored[f'config/{name}'])!r}, "
                             f"but this {type(model).__name__} has {name} {str(value)!r}")
    # the small entries first: a refused file costs no copy of the weights to the device
    state = {"epoch": _stored_number(path, stored, "epoch", "iu", at_least=0),
             "history": _stored_history(path, stored), "random_state": _stored_random_state(path, stored)}
    state["planned_epochs"] = (_stored_number(path, stored, "planned_epochs", "iu", at_least=state["epoch"])
                               if "planned_epochs" in stored else None)   # None: saved after its last epoch
    params = dict(model.named_params())
    buffers = dict(model.named_buffers())
    in_file = {key.split("/", 1)[1] for key in stored if key.startswith("model/")}
    missing, unexpected = sorted(set(params) - in_file), sorted(in_file - set(params))
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} does not match {type(model).__name__}: missing parameters "
                         f"{missing or 'none'}, unexpected {unexpected or 'none'}")
    model.check_lazy_shapes({**{name: stored[f"model/{name}"] for name in params},   # lazy layers: shapes
                             **{name: stored[f"buffer/{name}"] for name in buffers if f"buffer/{name}" in stored}},
                            f"checkpoint {path}")
    # the dtype each parameter's layer creates it in (a lazy one has no data yet); the optimizer's state too
    lazy_dtypes = {id(param): _resolve(model, name)[0].dtype for name, param in params.items()}
    staged_params = []
    for name, param in params.items():
        array = stored[f"model/{name}"]
        _check_entry(path, f"parameter {name!r}", array, param.data, lazy_dtypes[id(param)])
        device = device_of(param.data) if param.data is not None else model.device
        staged_params.append((param, to_device(array, device)))
    staged_buffers = []
    for name, buffer in buffers.items():
        key = f"buffer/{name}"
        if key not in stored:
            raise ValueError(f"checkpoint {path}: buffer {name!r} is missing")
        _check_entry(path, f"buffer {name!r}", stored[key], buffer, _resolve(model, name)[0].dtype)
        device = device_of(buffer) if buffer is not None else model.device
        staged_buffers.append((name, to_device(stored[key], device)))
    stored_params = {id(param): stored[f"model/{name}"] for name, param in params.items()}
    staged_optimizer = (_stage_optimizer(path, stored, model, optimizer, lazy_dtypes, stored_params)
                        if optimizer is not None else None)

    def apply():
        for param, array in staged_params:
            param.data = array
        date_change([param for param, _ in staged_params])   # backward refuses a graph built before the load
        for name, array in staged_buffers:
            setattr(*_resolve(model, name), array)
        if staged_optimizer is not None:
            for attribute, value in staged_optimizer.items():
                setattr(optimizer, attribute, value)
    return apply, state


def _check_entry(path, label, array, current, lazy_dtype):
    """A weight, buffer or optimizer state read from a checkpoint, checked against the array it would
    replace (check_stored_array: shape and dtype), and refused (ValueError) if it holds NaN or inf:
    written by a run that diverged (before save_checkpoint refused such weights), it would load and
    turn every number computed with it into NaN."""
    check_stored_array(f"checkpoint {path}", label, array, current, lazy_dtype)
    if not _all_finite(array):
        raise ValueError(f"checkpoint {path}: {label} holds NaN or inf values (saved by a run that diverged?): "
                         f"not loaded")


def _stored_number(path, stored, key, kinds, at_least=None):
    """The checkpoint's entry `key` as a Python int or float: one number of a NumPy dtype kind in
    `kinds` ('i' signed, 'u' unsigned integers, 'f' floats), finite and at least `at_least`;
    anything else is refused by a ValueError naming the file and the entry."""
    value = stored.get(key)
    if value is None:
        raise ValueError(f"checkpoint {path}: entry {key!r} is missing")
    if value.shape != () or value.dtype.kind not in kinds:
        raise ValueError(f"checkpoint {path}: entry {key!r} must be one number, "
                         f"got {value.dtype} of shape {value.shape}")
    number = float(value) if value.dtype.kind == "f" else int(value)
    if not math.isfinite(number) or (at_least is not None and number < at_least):
        raise ValueError(f"checkpoint {path}: entry {key!r} is {number}, not a finite number"
                         + ("" if at_least is None else f" >= {at_least}"))
    return number


def _stored_history(path, stored):
    """The loss history {name: list of floats}; each entry must be a 1-D array of numbers."""
    history = {}
    for key, array in stored.items():
        if key.startswith("history/"):
            if array.ndim != 1 or array.dtype.kind not in "iuf":
                raise ValueError(f"checkpoint {path}: entry {key!r} must be a list of numbers, "
                                 f"got {array.dtype} of shape {array.shape}")
            history[key.split("/", 1)[1]] = array.tolist()
    return history


def _stored_random_state(path, stored):
    """The saved state of NumPy's global generator (None in files written before it was saved),
    checked on a generator of its own: restore_random_state, after the model has changed, must not fail."""
    if "random/keys" not in stored:
        return None
    state = ("MT19937", stored["random/keys"], _stored_number(path, stored, "random/position", "iu"),
             _stored_number(path, stored, "random/has_gauss", "iu"),
             _stored_number(path, stored, "random/cached_gaussian", "f"))
    try:
        np.random.RandomState().set_state(state)
    except (ValueError, TypeError, IndexError) as error:
        raise ValueError(f"checkpoint {path}: the saved random state (entries 'random/...') "
                         f"is damaged ({error})") from None
    return state


def _check_settings(path, stored, settings):
    """A run resumed with other options than the checkpoint's is refused, naming each difference,
    and so is a file that recorded settings but not one this run has, or one this run does not
    have: another script's model (step A.3's autoencoder, trained --anomaly-digit 2 without the 2s,
    resumed by A.1, which trains on every digit, or the other way round). A file that recorded
    no settings is not checked, and one without 'source' is taken as on this run's split (files
    written before the split was recorded, a referee trained on images passed in). Without
    `settings` (a model loaded to be used, not resumed) nothing is checked."""
    recorded = [key[len("settings/"):] for key in stored if key.startswith("settings/")]
    if recorded:
        absent = [name for name in settings if name not in recorded and name != "source"]
        if absent:
            options = ", ".join(f"--{name.replace('_', '-')}" for name in absent)
            raise ValueError(f"checkpoint {path} was trained without {options}, which this run has: it was written "
                             f"by another script (or an older version of this one), so resuming would not continue "
                             f"that run. Start a new run without --resume (or with another --checkpoint)")
    changed = _changed_settings(stored, settings)
    if changed:
        def shown(value):
            return "not given" if value == "None" else value
        differences = ", ".join(f"--{name.replace('_', '-')} {shown(saved)} (now {shown(value)})"
                                for name, saved, value in changed)
        reasons = "".join(f" {SETTING_REASONS[name]}." for name, _, _ in changed if name in SETTING_REASONS)
        raise ValueError(f"checkpoint {path} was trained with {differences}: resuming with other settings would "
                         f"not continue that run.{reasons} Repeat its settings, or start a new run without --resume "
                         f"(or with another --checkpoint)")
    extra = [name for name in recorded if name not in settings]
    if settings and extra:
        options = ", ".join(f"--{name.replace('_', '-')} {stored['settings/' + name]}" for name in extra)
        raise ValueError(f"checkpoint {path} was trained with {options}, which this run does not have: it was "
                         f"written by another script (or an older version of this one), so resuming would not "
                         f"continue that run. Start a new run without --resume (or with another --checkpoint)")


def _changed_settings(stored, settings):
    """[(option, value saved, this run's value)] as text, for the options of `settings` that the
    checkpoint's entries `stored` recorded with another value (options it did not record are not
    compared, nor a source saved as 'auto': written before mnist_splits_from recorded the split
    auto chose, so unknown)."""
    saved = {name: str(stored[f"settings/{name}"]) for name in settings if f"settings/{name}" in stored}
    if saved.get("source") == "auto":
        del saved["source"]
    return [(name, saved[name], str(value)) for name, value in settings.items()
            if name in saved and saved[name] != str(value)]


def restore_random_state(state):
    """Continue NumPy's global generator where the checkpoint's run left it (state: what
    load_checkpoint returned); a checkpoint without it changes nothing."""
    if state.get("random_state") is not None:
        np.random.set_state(state["random_state"])


def _stage_optimizer(path, stored, model, optimizer, lazy_dtypes, stored_params):
    """The optimizer's restored attributes {name: value}, checked against its parameters (lazy_dtypes:
    id(parameter) -> the dtype its layer will create it in; stored_params: id(parameter) -> its array
    in the file, already checked, whose shape a lazy parameter's state must have)."""
    kind = type(optimizer).__name__
    if "optimizer_type" not in stored:
        raise ValueError(f"checkpoint {path} holds no optimizer state, but a {kind} was given to restore")
    if str(stored["optimizer_type"]) != kind:
        raise ValueError(f"checkpoint {path} holds {stored['optimizer_type']} state, not {kind}")
    n = len(optimizer.params)
    if "optimizer/param_names" in stored:   # absent from files written before the names were saved
        _check_optimizer_param_names(path, stored["optimizer/param_names"].tolist(),
                                     _optimizer_param_names(model, optimizer), kind)
    for name in type(optimizer).hyperparameters:   # absent from files written before they were saved
        saved = stored.get(f"optimizer/hyper/{name}")
        ours = np.asarray(getattr(optimizer, name), dtype=np.float64)
        if saved is not None and (saved.dtype.kind != "f" or saved.shape != ours.shape or not (saved == ours).all()):
            raise ValueError(f"checkpoint {path} was trained with {kind} {name} {saved.tolist()}, but this {kind} "
                             f"has {ours.tolist()}: resuming would not continue that run")
    staged = {"lr": _stored_number(path, stored, "optimizer/lr", "f", at_least=0)}
    count_lists = [a for a in type(optimizer).state_lists if _is_count_list(getattr(optimizer, a))]
    for attribute in count_lists:   # step counts (Adam's t per parameter), first: they say which state must be there
        array = stored.get(f"optimizer/{attribute}")
        if array is None or array.shape != (n,) or array.dtype.kind not in "iu" or (array < 0).any():
            raise ValueError(f"checkpoint {path}: optimizer entry {attribute!r} missing, of the wrong length, "
                             f"or not {n} counts >= 0")
        staged[attribute] = [int(v) for v in array]
    param_names = _optimizer_param_names(model, optimizer)
    for attribute in type(optimizer).state_lists:
        if attribute in count_lists:
            continue
        entries = []
        for index, param in enumerate(optimizer.params):
            key = f"optimizer/{attribute}.{index}"
            array = stored.get(key)
            steps = max((staged[counts][index] for counts in count_lists), default=0)
            if array is None and steps > 0:   # a parameter that was updated has state: it was lost, not absent
                raise ValueError(f"checkpoint {path}: entry {key!r} is missing, but the {kind} took "
                                 f"{plural(steps, 'step')} on parameter {index} ({param_names[index]!r}): its state "
                                 f"was lost, so resuming would not continue that run. Use an intact checkpoint, or "
                                 f"start a new run without --resume")
            if array is not None:
                shaped_like = param.data if param.data is not None else stored_params.get(id(param))
                _check_entry(path, f"optimizer {attribute}[{index}]", array, shaped_like,
                             lazy_dtypes.get(id(param), DEFAULT_DTYPE))
                array = to_device(array, device_of(param.data) if param.data is not None else model.device)
            entries.append(array)
        staged[attribute] = entries
    return staged


def _check_optimizer_param_names(path, saved, ours, kind):
    """Refuse optimizer state saved for other parameters (by the model's names, in the optimizer's
    order: the state is stored by position), naming the first position where they differ."""
    if len(saved) != len(ours):
        raise ValueError(f"checkpoint {path} holds the state of an optimizer over {len(saved)} parameters, "
                         f"but this {kind} updates {len(ours)}")
    for index, (name_saved, name_ours) in enumerate(zip(saved, ours)):
        if name_saved != name_ours:
            shown = repr(name_ours) if name_ours else "a parameter this model does not hold"
            raise ValueError(f"checkpoint {path}: the optimizer's parameter {index} was {name_saved!r} when it was "
                             f"saved, but is {shown} in this {kind}: its state would go to another parameter")


def resuming(checkpoint, args):
    """Whether a training script continues from `checkpoint`: `--resume` was given (args.resume) and
    the file exists. A --resume that finds no file says so, since the run then trains from scratch."""
    if not args.resume:
        return False
    if not Path(checkpoint).exists():
        print(f"no checkpoint at {checkpoint}: training from scratch")
        return False
    return True


def resumed_after(checkpoint, epoch, args):
    """Say where a resumed run starts. A checkpoint already past --epochs leaves nothing to train:
    args.epochs becomes the number of epochs its model holds, which titles and labels then show."""
    if epoch > args.epochs:
        print(f"resumed from {checkpoint} after epoch {epoch}, past --epochs {args.epochs}: nothing left to train")
        args.epochs = epoch
    else:
        print(f"resumed from {checkpoint} after epoch {epoch}")


def resume(checkpoint, model, optimizer, args, history=None, settings=None):
    """Where a step script's training starts: (history, start_epoch) restored from `checkpoint`
    into model and optimizer when `--resume` is given (args.resume) and the file exists, else the
    `history` passed in and epoch 0. A checkpoint trained with other options (settings, by
    default run_settings(args): learning rate, batch size, seed, data, sizes) is refused, the
    model left as it was. args.epochs becomes the checkpoint's epochs if it holds more
    (resumed_after)."""
    if resuming(checkpoint, args):
        settings = run_settings(args) if settings is None else settings
        try:
            state = load_checkpoint(checkpoint, model, optimizer, settings=settings)
        except ValueError as error:   # the file does not fit this run: the script ends with the reason alone
            raise CheckpointRefused(str(error)) from None
        restore_random_state(state)
        resumed_after(checkpoint, state["epoch"], args)
        return state["history"], state["epoch"]
    return history, 0


def fit_or_resume(model, optimizer, x_train, args, checkpoint, x_heldout=None, description="training",
                  report_every=1):
    """The training block of a step script: continue from `checkpoint` when
    `--resume` is given and it exists, and `fit` up to `args.epochs`, saving
    the checkpoint at each report and after the last epoch. args: the script's
    options (epochs, batch_size, device, seed, resume). report_every: as fit's.
    Returns the loss history."""
    history, start_epoch = resume(checkpoint, model, optimizer, args)
    start = time.perf_counter()
    history = fit(model, optimizer, x_train, args.epochs, args.batch_size, args.device, args.seed,
                  x_heldout=x_heldout, history=history, start_epoch=start_epoch, description=description,
                  report_every=report_every, checkpoint=checkpoint, settings=run_settings(args))
    if args.epochs > start_epoch:
        print(f"trained {plural(args.epochs - start_epoch, 'epoch')} in {time.perf_counter() - start:.1f} s")
        print(f"checkpoint saved: {checkpoint} (continue with --resume --epochs N)")
    return history


# The options that decide which images a model was trained on: a model for comparison must agree on them
DATA_SETTINGS = ("source", "train_limit", "anomaly_digit")


def may_have_seen_heldout(path, source):
    """Whether the model in the checkpoint at `path` may have trained on images that a run on MNIST's
    `source` split ('train' or 'test', mnist_splits' .source) holds out, and so must not score them
    (a referee, a generator compared with held-out images). A run on the training split holds out the
    whole test split, whose first images a model trained with --source test has seen; a run on the
    test split holds out its last images, on which no run trains. A file that recorded no split (or
    'auto', from before the split was recorded) is taken to be on this run's. An unreadable file:
    CheckpointRefused (a ValueError that a step script shows as its message alone)."""
    if source != "train":
        return False
    try:
        stored = read_checkpoint(path, [], optional=["settings/source"])
    except ValueError as error:
        raise CheckpointRefused(str(error)) from None
    return str(stored.get("settings/source", "")) == "test"


def restore_if_trained(model, path, min_epochs, data=None):
    """Load model weights from another step's checkpoint if it holds at least min_epochs of training.

    data: {option: value} of this run's training data (DATA_SETTINGS); a file that recorded
    another value for one of them was trained on other images (step A.3's model, which never
    saw a 2, offered as A.1's) and is not loaded. Options the file did not record are taken
    to agree (step 7 has no --anomaly-digit, so its VAE saw every digit).
    Returns (True, message) after loading, or (False, why not) with the model left as it was:
    file missing, not matching the model, trained on other data or too briefly (a run with
    fewer --epochs, say).
    """
    data = data or {}
    try:
        stored = read_checkpoint(path, ["epoch"], optional=[f"settings/{name}" for name in data])
        epochs = _stored_number(path, stored, "epoch", "iu", at_least=0)
        differences = ", ".join(f"--{name.replace('_', '-')} {saved}, now {value}"
                                for name, saved, value in _changed_settings(stored, data))
        if epochs >= min_epochs and not differences:
            load_checkpoint(path, model)
    except (FileNotFoundError, ValueError) as error:
        return False, f"no usable checkpoint ({error})"
    if differences:
        return False, f"{path} was trained on other data ({differences})"
    if epochs < min_epochs:
        return False, f"{path} holds only {plural(epochs, 'epoch')} (fewer than {min_epochs})"
    return True, f"loaded {path}, trained {plural(epochs, 'epoch')}"


def restore_or_fit(model, path, args, x_train, description, lr=None):
    """The model of another step, for comparison: loaded from its checkpoint at `path` when that
    holds at least args.epochs of training on the images this run trains on (restore_if_trained:
    same --source, --train-limit and, where the script has one, --anomaly-digit), else trained here with this
    script's settings (args.epochs, batch_size, device, seed; Adam with learning rate lr, by
    default args.lr; fit). Prints which; returns True if it was loaded."""
    data = {name: getattr(args, name, None) for name in DATA_SETTINGS}   # None: this script has no such option
    restored, message = restore_if_trained(model, path, min_epochs=args.epochs, data=data)
    print(f"{description}: {message}")
    if not restored:
        fit(model, Adam(model.params(), lr=args.lr if lr is None else lr), x_train, args.epochs,
            args.batch_size, args.device, args.seed, description=f"{description} (trained here)")
    return restored
