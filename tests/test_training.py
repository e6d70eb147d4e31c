"""zero.training: the MNIST split, the training loop, and checkpoints that survive
interrupted saves and refuse bad files without touching the model."""
import re
from argparse import Namespace

import numpy as np
import pytest

import zero
import zero.functions as F
from conftest import ZIP_HEADER_DAMAGE, damage_zip_header, host, interrupted_at_call, open_handles
from zero.backend import device_of
from zero.data import DataLoader, Dataset
from zero.errors import CheckpointRefused, SetupError, TrainingDiverged
from zero.mnist import SPLITS
from zero.models import MLP, Model
from zero.optimizers import SGD, Adam, Momentum
from zero.layers import BatchNorm, Dropout, Linear
from zero.training import (add_data_options, finite_loss, fit, fit_or_resume, load_checkpoint, loss_history,
                           may_have_seen_heldout, mean_loss, mnist_splits, mnist_splits_from, read_checkpoint,
                           restore_if_trained, restore_or_fit, restore_random_state, resume, run_settings,
                           save_checkpoint)


class Regression(Model):
    """A deterministic model with a loss: fit(...) twice gives identical weights."""

    def __init__(self):
        super().__init__()
        self.net = MLP((3, 5, 2))

    def loss(self, x):
        return F.mean_squared_error(self.net(x), x[:, :2])


def _fresh_regression():
    """The same untrained Regression and a new Adam, every call."""
    np.random.seed(0)
    model = Regression()
    return model, Adam(model.params(), lr=0.01)


def _trained(device="cpu", steps=3):
    np.random.seed(0)
    model = Regression().to(device)
    optimizer = Adam(model.params(), lr=0.01)
    x = zero.Variable(zero.to_device(np.random.rand(8, 3).astype(np.float32), device))
    for _ in range(steps):
        loss = model.loss(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, optimizer, x


def _weights(model):
    return {name: host(p.data).copy() for name, p in model.named_params()}


def test_checkpoint_round_trip_restores_model_optimizer_epoch_and_history(tmp_path, device):
    model, optimizer, x = _trained(device)
    path = save_checkpoint(tmp_path / "run.npz", model, optimizer, epoch=4, history={"train_loss": [3.0, 2.5]})
    np.random.seed(1)
    restored = Regression().to(device)
    restored_optimizer = Adam(restored.params(), lr=0.5)
    state = load_checkpoint(path, restored, restored_optimizer)
    assert state["epoch"] == 4 and state["history"] == {"train_loss": [3.0, 2.5]}
    assert restored_optimizer.lr == 0.01 and restored_optimizer.steps == optimizer.steps
    assert all(device_of(moment) == device for moment in restored_optimizer.means + restored_optimizer.variances)
    for name, p in restored.named_params():
        assert p.device == device
        np.testing.assert_array_equal(host(p.data), _weights(model)[name])
    # one more step from the original and from the restored copy: identical (moments restored too)
    for m, opt in [(model, optimizer), (restored, restored_optimizer)]:
        loss = m.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for (name, a), (_, b) in zip(model.named_params(), restored.named_params()):
        np.testing.assert_array_equal(host(a.data), host(b.data), err_msg=name)


def test_momentum_state_round_trips(tmp_path):
    np.random.seed(0)
    model = Regression()
    optimizer = Momentum(model.params(), lr=0.1)
    x = zero.Variable(np.random.rand(4, 3).astype(np.float32))
    model.loss(x).backward()
    optimizer.step()
    save_checkpoint(tmp_path / "m.npz", model, optimizer)
    reader = Regression()
    other = Momentum(reader.params(), lr=0.1)
    load_checkpoint(tmp_path / "m.npz", reader, other)
    for a, b in zip(optimizer.velocities, other.velocities):
        np.testing.assert_array_equal(a, b)
    assert other.steps == optimizer.steps == [1] * len(optimizer.params)  # so a resumed run flushes when this one would


def test_only_declared_optimizer_state_is_saved(tmp_path):
    """A setting that happens to be a list as long as the parameter list (betas of a
    two-parameter model) is not per-parameter state: the checkpoint must still load."""
    np.random.seed(0)
    layer = Linear(3, in_size=2)                                        # two parameters, W and b
    model = Model()
    model.layer = layer
    optimizer = Adam(model.params(), lr=0.01, betas=[0.9, 0.999])
    F.sum(layer(np.ones((4, 2), np.float32))).backward()
    optimizer.step()
    save_checkpoint(tmp_path / "a.npz", model, optimizer)
    other = Adam(model.params(), lr=0.01, betas=[0.9, 0.999])
    load_checkpoint(tmp_path / "a.npz", model, other)
    assert other.steps == [1, 1] and other.betas == [0.9, 0.999]
    np.testing.assert_array_equal(other.means[0], optimizer.means[0])


@pytest.mark.parametrize("damage", ["garbage", "truncated", "npy", "other_model", "other_optimizer", "missing",
                                    *ZIP_HEADER_DAMAGE])
def test_a_bad_checkpoint_raises_and_changes_nothing(tmp_path, damage):
    model, optimizer, _ = _trained()
    path = tmp_path / "run.npz"
    if damage == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif damage == "truncated":
        save_checkpoint(path, model, optimizer)
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "npy":
        np.save(path.with_suffix(".npy"), np.zeros(3))
        path.with_suffix(".npy").rename(path)
    elif damage == "other_model":
        other = MLP((3, 6, 2))
        other.loss = None
        save_checkpoint(path, other, Adam(other.params()))
    elif damage == "other_optimizer":
        save_checkpoint(path, model, SGD(model.params()))
    elif damage in ZIP_HEADER_DAMAGE:
        save_checkpoint(path, model, optimizer)
        damage_zip_header(path, damage)
    before, steps = _weights(model), list(optimizer.steps)
    moments = [m.copy() for m in optimizer.means]
    error = FileNotFoundError if damage == "missing" else ValueError
    with pytest.raises(error, match="run.npz") as raised:
        load_checkpoint(path, model, optimizer)
    assert raised.value is not None and open_handles(path) == []  # closed, even while the error lives
    for name, array in _weights(model).items():
        np.testing.assert_array_equal(array, before[name])
    assert optimizer.steps == steps and all((a == b).all() for a, b in zip(optimizer.means, moments))


def _rewrite_checkpoint(path, change):
    """Rewrite the .npz at path as change({name: array}) gives it (a damaged file, or one of another version)."""
    with np.load(path) as archive:
        arrays = change({name: archive[name] for name in archive.files})
    np.savez(path, **arrays)


def _set(name, value):
    """A change for _rewrite_checkpoint: entry `name` set to `value`."""
    return lambda arrays: {**arrays, name: value}


def _drop(name):
    """A change for _rewrite_checkpoint: entry `name` left out, or every entry under it if it ends in '/'."""
    return lambda arrays: {key: array for key, array in arrays.items()
                           if key != name and not (name.endswith("/") and key.startswith(name))}


def _assert_refused_unchanged(path, model, optimizer=None, match=""):
    """load_checkpoint raises a ValueError naming the file and matching `match`, and leaves the model's
    weights (and an Adam's learning rate and step counts) as they were."""
    weights = _weights(model)
    optimizer_state = None if optimizer is None else (optimizer.lr, list(optimizer.steps))
    with pytest.raises(ValueError, match=match) as error:
        load_checkpoint(path, model, optimizer)
    assert path.name in str(error.value)
    for name, array in _weights(model).items():
        np.testing.assert_array_equal(array, weights[name], err_msg=name)
    if optimizer is not None:
        assert (optimizer.lr, list(optimizer.steps)) == optimizer_state


@pytest.mark.parametrize("left_out", ["format_version", "epoch"])
def test_an_npz_without_the_checkpoint_entries_is_not_taken_for_a_checkpoint(tmp_path, left_out):
    model, optimizer, _ = _trained()
    path = save_checkpoint(tmp_path / "run.npz", model, optimizer, epoch=2)
    _rewrite_checkpoint(path, _drop(left_out))
    other, other_optimizer, _ = _trained(steps=1)
    _assert_refused_unchanged(path, other, other_optimizer, match="not a zero checkpoint")
    restored, message = restore_if_trained(other, path, min_epochs=0)
    assert not restored and "run.npz" in message


def _layers(**layers):
    """A Model holding the given layers."""
    model = Model()
    for name, layer in layers.items():
        setattr(model, name, layer)
    return model


def _with_an_extra_layer(path):
    save_checkpoint(path, _layers(head=Linear(3, in_size=5), extra=Linear(2, in_size=3)))


def _with_a_wider_head(path):
    save_checkpoint(path, _layers(head=Linear(4, in_size=5)))


def _in_float64(path):
    save_checkpoint(path, _layers(head=Linear(3, in_size=5)))
    _rewrite_checkpoint(path, lambda arrays: {**arrays, "model/head.W": arrays["model/head.W"].astype(np.float64)})


@pytest.mark.parametrize("write, message", [
    (_with_an_extra_layer, r"unexpected \['extra\.W', 'extra\.b'\]"),
    (_with_a_wider_head, r"parameter 'head\.W' has shape \(5, 4\) in the file but \(5, 3\) in the model"),
    (_in_float64, r"parameter 'head\.W' has dtype float64 in the file but float32"),
], ids=["an extra layer", "a wider layer", "float64 weights"])
def test_weights_of_another_layout_shape_or_dtype_are_refused_and_change_nothing(tmp_path, write, message):
    """The model's layers already exist (not lazy): only the checkpoint's own checks can refuse these."""
    np.random.seed(0)
    write(tmp_path / "run.npz")
    _assert_refused_unchanged(tmp_path / "run.npz", _layers(head=Linear(3, in_size=5)), match=message)


@pytest.mark.parametrize("optimizer_saved, chosen_params, message", [
    (False, lambda params: params, "holds no optimizer state"),
    (True, lambda params: params[:2], "holds the state of an optimizer over 4 parameters, but this Adam updates 2"),
    (True, lambda params: params[::-1], "the optimizer's parameter 0 was 'net.layers.0.W' when it was saved, but is "
                                        "'net.layers.1.b' in this Adam: its state would go to another parameter"),
    # files written before the parameters' names were saved: the state itself does not fit
    ("without names", lambda params: params[:2], "'steps' missing, of the wrong length"),
    ("without names", lambda params: params[::-1], r"optimizer means\[0\] has shape"),
], ids=["no optimizer saved", "an optimizer of fewer parameters", "parameters in another order",
        "fewer parameters, an older file", "another order, an older file"])
def test_optimizer_state_that_does_not_fit_the_optimizer_is_refused_and_changes_nothing(
        tmp_path, optimizer_saved, chosen_params, message):
    model, optimizer, _ = _trained()
    path = save_checkpoint(tmp_path / "run.npz", model, optimizer if optimizer_saved else None)
    if optimizer_saved == "without names":
        _rewrite_checkpoint(path, _drop("optimizer/param_names"))
    other, _, _ = _trained(steps=1)   # weights unlike the file's: a refusal found late must leave them as they are
    _assert_refused_unchanged(path, other, Adam(chosen_params(list(other.params())), lr=0.5), match=message)


@pytest.mark.parametrize("change, message", [
    (_set("random/keys", np.zeros(10, np.uint32)), r"the saved random state \(entries 'random/...'\) is damaged"),
    (_drop("random/position"), "entry 'random/position' is missing"),
    (_drop("optimizer/lr"), "entry 'optimizer/lr' is missing"),
    (_set("optimizer/lr", np.array(np.nan)), "entry 'optimizer/lr' is nan, not a finite number >= 0"),
    (_set("optimizer/lr", np.array("abc")), "entry 'optimizer/lr' must be one number"),
    (_set("optimizer/steps", np.array([-5] * 4)), "'steps' missing, of the wrong length, or not 4 counts >= 0"),
    (_set("epoch", np.array([1, 2])), "entry 'epoch' must be one number, got int64 of shape"),
    (_set("epoch", np.array(-4)), "entry 'epoch' is -4"),
    (_set("history/loss", np.array([["x"]])), "entry 'history/loss' must be a list of numbers"),
    (_set("format_version", np.array(99)), "format version 99; this zero reads up to 1"),
    # the boundaries: one step past each limit
    (_set("format_version", np.array(2)), "format version 2; this zero reads up to 1"),
    (_set("epoch", np.array(-1)), "entry 'epoch' is -1, not a finite number >= 0"),
    (_set("optimizer/lr", np.array(-0.5)), "entry 'optimizer/lr' is -0.5, not a finite number >= 0"),
    (_set("history/loss", np.array([[1.0, 0.5]])), r"entry 'history/loss' must be a list of numbers, got float64 of "
                                                   r"shape \(1, 2\)"),
    (_set("optimizer/steps", np.array([3.0] * 4)), "'steps' missing, of the wrong length, or not 4 counts >= 0"),
    # damaged hyperparameters equal to this Adam's by value: a count 0 for weight decay 0.0, betas as a row
    (_set("optimizer/hyper/weight_decay", np.array(0)), "trained with Adam weight_decay 0, but this Adam has 0.0"),
    (_set("optimizer/hyper/betas", np.array([[0.9, 0.999]])),
     r"trained with Adam betas \[\[0.9, 0.999\]\], but this Adam has \[0.9, 0.999\]"),
    # the epochs a run was to reach: never fewer than it reached (the file holds epoch 2)
    (_set("planned_epochs", np.array(1)), "entry 'planned_epochs' is 1, not a finite number >= 2"),
    (_set("planned_epochs", np.array(2.5)), "entry 'planned_epochs' must be one number, got float64 of shape"),
], ids=["random keys", "no random position", "no lr", "nan lr", "text lr", "negative steps", "two epochs",
        "negative epoch", "text history", "newer format", "the next format", "epoch -1", "negative lr",
        "a history of rows", "float steps", "integer weight decay", "betas as a row", "planned before reached",
        "planned 2.5"])
def test_a_checkpoint_with_a_damaged_entry_is_refused_by_load_and_by_resume_and_changes_nothing(
        tmp_path, change, message):
    """Every entry is checked before the model changes: resume restored weights and optimizer and only
    then NumPy's random state, so a damaged one failed (NumPy's IndexError, naming no file) after them."""
    model, optimizer, _ = _trained()
    path = save_checkpoint(tmp_path / "run.npz", model, optimizer, epoch=2, history={"loss": [1.0, 0.5]})
    _rewrite_checkpoint(path, change)
    other, other_optimizer, _ = _trained(steps=1)
    _assert_refused_unchanged(path, other, other_optimizer, match=message)
    weights, moments, random_keys = _weights(other), [m.copy() for m in other_optimizer.means], np.random.get_state()[1]
    with pytest.raises(CheckpointRefused, match=message):
        resume(path, other, other_optimizer, Namespace(resume=True, epochs=5), settings={})
    for name, array in _weights(other).items():
        np.testing.assert_array_equal(array, weights[name], err_msg=name)
    assert all((a == b).all() for a, b in zip(other_optimizer.means, moments))
    np.testing.assert_array_equal(np.random.get_state()[1], random_keys)


@pytest.mark.parametrize("make, entry, message", [
    (lambda ps: Adam(ps, lr=0.01), "optimizer/means.0",
     r"entry 'optimizer/means.0' is missing, but the Adam took 3 steps on parameter 0 \('net.layers.0.W'\)"),
    (lambda ps: Adam(ps, lr=0.01), "optimizer/variances.2", r"entry 'optimizer/variances.2' is missing"),
    (lambda ps: Momentum(ps, lr=0.1), "optimizer/velocities.1",
     r"entry 'optimizer/velocities.1' is missing, but the Momentum took 3 steps on parameter 1 \('net.layers.0.b'\)"),
], ids=["Adam mean", "Adam variance", "Momentum velocity"])
def test_a_checkpoint_missing_the_state_of_a_parameter_that_was_updated_is_refused_and_changes_nothing(
        tmp_path, make, entry, message):
    """A moment left out of the file while its step count says the parameter was updated loaded as None:
    the next step restarted it from zero and went elsewhere than the saved run's."""
    np.random.seed(0)
    model = Regression()
    optimizer = make(model.params())
    x = zero.Variable(np.random.rand(8, 3).astype(np.float32))
    for _ in range(3):
        loss = model.loss(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    path = save_checkpoint(tmp_path / "run.npz", model, optimizer, epoch=1)
    _rewrite_checkpoint(path, _drop(entry))
    np.random.seed(1)
    other = Regression()
    other_optimizer = make(other.params())
    other.loss(x).backward()
    other_optimizer.step()
    attribute = entry.split("/")[1].split(".")[0]
    state = [a.copy() for a in getattr(other_optimizer, attribute)]
    _assert_refused_unchanged(path, other, other_optimizer, match=message)
    assert all((a == b).all() for a, b in zip(getattr(other_optimizer, attribute), state))


def test_restore_if_trained_turns_down_a_checkpoint_whose_epoch_is_not_one_number(tmp_path):
    model, optimizer, _ = _trained()
    path = save_checkpoint(tmp_path / "run.npz", model, optimizer, epoch=2)
    _rewrite_checkpoint(path, _set("epoch", np.array([1, 2])))
    restored, message = restore_if_trained(_trained(steps=1)[0], path, min_epochs=1)
    assert not restored and "entry 'epoch' must be one number" in message


def test_optimizer_state_is_refused_for_an_optimizer_over_parameters_the_model_does_not_hold(tmp_path):
    model, optimizer, _ = _trained()
    path = save_checkpoint(tmp_path / "run.npz", model, optimizer)
    reader, _, _ = _trained(steps=1)
    stranger = Regression()   # an optimizer over another model's parameters, loaded with `reader`
    _assert_refused_unchanged(path, reader, Adam(stranger.params(), lr=0.5),
                              match="parameter 0 was 'net.layers.0.W' when it was saved, but is a parameter this "
                                    "model does not hold")


@pytest.mark.parametrize("make, other, message", [
    (lambda ps: Adam(ps, lr=0.01), lambda ps: Adam(ps, lr=0.01, betas=(0.5, 0.999)),
     r"trained with Adam betas \[0.9, 0.999\], but this Adam has \[0.5, 0.999\]"),
    (lambda ps: Adam(ps, lr=0.01), lambda ps: Adam(ps, lr=0.01, weight_decay=0.1),
     r"trained with Adam weight_decay 0.0, but this Adam has 0.1"),
    (lambda ps: Momentum(ps, lr=0.1), lambda ps: Momentum(ps, lr=0.1, momentum=0.5),
     r"trained with Momentum momentum 0.9, but this Momentum has 0.5"),
], ids=["Adam betas", "Adam weight decay", "momentum"])
def test_a_checkpoint_refuses_an_optimizer_with_other_hyperparameters_by_name(tmp_path, make, other, message):
    """The learning rate is restored from the file (schedules change it); betas, eps, weight decay and
    momentum are settings a resumed run must repeat: it was resumed silently with the new ones."""
    np.random.seed(0)
    model = Regression()
    optimizer = make(model.params())
    model.loss(zero.Variable(np.random.rand(4, 3).astype(np.float32))).backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "run.npz", model, optimizer)
    reader = Regression()
    _assert_refused_unchanged(path, reader, other(reader.params()), match=message)
    load_checkpoint(path, reader, make(reader.params()))   # the same settings load
    _rewrite_checkpoint(path, _drop("optimizer/hyper/"))
    load_checkpoint(path, reader, other(reader.params()))  # a file written before they were saved: not compared


def test_a_missing_buffer_found_after_the_weights_leaves_other_weights_untouched(tmp_path):
    np.random.seed(0)
    saved = NormalizedRegression()
    saved.loss(zero.Variable(np.random.rand(8, 3).astype(np.float32)))
    path = save_checkpoint(tmp_path / "run.npz", saved)
    _rewrite_checkpoint(path, _drop("buffer/norm.running_var"))
    np.random.seed(1)
    model = NormalizedRegression()
    model.loss(zero.Variable(np.random.rand(8, 3).astype(np.float32)))
    _assert_refused_unchanged(path, model, match="running_var")


def test_an_optimizer_that_has_not_stepped_yet_round_trips(tmp_path):
    """Adam has no moments before its first step: the checkpoint must still load (None is no array)."""
    np.random.seed(0)
    model = _layers(head=Linear(3, in_size=5))
    save_checkpoint(tmp_path / "run.npz", model, Adam(model.params(), lr=0.01))
    restored = Adam(model.params(), lr=0.5)
    load_checkpoint(tmp_path / "run.npz", model, restored)
    assert restored.lr == 0.01 and restored.steps == [0, 0]
    assert restored.means == [None, None] and restored.variances == [None, None]


def test_saving_a_model_whose_lazy_weights_do_not_exist_yet_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="is not created yet"):
        save_checkpoint(tmp_path / "run.npz", _layers(head=Linear(10)))   # W (in_size, 10) made on the first call
    assert list(tmp_path.iterdir()) == []


def test_optimizer_state_loaded_for_a_lazy_model_goes_to_its_device(tmp_path, device):
    """Its parameters have no data yet to take the device from: the model's device decides (it was the host's)."""
    np.random.seed(0)
    saved = _layers(head=Linear(3, in_size=5))
    optimizer = Adam(saved.params(), lr=0.01)
    F.sum(saved.head(np.ones((2, 5), np.float32))).backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "run.npz", saved, optimizer)
    reader = _layers(head=Linear(3)).to(device)
    reader_optimizer = Adam(reader.params(), lr=0.01)
    load_checkpoint(path, reader, reader_optimizer)
    assert [device_of(m) for m in reader_optimizer.means + reader_optimizer.variances] == [device] * 4
    np.testing.assert_array_equal(host(reader_optimizer.means[0]), optimizer.means[0])


def test_optimizer_state_for_a_lazy_parameter_is_checked_against_the_files_weights(tmp_path):
    """A lazy parameter has no data to compare its moments with: the file's own weights give the
    shape (a (1, 3) moment for a (5, 3) W was loaded, and Adam's flat step broadcast it)."""
    np.random.seed(0)
    saved = _layers(head=Linear(3, in_size=5))
    optimizer = Adam(saved.params(), lr=0.01)
    F.sum(saved.head(np.ones((2, 5), np.float32))).backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "run.npz", saved, optimizer, epoch=1)
    _rewrite_checkpoint(path, _set("optimizer/means.0", np.ones((1, 3), np.float32)))
    reader = _layers(head=Linear(3))
    reader_optimizer = Adam(reader.params(), lr=0.01)
    _assert_refused_unchanged(path, reader, reader_optimizer, match=r"optimizer means\[0\] has shape \(1, 3\)")
    assert reader.head.W.data is None and reader_optimizer.means == [None, None]


def test_weights_loaded_into_a_lazy_model_go_to_its_device(tmp_path, device):
    np.random.seed(0)
    path = save_checkpoint(tmp_path / "run.npz", _layers(head=Linear(3, in_size=5)))
    reader = _layers(head=Linear(3)).to(device)                       # no weights yet: the file makes them
    load_checkpoint(path, reader)
    assert reader.head.W.device == device and reader.head.W.shape == (5, 3)


def test_an_interrupted_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    model, optimizer, _ = _trained()
    path = save_checkpoint(tmp_path / "run.npz", model, optimizer, epoch=1)
    old_bytes = path.read_bytes()

    write_arrays = zero.utils.write_npz

    def crash(file, arrays):  # the power fails halfway through writing the new checkpoint
        write_arrays(file, dict(list(arrays.items())[:len(arrays) // 2]))
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(zero.utils, "write_npz", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, optimizer, epoch=2)
    assert path.read_bytes() == old_bytes
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]  # no temporary file left behind


@pytest.mark.parametrize("epoch, history, message", [
    (2.7, None, "epoch must be a whole number >= 0, got 2.7"),   # was saved as 2
    (None, None, "epoch must be a whole number >= 0, got None"),
    (-1, None, "epoch must be a whole number >= 0, got -1"),
    (True, None, "epoch must be a whole number >= 0, got True"),
    (2, {"loss": [[1, 2], [3]]}, "history 'loss' must be a list of numbers"),
    (2, {"loss": ["x"]}, "history 'loss' must be a list of numbers"),
    (2, {"loss": [[1.0, 2.0]]}, r"history 'loss' must be a list of numbers, got shape \(1, 2\)"),
])
def test_saving_a_bad_epoch_or_history_is_refused_by_name_and_keeps_the_old_checkpoint(tmp_path, epoch, history,
                                                                                       message):
    model, optimizer, _ = _trained()
    path = save_checkpoint(tmp_path / "run.npz", model, optimizer, epoch=1)
    old_bytes = path.read_bytes()
    with pytest.raises(ValueError, match=rf"saving a checkpoint of Regression: {message}"):
        save_checkpoint(path, model, optimizer, epoch=epoch, history=history)
    assert path.read_bytes() == old_bytes
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]


def test_a_checkpoint_says_the_epochs_its_run_was_to_reach_when_saved_with_them(tmp_path):
    """A file saved during training (planned_epochs) tells a half-trained model from a finished one;
    files saved without them (at the end of a run, or before they were saved) say None."""
    model, optimizer, _ = _trained()
    during = save_checkpoint(tmp_path / "during.npz", model, optimizer, epoch=2, planned_epochs=5)
    assert load_checkpoint(during, model, optimizer)["planned_epochs"] == 5
    after = save_checkpoint(tmp_path / "after.npz", model, optimizer, epoch=2)
    assert load_checkpoint(after, model, optimizer)["planned_epochs"] is None
    old_bytes = during.read_bytes()
    for planned in (1, 2.0, -3):   # fewer than the epoch reached, or not a count: refused, the old file kept
        with pytest.raises(ValueError, match=rf"saving a checkpoint of Regression: planned_epochs must be a whole "
                                             rf"number >= 2, got {planned}"):
            save_checkpoint(during, model, optimizer, epoch=2, planned_epochs=planned)
    assert during.read_bytes() == old_bytes


def test_fit_resumed_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path):
    x = np.random.default_rng(0).random((40, 3)).astype(np.float32)

    straight, optimizer = _fresh_regression()
    full_history = fit(straight, optimizer, x, epochs=3, batch_size=8, x_heldout=x[:10])
    first, first_optimizer = _fresh_regression()
    history = fit(first, first_optimizer, x, epochs=1, batch_size=8, x_heldout=x[:10])
    save_checkpoint(tmp_path / "c.npz", first, first_optimizer, 1, history)
    resumed, resumed_optimizer = _fresh_regression()
    state = load_checkpoint(tmp_path / "c.npz", resumed, resumed_optimizer)
    history = fit(resumed, resumed_optimizer, x, epochs=3, batch_size=8, x_heldout=x[:10],
                  history=state["history"], start_epoch=state["epoch"])
    np.testing.assert_allclose(history["train_loss"], full_history["train_loss"], rtol=1e-6)
    for name, array in _weights(straight).items():
        np.testing.assert_array_equal(_weights(resumed)[name], array)
    assert full_history["heldout_loss"][-1] < full_history["heldout_loss"][0]


def test_fit_saves_at_each_report_so_an_interrupted_run_resumes_as_if_uninterrupted(tmp_path):
    """With a checkpoint, fit saves whenever it prints the losses: Ctrl-C in epoch 3 leaves epoch 2's
    model, optimizer and history, and resuming from them ends where an uninterrupted run does (the
    checkpoint was written only at the end before, and such a run lost all its training)."""
    x = np.random.default_rng(0).random((40, 3)).astype(np.float32)   # 5 batches of 8, + 1 held-out call
    straight, optimizer = _fresh_regression()
    full_history = fit(straight, optimizer, x, epochs=3, batch_size=8, x_heldout=x[:10])
    path = tmp_path / "c.npz"
    interrupted, interrupted_optimizer = _fresh_regression()
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted_at_call(interrupted, "loss", 13), interrupted_optimizer, x, epochs=3, batch_size=8,
            x_heldout=x[:10], checkpoint=path, settings={"lr": 0.01})
    resumed, resumed_optimizer = _fresh_regression()
    state = load_checkpoint(path, resumed, resumed_optimizer, settings={"lr": 0.01})
    assert state["epoch"] == 2 and state["history"] == {key: values[:2] for key, values in full_history.items()}
    history = fit(resumed, resumed_optimizer, x, epochs=3, batch_size=8, x_heldout=x[:10],
                  history=state["history"], start_epoch=2, checkpoint=path)
    assert history == full_history
    for name, array in _weights(straight).items():
        np.testing.assert_array_equal(_weights(resumed)[name], array)
    assert int(read_checkpoint(path, ["epoch"])["epoch"]) == 3
    # with report_every=2 the first save comes after epoch 2: Ctrl-C in epoch 2 leaves no file
    path.unlink()
    interrupted, interrupted_optimizer = _fresh_regression()
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted_at_call(interrupted, "loss", 8), interrupted_optimizer, x, epochs=3, batch_size=8,
            report_every=2, checkpoint=path)
    assert not path.exists()


def test_a_checkpoint_saved_without_a_history_resumes(tmp_path):
    """save_checkpoint's history is optional, and such a file loads as {}: fit appends to it (it trained a
    whole epoch, then failed on history['train_loss'])."""
    x = np.random.default_rng(0).random((16, 3)).astype(np.float32)
    model, optimizer = _fresh_regression()
    save_checkpoint(tmp_path / "c.npz", model, optimizer, epoch=1)
    state = load_checkpoint(tmp_path / "c.npz", model, optimizer)
    assert state["history"] == {}
    history = fit(model, optimizer, x, epochs=2, batch_size=8, history=state["history"], start_epoch=1)
    assert len(history["train_loss"]) == 1 and history["heldout_loss"] == []


def test_loss_history_adds_the_lists_it_lacks_and_keeps_what_it_has():
    kept = {"train_loss": [1.0]}
    assert loss_history(kept, ["train_loss", "step_loss"]) is kept
    assert kept == {"train_loss": [1.0], "step_loss": []}
    assert loss_history(None, ("a", "b")) == {"a": [], "b": []}


def test_resume_restores_only_when_asked_and_the_checkpoint_exists(tmp_path):
    from argparse import Namespace
    model, optimizer, _ = _trained(steps=3)
    checkpoint = tmp_path / "c.npz"
    save_checkpoint(checkpoint, model, optimizer, epoch=4, history={"train_loss": [3.0, 2.0, 1.5, 1.0]})
    fresh_start = {"train_loss": []}
    for args, path in [(Namespace(resume=False), checkpoint), (Namespace(resume=True), tmp_path / "missing.npz")]:
        other, other_optimizer, _ = _trained(steps=1)
        before = _weights(other)
        assert resume(path, other, other_optimizer, args, history=fresh_start) == (fresh_start, 0)
        assert all(np.array_equal(before[k], v) for k, v in _weights(other).items())   # untouched
    other, other_optimizer, _ = _trained(steps=1)
    history, start_epoch = resume(checkpoint, other, other_optimizer, Namespace(resume=True, epochs=4),
                                  history=fresh_start)
    assert start_epoch == 4 and history == {"train_loss": [3.0, 2.0, 1.5, 1.0]}
    assert all(np.array_equal(_weights(model)[k], v) for k, v in _weights(other).items())
    assert other_optimizer.steps == optimizer.steps                                     # Adam's t restored too


def test_a_resume_that_finds_no_checkpoint_says_it_trains_from_scratch(tmp_path, capsys):
    """--resume with no checkpoint file trained from scratch without a word, as if it had resumed."""
    model, optimizer, _ = _trained(steps=1)
    missing = tmp_path / "missing.npz"
    assert resume(missing, model, optimizer, Namespace(resume=True), history={}) == ({}, 0)
    assert capsys.readouterr().out == f"no checkpoint at {missing}: training from scratch\n"
    resume(missing, model, optimizer, Namespace(resume=False), history={})   # no --resume: nothing to say
    assert capsys.readouterr().out == ""


def test_a_resumed_checkpoint_past_the_asked_epochs_sets_the_epochs_to_those_the_model_holds(tmp_path, capsys):
    """--resume --epochs 2 on a 4-epoch checkpoint trains nothing, and the titles must then say 4, not 2."""
    model, optimizer, _ = _trained(steps=1)
    checkpoint = save_checkpoint(tmp_path / "c.npz", model, optimizer, epoch=4)
    args = Namespace(resume=True, epochs=2)
    assert resume(checkpoint, model, optimizer, args)[1] == 4
    assert args.epochs == 4
    assert "after epoch 4, past --epochs 2: nothing left to train" in capsys.readouterr().out
    args = Namespace(resume=True, epochs=6)   # more to train: --epochs stays
    resume(checkpoint, model, optimizer, args)
    assert args.epochs == 6 and capsys.readouterr().out == f"resumed from {checkpoint} after epoch 4\n"


def test_a_resumed_checkpoint_at_the_asked_epochs_just_says_where_it_resumed(tmp_path, capsys):
    model, optimizer, _ = _trained(steps=1)
    checkpoint = save_checkpoint(tmp_path / "c.npz", model, optimizer, epoch=4)
    args = Namespace(resume=True, epochs=4)
    assert resume(checkpoint, model, optimizer, args)[1] == 4
    assert args.epochs == 4 and capsys.readouterr().out == f"resumed from {checkpoint} after epoch 4\n"


def test_fit_or_resume_saves_then_continues_where_it_stopped(tmp_path):
    from argparse import Namespace
    x = np.random.default_rng(0).random((40, 3)).astype(np.float32)

    straight, optimizer = _fresh_regression()
    full_history = fit(straight, optimizer, x, epochs=3, batch_size=8)
    checkpoint = tmp_path / "c.npz"
    options = dict(batch_size=8, device="cpu", seed=0)
    fit_or_resume(*_fresh_regression(), x, Namespace(epochs=1, resume=False, **options), checkpoint)
    assert load_checkpoint(checkpoint, Regression())["epoch"] == 1
    np.random.seed(1)  # other initial weights: only the checkpoint can make this run match
    resumed = Regression()
    history = fit_or_resume(resumed, Adam(resumed.params(), lr=0.01), x, Namespace(epochs=3, resume=True, **options),
                            checkpoint)
    np.testing.assert_allclose(history["train_loss"], full_history["train_loss"], rtol=1e-6)
    assert load_checkpoint(checkpoint, Regression())["epoch"] == 3


def test_fit_or_resume_says_how_many_epochs_it_trained_in_words(tmp_path, capsys):
    """It printed 'trained 1 epochs'."""
    x = np.random.default_rng(0).random((16, 3)).astype(np.float32)
    options = dict(batch_size=8, device="cpu", seed=0, resume=True)
    fit_or_resume(*_fresh_regression(), x, Namespace(epochs=1, **options), tmp_path / "c.npz")
    assert "trained 1 epoch in " in capsys.readouterr().out
    fit_or_resume(*_fresh_regression(), x, Namespace(epochs=3, **options), tmp_path / "c.npz")
    assert "trained 2 epochs in " in capsys.readouterr().out


def test_fit_or_resume_reports_every_so_many_epochs_as_fit_does(tmp_path, capsys):
    x = np.random.default_rng(0).random((16, 3)).astype(np.float32)
    options = dict(batch_size=8, device="cpu", seed=0, resume=False)
    fit_or_resume(*_fresh_regression(), x, Namespace(epochs=5, **options), tmp_path / "c.npz", report_every=2)
    printed = [line.split(":")[0] for line in capsys.readouterr().out.splitlines() if line.startswith("training")]
    assert printed == ["training epoch 2/5", "training epoch 4/5", "training epoch 5/5"]


def test_mnist_splits_with_only_the_test_split(real_mnist_dir):
    data = mnist_splits(real_mnist_dir)  # the shared folder holds only the test split
    assert data.x_train.shape == (8000, 784) and data.x_heldout.shape == (2000, 784)
    assert data.x_train.dtype == np.float32 and "test split" in data.description
    from zero.mnist import load_mnist
    x, _ = load_mnist("test", real_mnist_dir, flatten=True)
    np.testing.assert_array_equal(data.x_heldout, x[8000:])
    small = mnist_splits(real_mnist_dir, "test", train_limit=100, heldout_limit=10)
    assert len(small.x_train) == 100 and len(small.x_heldout) == 10 and len(small.t_heldout) == 10
    with pytest.raises(ValueError, match="source"):
        mnist_splits(real_mnist_dir, "validation")


def test_without_files_or_network_one_message_names_every_file_the_run_reads(tmp_path, monkeypatch):
    """It named the training split's files only; the test split's came in a second error, once those
    were in place, and the test-split-only way to run was not mentioned."""
    import urllib.request
    from zero.errors import SetupError

    def offline(*args, **kwargs):
        raise OSError("no network")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(SetupError) as error:
        mnist_splits(tmp_path / "empty", "train")
    message = str(error.value)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz", "--source test"):
        assert name in message, name
    with pytest.raises(SetupError, match=r"reads the test split alone: t10k-images-idx3-ubyte.gz and t10k-labels"):
        mnist_splits(tmp_path / "empty", "test")


TRAIN_CODE, TEST_CODE = 1, 2


def _fake_mnist(monkeypatch):
    """zero.training reads fake MNIST splits of the official sizes: image i of a split is the row
    [i, TRAIN_CODE or TEST_CODE] and its label is i, so a test sees which images each set got and
    that each kept its label. Returns the list of folders read."""
    import zero.training as training
    folders = []

    def load_mnist(split, folder, flatten):
        folders.append(folder)
        count = SPLITS[split][2]
        code = TRAIN_CODE if split == "train" else TEST_CODE
        return np.stack([np.arange(count), np.full(count, code)], axis=1).astype(np.float32), np.arange(count)

    monkeypatch.setattr(training, "load_mnist", load_mnist)
    return folders


def _assert_paired(images, labels):
    np.testing.assert_array_equal(images[:, 0], labels)


def test_the_test_split_alone_trains_on_its_first_8000_images_and_holds_out_the_rest_with_their_labels(
        tmp_path, monkeypatch):
    _fake_mnist(monkeypatch)
    data = mnist_splits(tmp_path, "test")
    np.testing.assert_array_equal(data.t_train, np.arange(8000))
    np.testing.assert_array_equal(data.t_heldout, np.arange(8000, 10_000))
    _assert_paired(data.x_train, data.t_train)
    _assert_paired(data.x_heldout, data.t_heldout)
    assert "images 0-7999" in data.description and "images 8000-9999" in data.description


def test_the_training_split_trains_and_the_whole_test_split_is_held_out(tmp_path, monkeypatch):
    _fake_mnist(monkeypatch)
    data = mnist_splits(tmp_path, "train")
    assert len(data.x_train) == 60_000 and (data.x_train[:, 1] == TRAIN_CODE).all()
    assert len(data.x_heldout) == 10_000 and (data.x_heldout[:, 1] == TEST_CODE).all()
    _assert_paired(data.x_train, data.t_train)
    assert data.source == "train"


@pytest.mark.parametrize("train_limit, heldout_limit, train_count, heldout_count", [
    (5, 3, 5, 3), (1, None, 1, 2000), (None, 20_000, 8000, 2000)])
def test_the_limits_keep_the_first_images_of_each_set_with_their_labels(
        tmp_path, monkeypatch, train_limit, heldout_limit, train_count, heldout_count):
    folders = _fake_mnist(monkeypatch)
    args = Namespace(data_dir=tmp_path / "mnist", source="test", train_limit=train_limit, heldout_limit=heldout_limit)
    data = mnist_splits_from(args)
    np.testing.assert_array_equal(data.t_train, np.arange(train_count))
    np.testing.assert_array_equal(data.t_heldout, 8000 + np.arange(heldout_count))
    _assert_paired(data.x_train, data.t_train)
    _assert_paired(data.x_heldout, data.t_heldout)
    assert folders == [tmp_path / "mnist"] and str(tmp_path / "mnist") in data.description


@pytest.mark.parametrize("source, train_limit, heldout_limit, train_range, heldout_range", [
    ("test", 5, 3, "MNIST test split, images 0-4)", "MNIST test split, images 8000-8002)"),
    ("test", 1, None, "MNIST test split, image 0)", "MNIST test split, images 8000-9999)"),
    ("train", 100, 10, "MNIST training split, images 0-99)", "MNIST test split, images 0-9)"),
    ("train", None, None, "MNIST training split, images 0-59999)", "MNIST test split, images 0-9999)")])
def test_the_description_names_the_images_each_set_really_holds(
        tmp_path, monkeypatch, source, train_limit, heldout_limit, train_range, heldout_range):
    _fake_mnist(monkeypatch)
    description = mnist_splits(tmp_path, source, train_limit, heldout_limit).description
    assert f"({train_range}," in description and f"({heldout_range} from" in description


@pytest.mark.parametrize("limits", [dict(train_limit=0), dict(heldout_limit=0), dict(train_limit=-5),
                                    dict(heldout_limit=2.5), dict(train_limit=True)])
def test_a_limit_that_is_not_a_positive_whole_number_is_refused_naming_it(tmp_path, monkeypatch, limits):
    _fake_mnist(monkeypatch)
    (option, value), = limits.items()
    with pytest.raises(ValueError, match=f"mnist_splits: {option} must be a whole number >= 1, got {value!r}"):
        mnist_splits(tmp_path, "test", **limits)


@pytest.mark.parametrize("option", ["--train-limit", "--heldout-limit"])
@pytest.mark.parametrize("value", ["0", "-3", "ten"])
def test_the_limit_options_refuse_what_is_not_a_positive_count(option, value, capsys):
    import argparse
    parser = add_data_options(argparse.ArgumentParser())
    with pytest.raises(SystemExit):
        parser.parse_args([option, value])
    assert option in capsys.readouterr().err


def test_fit_and_mean_loss_refuse_an_empty_image_array_by_name():
    model, optimizer = _fresh_regression()
    empty = np.zeros((0, 1), np.float32)
    with pytest.raises(ValueError, match="fit: no training images"):
        fit(model, optimizer, empty, epochs=1)
    with pytest.raises(ValueError, match="mean_loss: no images"):
        mean_loss(model, empty)


@pytest.mark.parametrize("options, message", [
    (dict(epochs=-1), "fit: epochs must be a whole number >= 0, got -1"),          # returned an empty history
    (dict(epochs="3"), "fit: epochs must be a whole number >= 0, got '3'"),        # 'can only concatenate str'
    (dict(epochs=2, start_epoch=-5), "fit: start_epoch must be a whole number >= 0, got -5"),
    (dict(epochs=1, batch_size=0), "fit: batch_size must be a whole number >= 1, got 0"),
    (dict(epochs=1, x_heldout=np.zeros((0, 3), np.float32)), "fit: no held-out images"),   # after an epoch's training
])
def test_fit_refuses_bad_arguments_by_name_before_training(options, message):
    model, optimizer = _fresh_regression()
    before = _weights(model)
    x = np.random.default_rng(0).random((8, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        fit(model, optimizer, x, **options)
    assert all(np.array_equal(before[k], v) for k, v in _weights(model).items())


@pytest.mark.parametrize("batch_size", [0, -1])
def test_mean_loss_refuses_a_batch_size_below_one_by_name(batch_size):
    """-1 made range() empty: a mean loss of 0.0 over no batch at all; 0 failed inside range()."""
    model, _ = _fresh_regression()
    x = np.random.default_rng(0).random((4, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=f"mean_loss: batch_size must be a whole number >= 1, got {batch_size}"):
        mean_loss(model, x, batch_size=batch_size)


def test_fit_reports_every_so_many_epochs_and_the_last_but_records_every_one(capsys):
    model, optimizer = _fresh_regression()
    x = np.random.default_rng(0).random((8, 3)).astype(np.float32)
    history = fit(model, optimizer, x, epochs=5, batch_size=4, x_heldout=x, report_every=2)
    printed = [line.split(":")[0] for line in capsys.readouterr().out.splitlines()]
    assert printed == ["training epoch 2/5", "training epoch 4/5", "training epoch 5/5"]
    assert len(history["train_loss"]) == len(history["heldout_loss"]) == 5
    with pytest.raises(ValueError, match="fit: report_every must be a whole number >= 1, got 0"):
        fit(model, optimizer, x, epochs=1, report_every=0)


TEST_FILES, TRAIN_FILES = SPLITS["test"][:2], SPLITS["train"][:2]


@pytest.mark.parametrize("files, chosen", [
    ((), "train"),                                           # nothing there yet: load_mnist downloads both
    (TEST_FILES, "test"),
    (tuple(name.removesuffix(".gz") for name in TEST_FILES), "test"),
    (TEST_FILES + TRAIN_FILES, "train"),
    (TEST_FILES + TRAIN_FILES[:1], "train"),                 # half a training split: completed or named, not
    (TEST_FILES + TRAIN_FILES[1:], "train"),                 # passed over for the test split silently
    (TEST_FILES[:1], "train"),                               # the test split only half there
], ids=["nothing", "test split", "test split unpacked", "both splits", "training images only", "training labels only",
      "half a test split"])
def test_auto_trains_on_the_test_split_only_when_it_alone_is_complete(tmp_path, monkeypatch, files, chosen):
    _fake_mnist(monkeypatch)
    for name in files:
        (tmp_path / name).touch()
    assert mnist_splits(tmp_path).source == chosen


def test_without_a_data_dir_the_splits_come_from_the_zero_data_dir_folder(tmp_path, monkeypatch):
    folders = _fake_mnist(monkeypatch)
    monkeypatch.setenv("ZERO_DATA_DIR", str(tmp_path))
    for name in TEST_FILES:
        (tmp_path / name).touch()
    data = mnist_splits()
    assert data.source == "test" and folders == [tmp_path] and str(tmp_path) in data.description


def test_the_data_options_default_to_auto_and_to_the_scripts_limits():
    import argparse
    parser = add_data_options(argparse.ArgumentParser(), train_limit=512)
    args = parser.parse_args([])
    assert (args.source, args.train_limit, args.heldout_limit) == ("auto", 512, None)
    args = parser.parse_args(["--source", "test", "--train-limit", "5", "--heldout-limit", "7"])
    assert (args.source, args.train_limit, args.heldout_limit) == ("test", 5, 7)
    with pytest.raises(SystemExit):
        parser.parse_args(["--source", "validation"])


def test_restore_if_trained_loads_only_a_long_enough_checkpoint(tmp_path):
    np.random.seed(0)
    trained, fresh = Regression(), Regression()
    trained.net(np.ones((1, 3), np.float32))                          # create the lazy weights
    fresh.net(np.ones((1, 3), np.float32))
    path = tmp_path / "other_step.npz"
    save_checkpoint(path, trained, epoch=3)
    before = fresh.net.layers[0].W.data.copy()
    restored, message = restore_if_trained(fresh, path, min_epochs=5)
    assert not restored and "only 3 epochs" in message
    np.testing.assert_array_equal(fresh.net.layers[0].W.data, before)
    restored, _ = restore_if_trained(fresh, path, min_epochs=3)
    assert restored
    np.testing.assert_array_equal(fresh.net.layers[0].W.data, trained.net.layers[0].W.data)
    assert restore_if_trained(fresh, tmp_path / "missing.npz", 1)[0] is False
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])   # an interrupted copy
    restored, message = restore_if_trained(fresh, truncated, 1)
    assert not restored and "truncated.npz" in message
    np.testing.assert_array_equal(fresh.net.layers[0].W.data, trained.net.layers[0].W.data)



def test_a_model_for_comparison_trained_on_other_images_is_not_loaded(tmp_path):
    """Step A.3's autoencoder, which never saw a 2, was loaded as A.1's plain model and ranked against a
    denoiser trained on 512 images: the data options a file recorded must agree with this run's."""
    np.random.seed(0)
    trained, fresh = Regression(), Regression()
    trained.net(np.ones((1, 3), np.float32))
    fresh.net(np.ones((1, 3), np.float32))
    before = fresh.net.layers[0].W.data.copy()
    without_2 = tmp_path / "without_2.npz"
    save_checkpoint(without_2, trained, epoch=20, settings={"source": "test", "train_limit": "None", "anomaly_digit": "2"})
    this_run = {"source": "test", "train_limit": 512, "anomaly_digit": None}
    restored, message = restore_if_trained(fresh, without_2, min_epochs=1, data=this_run)
    assert not restored and "trained on other data (--train-limit None, now 512, --anomaly-digit 2, now None)" in message
    np.testing.assert_array_equal(fresh.net.layers[0].W.data, before)
    step7 = tmp_path / "vae.npz"              # recorded no --anomaly-digit (step 7 has none): it saw every digit
    save_checkpoint(step7, trained, epoch=20, settings={"source": "test", "train_limit": "512"})
    assert restore_if_trained(fresh, step7, min_epochs=1, data=this_run)[0]
    older = tmp_path / "older.npz"             # 'auto': written before the split was recorded, so unknown
    save_checkpoint(older, trained, epoch=20, settings={"source": "auto", "train_limit": "512"})
    assert restore_if_trained(fresh, older, min_epochs=1, data=this_run)[0]
    assert not restore_if_trained(fresh, step7, min_epochs=1, data=dict(this_run, source="train"))[0]


def test_may_have_seen_heldout_only_for_a_test_split_model_in_a_training_split_run(tmp_path):
    """A referee or U-Net scored against held-out images must not have trained on them: a run on the
    training split holds out the whole test split, whose first images --source test trains on."""
    np.random.seed(0)
    model = Regression()
    model.net(np.ones((1, 3), np.float32))
    paths = {}
    for name, settings in [("test", {"source": "test"}), ("train", {"source": "train"}), ("auto", {"source": "auto"}),
                           ("none", None)]:
        paths[name] = tmp_path / f"{name}.npz"
        save_checkpoint(paths[name], model, epoch=1, settings=settings)
    assert may_have_seen_heldout(paths["test"], "train")
    assert not may_have_seen_heldout(paths["test"], "test")     # its last images: no run trains on them
    assert not may_have_seen_heldout(paths["train"], "test") and not may_have_seen_heldout(paths["train"], "train")
    assert not may_have_seen_heldout(paths["auto"], "train")    # written before the split was recorded
    assert not may_have_seen_heldout(paths["none"], "train")
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(paths["test"].read_bytes()[:100])
    with pytest.raises(CheckpointRefused, match="damaged.npz"):
        may_have_seen_heldout(damaged, "train")


class NormalizedRegression(Model):
    """Batch norm and dropout: a loss that depends on train or test mode."""

    def __init__(self):
        super().__init__()
        self.hidden, self.norm, self.drop, self.out = Linear(4, in_size=3), BatchNorm(4), Dropout(0.5), Linear(2)

    def loss(self, x):
        return F.mean_squared_error(self.out(self.drop(self.norm(self.hidden(x)))), x[:, :2])


def test_mean_loss_evaluates_in_test_mode():
    """Held-out images must not move batch norm's running statistics, and dropout must be off."""
    np.random.seed(0)
    model = NormalizedRegression()
    x = (10 + 5 * np.random.standard_normal((64, 3))).astype(np.float32)
    first, second = mean_loss(model, x, batch_size=16), mean_loss(model, x, batch_size=16)
    assert first == second
    np.testing.assert_array_equal(model.norm.running_mean, np.zeros(4))  # as initialized
    np.testing.assert_array_equal(model.norm.running_var, np.ones(4))
    assert model.training  # the model's own mode is left as it was


def test_restore_or_fit_loads_a_long_enough_checkpoint_and_otherwise_trains_with_the_scripts_settings(tmp_path):
    from types import SimpleNamespace
    np.random.seed(0)
    x = np.random.standard_normal((64, 3)).astype(np.float32)
    args = SimpleNamespace(epochs=3, batch_size=16, lr=1e-2, device="cpu", seed=0)
    trained = Regression()
    trained.net(x[:1])
    path = tmp_path / "other_step.npz"
    save_checkpoint(path, trained, epoch=3)
    loaded = Regression()
    loaded.net(x[:1])
    assert restore_or_fit(loaded, path, args, x, "other") is True
    np.testing.assert_array_equal(loaded.net.layers[0].W.data, trained.net.layers[0].W.data)

    args.epochs = 4                                                   # the checkpoint is now too short
    fresh = Regression()
    fresh.net(x[:1])
    before = fresh.net.layers[0].W.data.copy()
    start_loss = float(fresh.loss(x).data)
    assert restore_or_fit(fresh, path, args, x, "other") is False
    assert not np.array_equal(fresh.net.layers[0].W.data, before)     # trained here...
    assert float(fresh.loss(x).data) < start_loss                     # ...and the loss went down

    frozen = Regression()                                             # lr overrides args.lr: 0 changes nothing
    frozen.net(x[:1])
    before = frozen.net.layers[0].W.data.copy()
    assert restore_or_fit(frozen, path, args, x, "other", lr=0.0) is False
    np.testing.assert_array_equal(frozen.net.layers[0].W.data, before)


@pytest.mark.parametrize("saved, script", [
    ({"source": "test"}, {"source": "train"}),
    ({"source": "train", "train_limit": "100"}, {"source": "train", "train_limit": 200}),
    ({"anomaly_digit": "2"}, {"anomaly_digit": 3}),
], ids=["another split", "another train limit", "another anomaly digit"])
def test_restore_or_fit_trains_here_when_the_checkpoint_saw_other_data(tmp_path, capsys, saved, script):
    """The script's own --source, --train-limit and --anomaly-digit are compared with the file's: a model
    trained long enough on other images is not the one this run compares with."""
    from types import SimpleNamespace
    np.random.seed(0)
    x = np.random.standard_normal((32, 3)).astype(np.float32)
    trained = Regression()
    trained.net(x[:1])
    path = save_checkpoint(tmp_path / "other_step.npz", trained, epoch=5, settings=saved)
    here = Regression()
    here.net(x[:1])
    args = SimpleNamespace(epochs=1, batch_size=16, lr=0.0, device="cpu", seed=0, **script)
    assert restore_or_fit(here, path, args, x, "other") is False
    assert not np.array_equal(here.net.layers[0].W.data, trained.net.layers[0].W.data)
    assert "was trained on other data" in capsys.readouterr().out


def test_restore_or_fit_trains_as_fit_would_with_the_scripts_seed_and_batch_size(tmp_path):
    x = np.random.default_rng(0).random((40, 3)).astype(np.float32)
    args = Namespace(epochs=2, batch_size=7, lr=0.01, device="cpu", seed=5)
    here, _ = _fresh_regression()
    assert restore_or_fit(here, tmp_path / "missing.npz", args, x, "other step") is False
    expected, optimizer = _fresh_regression()
    fit(expected, optimizer, x, epochs=2, batch_size=7, seed=5)
    for name, array in _weights(expected).items():
        np.testing.assert_array_equal(_weights(here)[name], array, err_msg=name)


def test_a_checkpoint_refuses_a_model_with_other_settings_and_says_which(tmp_path):
    from zero.vae import VAE, HierarchicalVAE
    np.random.seed(0)
    gaussian, bernoulli = VAE(12, 6, 2), VAE(12, 6, 2, likelihood="bernoulli")   # same shapes
    path = save_checkpoint(tmp_path / "vae.npz", gaussian, epoch=5)
    before = bernoulli.encoder.hidden.W.data.copy()
    with pytest.raises(ValueError, match="likelihood 'gaussian'.*has likelihood 'bernoulli'"):
        load_checkpoint(path, bernoulli)
    np.testing.assert_array_equal(bernoulli.encoder.hidden.W.data, before)       # untouched
    restored, message = restore_if_trained(bernoulli, path, min_epochs=1)
    assert not restored and "likelihood" in message
    other = VAE(12, 6, 2)                                                        # same settings: loads
    load_checkpoint(path, other)
    np.testing.assert_array_equal(other.encoder.hidden.W.data, gaussian.encoder.hidden.W.data)
    from zero.autoencoder import Autoencoder
    path = save_checkpoint(tmp_path / "denoising.npz", Autoencoder(12, 6, 2, noise_std=0.5))
    with pytest.raises(ValueError, match="noise_std '0.5'.*has noise_std '0'"):
        load_checkpoint(path, Autoencoder(12, 6, 2))
    hvae = HierarchicalVAE(12, 6, 2, likelihood="bernoulli")
    path = save_checkpoint(tmp_path / "hvae.npz", hvae)
    with pytest.raises(ValueError, match="likelihood"):
        load_checkpoint(path, HierarchicalVAE(12, 6, 2))


def test_another_models_checkpoint_is_refused_for_its_type_before_its_settings(tmp_path):
    """--resume on another script's checkpoint listed the options that differed, not that it held another model."""
    from zero.autoencoder import Autoencoder
    from zero.vae import VAE
    np.random.seed(0)
    path = save_checkpoint(tmp_path / "ae.npz", Autoencoder(12, 6, 2), settings={"lr": "0.001", "batch_size": "64"})
    with pytest.raises(ValueError) as refused:
        load_checkpoint(path, VAE(12, 6, 2), settings={"lr": "0.0003", "batch_size": "32"})
    assert "holds model type Autoencoder, not VAE" in str(refused.value)
    assert "--lr" not in str(refused.value)


def test_a_checkpoint_without_saved_settings_still_loads(tmp_path):
    from zero.vae import VAE
    np.random.seed(0)
    model = VAE(12, 6, 2)
    path = save_checkpoint(tmp_path / "vae.npz", model)
    _rewrite_checkpoint(path, _drop("config/"))   # as written before settings were saved
    other = VAE(12, 6, 2, likelihood="bernoulli")
    load_checkpoint(path, other)
    np.testing.assert_array_equal(other.encoder.hidden.W.data, model.encoder.hidden.W.data)


def test_a_checkpoint_written_before_model_types_were_saved_still_loads(tmp_path):
    from zero.vae import VAE
    np.random.seed(0)
    model = VAE(12, 6, 2)
    path = save_checkpoint(tmp_path / "vae.npz", model)
    _rewrite_checkpoint(path, _drop("model_type"))
    other = VAE(12, 6, 2)
    load_checkpoint(path, other)
    np.testing.assert_array_equal(other.encoder.hidden.W.data, model.encoder.hidden.W.data)


def test_a_checkpoint_into_a_lazy_model_is_checked_against_what_it_would_create(tmp_path):
    """A lazy Linear(10) (weights not created yet) must refuse W (5, 3): it could only make (in, 10)."""
    writer = Model()
    writer.head = Linear(3, in_size=5)
    save_checkpoint(tmp_path / "c.npz", writer)
    reader = Model()
    reader.head = Linear(10)
    with pytest.raises(ValueError, match=r"c\.npz.*'head\.W' has shape \(5, 3\)"):
        load_checkpoint(tmp_path / "c.npz", reader)
    assert reader.head.W.data is None                     # still lazy: nothing changed
    fitting = Model()
    fitting.head = Linear(3)
    load_checkpoint(tmp_path / "c.npz", fitting)          # the same layer's file loads
    assert fitting.head.W.shape == (5, 3)


class NoisyRegression(Regression):
    """Draws noise in every loss, as a VAE or a diffusion model does, on the batch's device: from
    NumPy's global generator on the CPU, from the device's own elsewhere (as CuPy's, whose state
    no checkpoint can keep)."""

    def loss(self, x):
        noise = zero.backend.standard_normal(zero.backend.get_array_module(x), x.shape)
        return F.mean_squared_error(self.net(x + 0.1 * noise), x[:, :2])


def test_a_resumed_run_draws_the_noise_an_uninterrupted_one_would(tmp_path, device):
    x = np.random.default_rng(0).random((40, 3)).astype(np.float32)

    def start():  # a step script's start: seed both generators, then build model and optimizer on the device
        zero.backend.seed(0, device)
        model = NoisyRegression().to(device)
        return model, Adam(model.params(), lr=0.01)

    straight, optimizer = start()
    fit(straight, optimizer, x, epochs=3, batch_size=8, device=device)
    first, first_optimizer = start()
    history = fit(first, first_optimizer, x, epochs=1, batch_size=8, device=device)
    save_checkpoint(tmp_path / "c.npz", first, first_optimizer, 1, history)
    resumed, resumed_optimizer = start()                     # a new run of the script, with --resume
    history, start_epoch = resume(tmp_path / "c.npz", resumed, resumed_optimizer, Namespace(resume=True, epochs=3))
    fit(resumed, resumed_optimizer, x, epochs=3, batch_size=8, device=device, history=history,
        start_epoch=start_epoch)
    for name, array in _weights(straight).items():
        np.testing.assert_array_equal(_weights(resumed)[name], array)


def test_a_resumed_run_draws_the_normal_numpy_held_back(tmp_path):
    """NumPy's global generator makes normals in pairs and keeps the second for the next draw: a run
    saved after an odd number of draws must go on with that one, as an uninterrupted run would."""
    model, optimizer, _ = _trained()
    np.random.seed(0)
    np.random.standard_normal()                               # one of a pair: the other is held back
    path = save_checkpoint(tmp_path / "run.npz", model, optimizer)
    uninterrupted = np.random.standard_normal(3)
    np.random.seed(1)                                         # a new process
    restore_random_state(load_checkpoint(path, model, optimizer))
    np.testing.assert_array_equal(np.random.standard_normal(3), uninterrupted)


class _Recorder(Model):
    """A linear model that records the batches `fit` gives it and the loss of each."""

    def __init__(self):
        super().__init__()
        self.net = Linear(1, in_size=3)
        self.batches, self.losses = [], []

    def loss(self, x):
        self.batches.append(np.array(x.data if isinstance(x, zero.Variable) else x))
        loss = F.mean_squared_error(self.net(x), x[:, :1] * 0)
        self.losses.append(float(loss.data))
        return loss


def test_fit_visits_the_seeded_batch_order_of_each_epoch_and_records_the_mean_batch_loss():
    """Epoch e iterates DataLoader(seed=(seed, e)); history holds the mean of that epoch's batch losses."""
    np.random.seed(0)
    x = np.random.rand(10, 3).astype(np.float32)
    model = _Recorder()
    history = fit(model, SGD(model.params(), lr=0.0), x, epochs=3, batch_size=4, seed=7)
    assert len(model.batches) == 3 * 3 and len(history["train_loss"]) == 3 and history["heldout_loss"] == []
    for epoch in (1, 2, 3):
        expected = list(DataLoader(Dataset(x), 4, seed=(7, epoch)))
        seen = model.batches[3 * (epoch - 1):3 * epoch]
        for got, want in zip(seen, expected):
            np.testing.assert_array_equal(got, want)
        assert history["train_loss"][epoch - 1] == sum(model.losses[3 * (epoch - 1):3 * epoch]) / 3


def test_fit_trains_and_scores_the_held_out_images_on_the_models_device(device):
    np.random.seed(0)
    model = Regression().to(device)
    x = np.random.default_rng(0).random((20, 3)).astype(np.float32)
    history = fit(model, Adam(model.params(), lr=0.01), x, epochs=1, batch_size=8, device=device, x_heldout=x[:6])
    assert len(history["train_loss"]) == len(history["heldout_loss"]) == 1
    assert all(param.device == device for param in model.params())


def test_mean_loss_weights_each_batch_by_its_size():
    """With a last partial batch, mean_loss is still the mean over all images, not over batches."""
    np.random.seed(0)
    model = Regression()
    x = np.random.rand(10, 3).astype(np.float32)
    with zero.no_grad():
        per_row = ((model.net(zero.Variable(x)).data.astype(np.float64) - x[:, :2]) ** 2).mean(axis=1)
    np.testing.assert_allclose(mean_loss(model, x, batch_size=4), per_row.mean(), rtol=1e-6)


def test_checkpoint_history_round_trips_exactly_in_float64(tmp_path):
    model, optimizer, _ = _trained()
    history = {"train_loss": [0.1, 1 / 3, 2.718281828459045], "heldout_loss": [0.2]}
    save_checkpoint(tmp_path / "run.npz", model, optimizer, epoch=3, history=history)
    state = load_checkpoint(tmp_path / "run.npz", model, optimizer)
    assert state["history"] == history and state["epoch"] == 3


def test_a_checkpoint_of_another_optimizer_type_is_refused_even_if_its_state_would_fit(tmp_path):
    """Adam's state saved, an SGD (which has no state lists) restored: the type alone must refuse it."""
    model, optimizer, _ = _trained()
    save_checkpoint(tmp_path / "run.npz", model, optimizer)
    sgd = SGD(model.params(), lr=0.5)
    with pytest.raises(ValueError, match="Adam"):
        load_checkpoint(tmp_path / "run.npz", model, sgd)
    assert sgd.lr == 0.5


def test_a_checkpoint_missing_a_buffer_is_refused_and_changes_nothing(tmp_path):
    np.random.seed(0)
    model = NormalizedRegression()
    model.loss(zero.Variable(np.random.rand(8, 3).astype(np.float32)))   # creates Linear(2), moves the stats
    path = save_checkpoint(tmp_path / "run.npz", model)
    _rewrite_checkpoint(path, _drop("buffer/norm.running_var"))
    model.norm.running_mean[...] = 5.0
    with pytest.raises(ValueError, match=r"run\.npz: buffer 'norm\.running_var' is missing"):
        load_checkpoint(path, model)
    np.testing.assert_array_equal(model.norm.running_mean, np.full(4, 5.0))   # left untouched


@pytest.mark.parametrize("stored, message", [
    (np.zeros(5, np.float32), r"buffer 'norm\.running_var' has shape \(5,\) in the file but \(4,\) in the model"),
    (np.ones(4, np.float64), r"buffer 'norm\.running_var' has dtype float64 in the file but float32 in the model"),
], ids=["another shape", "another dtype"])
def test_a_checkpoint_whose_buffer_does_not_fit_the_model_is_refused_and_changes_nothing(tmp_path, stored, message):
    """Buffers are checked as parameters are: batch norm's statistics of another width (or dtype) would
    be set as they are, and fail (or silently upcast) only at the next forward."""
    np.random.seed(0)
    model = NormalizedRegression()
    model.loss(zero.Variable(np.random.rand(8, 3).astype(np.float32)))
    path = save_checkpoint(tmp_path / "run.npz", model)
    _rewrite_checkpoint(path, _set("buffer/norm.running_var", stored))
    model.norm.running_var[...] = 5.0
    with pytest.raises(ValueError, match=message):
        load_checkpoint(path, model)
    np.testing.assert_array_equal(model.norm.running_var, np.full(4, 5.0))   # left untouched


def test_batch_norm_statistics_are_restored_on_the_models_device(tmp_path, device):
    np.random.seed(0)
    model = NormalizedRegression().to(device)
    model.loss(zero.Variable(zero.to_device(np.random.rand(8, 3).astype(np.float32), device)))   # moves the stats
    assert not np.array_equal(host(model.norm.running_mean), np.zeros(4))
    path = save_checkpoint(tmp_path / "run.npz", model)
    restored = NormalizedRegression().to(device)
    load_checkpoint(path, restored)
    for name in ("running_mean", "running_var"):
        assert device_of(getattr(restored.norm, name)) == device
        np.testing.assert_array_equal(host(getattr(restored.norm, name)), host(getattr(model.norm, name)))


def test_fit_or_resume_with_nothing_left_to_train_leaves_the_checkpoint_alone(tmp_path):
    from argparse import Namespace
    x = np.random.default_rng(0).random((16, 3)).astype(np.float32)
    checkpoint = tmp_path / "c.npz"
    options = dict(batch_size=8, device="cpu", seed=0)
    first = fit_or_resume(*_fresh_regression(), x, Namespace(epochs=3, resume=False, **options), checkpoint)
    saved, written = checkpoint.read_bytes(), checkpoint.stat()
    for epochs in (3, 2):   # asked for no more (or fewer) epochs than the checkpoint holds
        history = fit_or_resume(*_fresh_regression(), x, Namespace(epochs=epochs, resume=True, **options), checkpoint)
        assert history == first
        assert checkpoint.read_bytes() == saved
        assert checkpoint.stat().st_ino == written.st_ino   # not even rewritten with the same bytes


def test_fit_or_resume_scores_the_held_out_images_after_every_epoch(tmp_path):
    x = np.random.default_rng(0).random((40, 3)).astype(np.float32)
    model, optimizer = _fresh_regression()
    args = Namespace(epochs=2, resume=False, batch_size=8, device="cpu", seed=0)
    history = fit_or_resume(model, optimizer, x, args, tmp_path / "c.npz", x_heldout=x[:10])
    assert len(history["heldout_loss"]) == 2
    assert history["heldout_loss"][-1] == pytest.approx(mean_loss(model, x[:10]))


# =============================================================================
# A run resumed with other options would not continue the saved one: refused
# =============================================================================
def test_run_settings_keeps_the_options_a_run_depends_on_and_not_the_free_ones():
    from argparse import Namespace
    args = Namespace(lr=3e-4, batch_size=32, seed=0, train_limit=None, epochs=30, device="cpu",
                     resume=True, data_dir="/data", samples=36)
    assert run_settings(args) == {"lr": "0.0003", "batch_size": "32", "seed": "0", "train_limit": "None"}


def test_a_resume_that_changes_the_epochs_of_a_decaying_run_says_why_they_are_a_setting(tmp_path):
    """With --lr-decay cosine the epochs are one of the run's settings (run_settings' also): the refusal
    names --lr-decay none; a refusal for another option alone does not."""
    model, optimizer, _ = _trained(steps=1)
    saved = Namespace(lr=0.01, seed=0, lr_decay="cosine", resume=True, epochs=4)
    checkpoint = save_checkpoint(tmp_path / "c.npz", model, optimizer, epoch=4,
                                 settings=run_settings(saved, also=("epochs",)))
    longer = Namespace(**{**vars(saved), "epochs": 8})
    with pytest.raises(CheckpointRefused) as refused:
        resume(checkpoint, model, optimizer, longer, settings=run_settings(longer, also=("epochs",)))
    assert ("--epochs 4 (now 8): resuming with other settings would not continue that run. --epochs is one of them "
            "because the learning rate decays over all the epochs") in str(refused.value)
    assert "use --lr-decay none. Repeat its settings" in str(refused.value)
    other_lr = Namespace(**{**vars(saved), "lr": 0.5})
    with pytest.raises(CheckpointRefused) as refused:
        resume(checkpoint, model, optimizer, other_lr, settings=run_settings(other_lr, also=("epochs",)))
    assert "--lr 0.01 (now 0.5)" in str(refused.value) and "--lr-decay none" not in str(refused.value)


def test_a_refused_checkpoint_is_both_a_value_error_and_a_setup_error():
    assert issubclass(CheckpointRefused, ValueError) and issubclass(CheckpointRefused, SetupError)


def test_resume_refuses_a_checkpoint_trained_with_other_options_and_changes_nothing(tmp_path):
    from argparse import Namespace
    model, optimizer, _ = _trained(steps=3)
    checkpoint = tmp_path / "c.npz"
    saved = Namespace(lr=0.01, batch_size=8, seed=0, train_limit=None, resume=True, epochs=4)
    save_checkpoint(checkpoint, model, optimizer, epoch=4, settings=run_settings(saved))
    for changed, message in [(dict(lr=0.001), "--lr 0.01 (now 0.001)"),
                             (dict(batch_size=16, train_limit=500),
                              "--batch-size 8 (now 16), --train-limit not given (now 500)")]:
        other, other_optimizer, _ = _trained(steps=1)
        before, steps_before = _weights(other), list(other_optimizer.steps)
        args = Namespace(**{**vars(saved), **changed, "epochs": 9})
        with pytest.raises(CheckpointRefused, match=re.escape(message)):   # a ValueError, shown without traceback
            resume(checkpoint, other, other_optimizer, args)
        assert all(np.array_equal(before[k], v) for k, v in _weights(other).items())
        assert other_optimizer.steps == steps_before
    # --epochs, --device and the like may change; so may anything a file saved without settings holds
    other, other_optimizer, _ = _trained(steps=1)
    assert resume(checkpoint, other, other_optimizer, Namespace(**{**vars(saved), "epochs": 9}))[1] == 4
    save_checkpoint(tmp_path / "old.npz", model, optimizer, epoch=2)
    assert resume(tmp_path / "old.npz", other, other_optimizer, Namespace(**{**vars(saved), "lr": 1.0}))[1] == 2


def test_a_run_on_the_split_auto_chose_is_not_resumed_on_another(tmp_path, monkeypatch):
    """--source auto trains on the test split while only that one is in the data folder; once the
    training split is there too, auto means 60,000 other images: the checkpoint must record the
    split it was trained on, not 'auto', or a --resume would continue on other data unnoticed."""
    import zero.training as training
    from argparse import Namespace
    present = {"test"}
    monkeypatch.setattr(training, "find_local", lambda folder, name: any(
        name in training.SPLITS[split][:2] for split in present))
    monkeypatch.setattr(training, "load_mnist", lambda split, folder, flatten: (
        np.zeros((10, 784), np.float32), np.zeros(10, np.int64)))
    options = dict(data_dir=str(tmp_path), train_limit=None, heldout_limit=None, lr=0.01, batch_size=8, seed=0,
                   resume=True, epochs=2)
    args = Namespace(source="auto", **options)
    data = mnist_splits_from(args)
    assert args.source == data.source == "test" and "test split" in data.description
    model, optimizer, _ = _trained()
    checkpoint = tmp_path / "c.npz"
    save_checkpoint(checkpoint, model, optimizer, epoch=1, settings=run_settings(args))
    present.add("train")                                     # the training split was downloaded since
    args = Namespace(source="auto", **options)
    assert mnist_splits_from(args).source == args.source == "train"
    with pytest.raises(ValueError, match=re.escape("--source test (now train)")):
        resume(checkpoint, *_trained()[:2], args)
    assert resume(checkpoint, *_trained()[:2], Namespace(**{**options, "source": "test"}))[1] == 1
    # checkpoints written before the split was recorded say 'auto': which split that was is unknown
    save_checkpoint(checkpoint, model, optimizer, epoch=1, settings=run_settings(Namespace(source="auto", **options)))
    assert resume(checkpoint, *_trained()[:2], args)[1] == 1


def test_run_settings_leaves_out_or_adds_the_options_a_script_names():
    from argparse import Namespace
    args = Namespace(lr=0.1, heldout_limit=500, epochs=10, samples=4)
    assert run_settings(args, exclude=("heldout_limit",)) == {"lr": "0.1"}
    assert run_settings(args, also=("epochs",)) == {"lr": "0.1", "heldout_limit": "500", "epochs": "10"}


def test_a_classifier_trained_for_scoring_is_saved_with_the_settings_step_10_1_checks(tmp_path):
    """classifier_for_scoring (the GAN and diffusion steps train step 10.1's classifier when it is
    missing) saves what it trained with; step 10.1's --resume of that file with other options stops."""
    from argparse import Namespace
    from zero.metrics import MnistClassifier, classifier_for_scoring
    rng = np.random.default_rng(0)
    images, labels = rng.random((64, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 64)
    path = tmp_path / "classifier.npz"
    classifier_for_scoring(path, images, labels, epochs=1, seed=3, source="test")
    with np.load(path) as archive:
        assert {k: str(archive[k]) for k in archive.files if k.startswith("settings/")} == {
            "settings/seed": "3", "settings/batch_size": "64", "settings/lr": "0.001", "settings/train_limit": "64",
            "settings/source": "test"}
    model = MnistClassifier()
    step_10_1 = dict(seed=3, batch_size=64, lr=1e-3, resume=True, epochs=2)
    with pytest.raises(ValueError, match=re.escape("--train-limit 64 (now not given)")):
        resume(path, model, Adam(model.params()), Namespace(train_limit=None, source="test", **step_10_1))
    with pytest.raises(ValueError, match=re.escape("--source test (now train)")):   # the training split came later
        resume(path, model, Adam(model.params()), Namespace(train_limit=64, source="train", **step_10_1))
    assert resume(path, model, Adam(model.params()), Namespace(train_limit=64, source="test", **step_10_1))[1] == 1


def test_fit_or_resume_saves_the_run_settings_it_then_checks(tmp_path):
    from argparse import Namespace
    x = np.random.default_rng(0).random((40, 3)).astype(np.float32)
    checkpoint = tmp_path / "c.npz"
    options = dict(batch_size=8, device="cpu", seed=0, lr=0.01)
    fit_or_resume(*_fresh_regression(), x, Namespace(epochs=1, resume=False, **options), checkpoint)
    with np.load(checkpoint) as archive:
        assert {k: str(archive[k]) for k in archive.files if k.startswith("settings/")} == {
            "settings/batch_size": "8", "settings/seed": "0", "settings/lr": "0.01"}
    with pytest.raises(ValueError, match=re.escape("--batch-size 8 (now 10)")):
        fit_or_resume(*_fresh_regression(), x, Namespace(epochs=2, resume=True, **{**options, "batch_size": 10}),
                      checkpoint)
    assert load_checkpoint(checkpoint, Regression())["epoch"] == 1   # the refused run wrote nothing


# --- from a mutation audit of the argument checks --------------------------------------------------------------------
@pytest.mark.parametrize("source, limits, train_text, heldout_text", [
    ("train", {}, "training on 60,000 images", "held out 10,000 images"),
    ("test", {}, "training on 8,000 images", "held out 2,000 images"),
    ("test", dict(train_limit=5, heldout_limit=3), "training on 5 images", "held out 3 images"),
    ("test", dict(train_limit=1, heldout_limit=1), "training on 1 image", "held out 1 image")])   # not '1 images'
def test_the_description_counts_each_sets_images(tmp_path, monkeypatch, source, limits, train_text, heldout_text):
    _fake_mnist(monkeypatch)
    description = mnist_splits(tmp_path, source, **limits).description
    assert description.startswith(train_text + " (") and f"), {heldout_text} (" in description


def test_a_numpy_integer_limit_is_a_count():
    from zero.utils import check_count
    check_count("mnist_splits", "train_limit", np.int64(5))


def test_check_count_refuses_none_unless_it_is_optional():
    from zero.utils import check_count
    check_count("Linear", "in_size", None, optional=True)
    with pytest.raises(ValueError, match="Linear: out_size must be a whole number >= 1, got None"):
        check_count("Linear", "out_size", None)


@pytest.mark.parametrize("value, bounds, message", [
    (0.5, {}, None), (np.float32(0.5), {"at_least": 0, "at_most": 1}, None), (np.int64(2), {"above": 0}, None),
    (0, {"at_least": 0, "below": 1}, None), (1, {"at_least": 0, "at_most": 1}, None),
    (1, {"at_least": 0, "below": 1}, " in [0, 1), got 1"), (0, {"above": 0, "at_most": 1}, " in (0, 1], got 0"),
    (0, {"above": 0}, " > 0, got 0"), (-1, {"at_least": 0}, " >= 0, got -1"),
    (2, {"at_most": 1}, " <= 1, got 2"), (1, {"below": 1}, " < 1, got 1"),
    (float("nan"), {"at_least": 0}, " >= 0, got nan"), (float("inf"), {}, ", got inf"),
    (True, {}, ", got True"), ("0.1", {"above": 0}, " > 0, got '0.1'"), (None, {}, ", got None"),
    (np.array(0.5), {}, ", got array(0.5)"),
])
def test_check_number_takes_finite_real_numbers_within_their_bounds(value, bounds, message):
    from zero.utils import check_number
    if message is None:
        check_number("Owner", "rate", value, **bounds)
    else:
        with pytest.raises(ValueError, match=re.escape(f"Owner: rate must be a finite number{message}") + "$"):
            check_number("Owner", "rate", value, **bounds)


def test_fit_and_mean_loss_take_a_single_image():
    model, optimizer = _fresh_regression()
    one = np.random.default_rng(0).random((1, 3)).astype(np.float32)
    history = fit(model, optimizer, one, epochs=1, x_heldout=one)
    assert len(history["train_loss"]) == len(history["heldout_loss"]) == 1
    assert mean_loss(model, one) == pytest.approx(history["heldout_loss"][0])


def test_fit_and_mean_loss_feed_a_model_its_own_dtype():
    """fit's batches and mean_loss's images come in the model's dtype: a float64 model trains on
    float32 data, and a float32 model evaluates float64 images (its layers refuse a mismatch)."""
    x = np.random.default_rng(0).random((20, 3))                      # float64, as np.random gives
    model, _ = _fresh_regression()
    model.astype(np.float64)
    history = fit(model, Adam(model.params(), lr=0.01), x.astype(np.float32), epochs=2, batch_size=8,
                  x_heldout=x)
    assert history["heldout_loss"][1] < history["heldout_loss"][0]
    assert all(p.dtype == np.float64 for p in model.params())
    float32_model, _ = _fresh_regression()
    assert np.isfinite(mean_loss(float32_model, x))


def test_the_data_options_take_the_scripts_heldout_limit_as_default():
    import argparse
    args = add_data_options(argparse.ArgumentParser(), heldout_limit=256).parse_args([])
    assert (args.train_limit, args.heldout_limit) == (None, 256)
    args = add_data_options(argparse.ArgumentParser(), heldout_limit=256).parse_args(["--heldout-limit", "1"])
    assert args.heldout_limit == 1


def test_a_classifier_trained_for_scoring_without_a_source_saves_no_source_setting(tmp_path):
    """Saving source 'None' would make step 10.1's --resume refuse the file on every split."""
    from zero.metrics import MnistClassifier, classifier_for_scoring
    rng = np.random.default_rng(0)
    images, labels = rng.random((16, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 16)
    path = tmp_path / "classifier.npz"
    classifier_for_scoring(path, images, labels, epochs=1)
    with np.load(path) as archive:
        assert "settings/source" not in archive.files and str(archive["settings/train_limit"]) == "16"
    model = MnistClassifier()
    options = dict(seed=0, batch_size=64, lr=1e-3, resume=True, epochs=2, train_limit=16)
    assert resume(path, model, Adam(model.params()), Namespace(source="test", **options))[1] == 1


def test_a_checkpoint_missing_a_parameter_of_the_model_is_refused_naming_it(tmp_path):
    np.random.seed(0)
    path = save_checkpoint(tmp_path / "run.npz", _layers(head=Linear(3, in_size=5)))
    _assert_refused_unchanged(path, _layers(head=Linear(3, in_size=5), extra=Linear(2, in_size=3)),
                              match=r"missing parameters \['extra\.W', 'extra\.b'\], unexpected none")


def test_weights_load_onto_the_device_each_layer_lives_on(tmp_path):
    np.random.seed(0)
    model = _layers(head=Linear(3, in_size=5))
    path = save_checkpoint(tmp_path / "run.npz", model)
    model.head.to("strict")
    load_checkpoint(path, model)
    assert device_of(model.head.W.data) == "strict" and model.device == "cpu"


def test_a_float64_model_with_lazy_layers_loads_its_own_checkpoint(tmp_path):
    np.random.seed(0)
    model = _layers(head=Linear(3, in_size=4)).astype(np.float64)
    optimizer = Adam(model.params(), lr=0.01)
    F.sum(model.head(np.ones((2, 4)))).backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "run.npz", model, optimizer, epoch=1)
    lazy = _layers(head=Linear(3)).astype(np.float64)          # its input size not known yet
    lazy_optimizer = Adam(lazy.params(), lr=0.5)
    load_checkpoint(path, lazy, lazy_optimizer)
    assert lazy.head.W.dtype == np.float64 and lazy_optimizer.means[0].dtype == np.float64
    np.testing.assert_array_equal(lazy.head.W.data, model.head.W.data)
    _assert_refused_unchanged(path, _layers(head=Linear(3)), match="has dtype float64 in the file but float32")


def test_a_setting_the_file_did_not_record_is_refused_as_another_scripts_run(tmp_path):
    """Step A.3 (--anomaly-digit 2) pointed at A.1's checkpoint, which saw every digit: same model
    type, same common settings, but not a run A.3 can continue."""
    model, optimizer, _ = _trained(steps=3)
    checkpoint = tmp_path / "autoencoder.npz"
    common = dict(lr=0.01, batch_size=8, seed=0, train_limit=None)
    save_checkpoint(checkpoint, model, optimizer, epoch=2, settings=run_settings(Namespace(**common)))
    other, other_optimizer, _ = _trained(steps=1)
    before, steps_before = _weights(other), list(other_optimizer.steps)
    args = Namespace(**common, anomaly_digit=2, resume=True, epochs=4)
    with pytest.raises(CheckpointRefused, match=re.escape("was trained without --anomaly-digit, which this run has")):
        resume(checkpoint, other, other_optimizer, args)
    assert all(np.array_equal(before[k], v) for k, v in _weights(other).items())
    assert other_optimizer.steps == steps_before
    # the split is the exception: files written before it was recorded are taken as on this run's
    assert resume(checkpoint, other, other_optimizer, Namespace(**common, source="test", resume=True, epochs=4))[1] == 2


def test_a_setting_the_file_recorded_that_this_run_does_not_have_is_refused_as_another_scripts_run(tmp_path):
    """The other way round: A.1 (every digit) resumed A.3's checkpoint, trained --anomaly-digit 2 on a
    training set without the 2s, and went on training it and saved over it, dropping that setting."""
    model, optimizer, _ = _trained(steps=3)
    checkpoint = tmp_path / "anomaly.npz"
    common = dict(lr=0.01, batch_size=8, seed=0, train_limit=None)
    save_checkpoint(checkpoint, model, optimizer, epoch=1, settings=run_settings(Namespace(**common, anomaly_digit=2)))
    other, other_optimizer, _ = _trained(steps=1)
    before, steps_before = _weights(other), list(other_optimizer.steps)
    with pytest.raises(CheckpointRefused, match=re.escape(
            f"checkpoint {checkpoint} was trained with --anomaly-digit 2, which this run does not have: it was "
            f"written by another script")):
        resume(checkpoint, other, other_optimizer, Namespace(**common, resume=True, epochs=2))
    assert all(np.array_equal(before[k], v) for k, v in _weights(other).items())
    assert other_optimizer.steps == steps_before
    # a model loaded to be used, not resumed, is not checked
    load_checkpoint(checkpoint, other)


def test_resume_checks_the_settings_it_is_given_instead_of_the_scripts_options(tmp_path):
    model, optimizer, _ = _trained(steps=3)
    checkpoint = tmp_path / "c.npz"
    args = Namespace(lr=0.01, seed=0, resume=True)
    save_checkpoint(checkpoint, model, optimizer, epoch=4, settings={**run_settings(args), "width": "8"})
    other, other_optimizer, _ = _trained(steps=1)
    with pytest.raises(ValueError, match=re.escape("--width 8 (now 16)")):
        resume(checkpoint, other, other_optimizer, args, settings={**run_settings(args), "width": "16"})
    assert resume(checkpoint, other, other_optimizer, Namespace(lr=0.5, seed=0, resume=True, epochs=4),
                  settings={"lr": "0.01", "seed": "0", "width": "8"})[1] == 4   # args' lr 0.5 is not consulted


def test_settings_of_any_type_are_saved_as_text(tmp_path):
    np.random.seed(0)
    model = _layers(head=Linear(3, in_size=5))
    path = save_checkpoint(tmp_path / "run.npz", model, settings={"train_limit": None, "seed": 3})
    load_checkpoint(path, model, settings={"train_limit": None, "seed": 3})
    with pytest.raises(ValueError, match=re.escape("--seed 3 (now 4)")):
        load_checkpoint(path, model, settings={"seed": 4})


def test_restore_if_trained_names_a_missing_checkpoint(tmp_path):
    restored, message = restore_if_trained(_layers(head=Linear(3, in_size=5)), tmp_path / "none.npz", min_epochs=1)
    assert not restored and message == f"no usable checkpoint (checkpoint not found: {tmp_path / 'none.npz'})"


def test_restore_if_trained_refuses_a_file_that_is_not_an_npz_archive(tmp_path):
    np.save(tmp_path / "weights.npy", np.zeros(3))  # was a TypeError from a with-statement
    restored, message = restore_if_trained(_layers(head=Linear(3, in_size=5)), tmp_path / "weights.npy", min_epochs=1)
    assert not restored and message.endswith("not an .npz archive)")


def test_a_checkpoint_saved_after_astype_and_before_the_next_step_loads(tmp_path):
    """The optimizer state converts at the next step; saved before it, the file refused itself."""
    from zero.models import MLP
    np.random.seed(0)
    model = MLP((3, 4, 2))
    optimizer = Adam(model.params())
    (model(np.random.rand(5, 3).astype(np.float32)) ** 2).sum().backward()
    optimizer.step()
    model.astype(np.float64)
    path = save_checkpoint(tmp_path / "run.npz", model, optimizer)
    other = MLP((3, 4, 2)).astype(np.float64)
    other_optimizer = Adam(other.params())
    load_checkpoint(path, other, other_optimizer)
    assert other_optimizer.means[0].dtype == np.float64
    np.testing.assert_array_equal(other_optimizer.means[0], optimizer.means[0].astype(np.float64))


def test_the_training_and_scoring_loops_send_batches_to_the_models_device_by_default():
    """With no device given, fit, mean_loss, evaluate_bounds, reconstruction_errors, train_classifier
    and train_gan move each batch to where the model is (they sent it to the CPU: a model on a GPU
    then failed with 'inputs are on different devices' unless every call repeated its device)."""
    from zero.autoencoder import reconstruction_errors
    from zero.gan import MLPDiscriminator, MLPGenerator, train_gan
    from zero.metrics import train_classifier
    from zero.vae import VAE, evaluate_bounds
    np.random.seed(0)
    images = np.random.rand(6, 8).astype(np.float32)
    vae = VAE(input_size=8, hidden_size=4, latent_size=2).to("strict")
    history = fit(vae, Adam(vae.params()), images, epochs=1, batch_size=3, x_heldout=images)
    assert np.isfinite(history["heldout_loss"][0]) and np.isfinite(mean_loss(vae, images))
    assert np.isfinite(evaluate_bounds(vae, images, samples=2, progress=False)["iwae_nll"])
    autoencoder = MLP((8, 3, 8)).to("strict")
    assert reconstruction_errors(autoencoder, images).shape == (6,)
    classifier = MLP((8, 4, 3)).to("strict")
    train_classifier(classifier, SGD(classifier.params()), images, np.array([0, 1, 2, 0, 1, 2]), epochs=1,
                     batch_size=3)
    generator, discriminator = MLPGenerator(2, 4, 8).to("strict"), MLPDiscriminator(4, 8).to("strict")
    history = train_gan(generator, discriminator, Adam(generator.params()), Adam(discriminator.params()), images,
                        epochs=1, batch_size=3)
    assert len(history["d_loss"]) == 2
    for model in (vae, autoencoder, classifier, generator, discriminator):
        assert all(param.device == "strict" for param in model.params())


def test_a_training_step_on_a_device_reads_nothing_back_but_what_it_checks():
    """Each read of device data by the host (float, int, bool, item, to_numpy) makes the CPU wait for a
    GPU. Counted on the strict device, per step (forward, backward, optimizer step) after a warm-up:
    none for the VAE and the unconditional U-Net; one for the conditional U-Net, whose embedding checks
    its labels' range (CuPy would wrap an index out of range silently)."""
    import zero.testing
    from zero.diffusion import Diffusion
    from zero.unet import UNet
    from zero.vae import VAE
    np.random.seed(0)
    images = zero.to_device(np.random.rand(4, 784).astype(np.float32), "strict")
    vae = VAE(hidden_size=8, latent_size=2).to("strict")
    diffusion = Diffusion(20, device="strict")
    unet = UNet(channels=(2, 2, 2), time_embed_dim=4).to("strict")
    conditional = UNet(channels=(2, 2, 2), time_embed_dim=4, num_classes=3).to("strict")
    labels = zero.to_device(np.array([0, 1, 2, 3]), "strict")
    steps = {"vae": (vae, lambda: vae.loss(images), 0),
             "unet": (unet, lambda: diffusion.loss(unet, images.reshape(4, 1, 28, 28)), 0),
             "conditional unet": (conditional, lambda: diffusion.loss(conditional, images.reshape(4, 1, 28, 28),
                                                                       labels), 1)}
    for name, (model, loss_of_batch, expected) in steps.items():
        optimizer = Adam(model.params())
        for step in range(2):   # the first creates the optimizer's state
            before = zero.testing.host_reads
            loss = loss_of_batch()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        assert zero.testing.host_reads - before == expected, name


# =============================================================================
# A run that diverges: stopped at its first NaN, and never saved over a good checkpoint
# =============================================================================
def test_finite_loss_returns_the_number_and_names_where_a_loss_is_nan_or_inf():
    assert finite_loss(zero.Variable(np.float32(2.5)), "here") == 2.5
    for value in (np.nan, np.inf, -np.inf):
        with pytest.raises(TrainingDiverged, match=rf"epoch 2, batch 7 of 9: the loss is {value}: training diverged"):
            finite_loss(zero.Variable(np.float32(value)), "epoch 2, batch 7 of 9")
    # what step scripts show as its message alone (exit status 2), and what NumPy's own errors are
    assert issubclass(TrainingDiverged, SetupError) and issubclass(TrainingDiverged, FloatingPointError)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_a_diverging_fit_stops_at_its_first_non_finite_loss(capsys):
    """With a learning rate of 1e30 Adam's first step moves every weight by about 1e30, so the loss
    of the second batch overflows float32: it trained on, through NaN, to the end."""
    x = np.random.default_rng(0).random((40, 3)).astype(np.float32)
    np.random.seed(0)
    model = Regression()
    with pytest.raises(TrainingDiverged, match=r"^training epoch 1, batch 2 of 5: the loss is (inf|nan)"):
        fit(model, Adam(model.params(), lr=1e30), x, epochs=3, batch_size=8)
    assert "epoch 1/3" not in capsys.readouterr().out   # no epoch was reported as done
    # checked before backward: the step of the inf loss was not taken, its NaN gradients never reached the weights
    assert all(np.isfinite(param.data).all() for param in model.params())


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_a_diverging_run_leaves_the_checkpoint_at_its_path_unchanged(tmp_path):
    """Step 7 run again with --lr 1 saved a model of NaN over the book's VAE, which steps 8 and A.1 load."""
    x = np.random.default_rng(0).random((40, 3)).astype(np.float32)
    options = dict(batch_size=8, device="cpu", seed=0, resume=False)
    checkpoint = tmp_path / "c.npz"
    fit_or_resume(*_fresh_regression(), x, Namespace(epochs=1, **options), checkpoint)
    before = checkpoint.read_bytes()
    np.random.seed(0)
    model = Regression()
    with pytest.raises(TrainingDiverged, match="a checkpoint saved before is unchanged"):
        fit_or_resume(model, Adam(model.params(), lr=1e30), x, Namespace(epochs=2, **options), checkpoint)
    assert checkpoint.read_bytes() == before
    assert restore_if_trained(Regression(), checkpoint, min_epochs=1)[0]


@pytest.mark.parametrize("where, entry", [("weight", "model/net.layers.0.W"), ("moment", "optimizer/variances.1")])
def test_weights_or_optimizer_state_holding_nan_or_inf_are_not_saved_and_the_old_file_stays(tmp_path, where, entry):
    model, optimizer, _ = _trained()
    path = save_checkpoint(tmp_path / "run.npz", model, optimizer, epoch=1)
    before = path.read_bytes()
    if where == "weight":
        model.net.layers[0].W.data[0, 0] = np.nan
    else:
        optimizer.variances[1][0] = np.inf
    with pytest.raises(TrainingDiverged, match=rf"{re.escape(entry)} holds NaN or inf values \(training diverged\?\): "
                                               r"not saved"):
        save_checkpoint(path, model, optimizer, epoch=2)
    assert path.read_bytes() == before


@pytest.mark.parametrize("entry", ["model/net.layers.1.b", "optimizer/means.0"])
def test_a_checkpoint_whose_weights_or_moments_hold_nan_is_refused_and_changes_nothing(tmp_path, entry):
    """One written before save_checkpoint refused them: it loaded, and turned everything computed with it
    into NaN (a comparison model of another step, loaded by restore_if_trained, too)."""
    model, optimizer, _ = _trained()
    path = save_checkpoint(tmp_path / "run.npz", model, optimizer, epoch=3)
    with np.load(path) as archive:
        damaged = archive[entry].copy()
    damaged.flat[0] = np.nan
    _rewrite_checkpoint(path, _set(entry, damaged))
    fresh, fresh_optimizer, _ = _trained(steps=1)
    label = entry.split("/")[1].replace("means.0", "means[0]")
    _assert_refused_unchanged(path, fresh, fresh_optimizer, match=rf"{re.escape(label)}'? holds NaN or inf")
    if entry.startswith("model/"):
        restored, message = restore_if_trained(fresh, path, min_epochs=1)
        assert not restored and "holds NaN or inf" in message


def test_fit_trains_a_model_that_was_left_in_eval_mode_in_training_mode():
    """As fit_diffusion, train_classifier and train_gan do: a model with dropout, evaluated before
    (model.eval()), trained with its dropout off."""
    x = np.random.default_rng(0).random((16, 3)).astype(np.float32)
    model, optimizer = _fresh_regression()
    model.eval()
    modes = []
    loss = model.loss
    model.loss = lambda batch: (modes.append(model.net.training), loss(batch))[1]   # the mode each batch sees
    fit(model, optimizer, x, epochs=2, batch_size=8)
    assert modes == [True] * 4


def test_a_batch_norm_statistic_of_inf_is_not_saved_and_a_file_holding_one_is_not_loaded(tmp_path):
    """Step 9.2 at --lr 1e6 had finite losses but a running variance of inf: its buffers are checked too."""
    from zero.models import Sequential

    def batch_norm_model():
        np.random.seed(0)
        model = Sequential(Linear(4, in_size=3), BatchNorm(4))
        model(np.random.default_rng(0).random((8, 3)).astype(np.float32))   # running statistics exist
        return model

    model = batch_norm_model()
    path = save_checkpoint(tmp_path / "bn.npz", model, epoch=1)
    before = path.read_bytes()
    name, running_var = next((n, b) for n, b in model.named_buffers() if n.endswith("running_var"))
    running_var[0] = np.inf
    with pytest.raises(TrainingDiverged, match=rf"buffer/{re.escape(name)} holds NaN or inf values"):
        save_checkpoint(path, model, epoch=2)
    assert path.read_bytes() == before
    _rewrite_checkpoint(path, _set(f"buffer/{name}", running_var.copy()))   # as written before the check
    fresh = batch_norm_model()
    statistics = {n: host(b).copy() for n, b in fresh.named_buffers()}
    _assert_refused_unchanged(path, fresh, match=rf"buffer '{re.escape(name)}' holds NaN or inf")
    for n, b in fresh.named_buffers():
        np.testing.assert_array_equal(host(b), statistics[n], err_msg=n)
