"""Layers and models: registration, names, modes, devices, save/load, and
parity with PyTorch's layers when torch is installed."""

import io
import re
import zipfile

import numpy as np
import pytest

import zero
import zero.functions as F
from conftest import ZIP_HEADER_DAMAGE, damage_zip_header, host, on, open_handles
from zero import Config, Parameter, Variable
from zero.layers import (BatchNorm, Conv2d, ConvTranspose2d, Dropout, Embedding, Layer, LayerList,
                         Linear)
from zero.models import MLP, Model, Sequential
from zero.testing import StrictArray


class TwoLayer(Model):
    def __init__(self):
        super().__init__()
        self.encoder = Sequential(Linear(4, in_size=3), F.relu)
        self.head = Linear(2, in_size=4)

    def forward(self, x):
        return self.head(self.encoder(x))


class WithBuffer(Layer):
    def __init__(self):
        super().__init__()
        self.scale = Parameter(np.ones(3, np.float32))
        self.register_buffer("count", np.zeros(3, np.float32))

    def forward(self, x):
        return self.scale * x


# -----------------------------------------------------------------------------
# Registration and names
# -----------------------------------------------------------------------------
def test_params_are_found_by_attribute_assignment_with_dotted_names():
    model = TwoLayer()
    names = [name for name, _ in model.named_params()]
    assert names == ["encoder.0.W", "encoder.0.b", "head.W", "head.b"]
    assert len(list(model.params())) == 4
    assert model.num_params() == 3 * 4 + 4 + 4 * 2 + 2


def test_shared_layers_and_params_are_listed_once():
    model = Model()
    shared = Linear(3, in_size=3)
    model.a = shared
    model.b = shared
    model.extra = shared.W
    assert len(list(model.params())) == 2
    assert [name for name, _ in model.named_params()] == ["a.W", "a.b"]


def test_reassigning_an_attribute_unregisters_the_old_part():
    model = TwoLayer()
    model.head = None
    assert [name for name, _ in model.named_params()] == ["encoder.0.W", "encoder.0.b"]


@pytest.mark.parametrize("array", [lambda W: W.data * 0.5, lambda W: np.zeros(W.shape, np.float32)])
def test_an_array_assigned_in_place_of_a_parameter_is_refused_and_changes_nothing(array):
    """layer.W = layer.W.data * 0.5 unregistered W (no longer trained, saved or moved) while the optimizer
    kept updating the old Parameter, and forward still ran: torch raises here, and so does zero now."""
    layer = Linear(3, in_size=2)
    before = layer.W
    with pytest.raises(TypeError, match=r"^Linear\.W: assigning an array in place of parameter 'W' would unregister "
                                        r"it .*layer\.W\.data\[\.\.\.\] = array\) or assign Parameter\(array\)$"):
        layer.W = array(layer.W)
    assert layer.W is before and [name for name, _ in layer.named_params()] == ["W", "b"]
    layer.W = Parameter(np.ones((2, 3), np.float32))   # a Parameter may replace it
    assert [name for name, _ in layer.named_params()] == ["W", "b"] and layer.W is not before


def test_layer_list_registers_its_layers():
    layers = LayerList([Linear(2, in_size=2), Linear(3, in_size=2)])
    layers.append(Linear(1, in_size=3))
    assert len(layers) == 3 and layers[-1].out_size == 1
    assert [name for name, _ in layers.named_params()] == ["0.W", "0.b", "1.W", "1.b", "2.W", "2.b"]
    with pytest.raises(TypeError, match="LayerList holds layers"):
        layers.append(F.relu)


def test_plain_list_of_layers_is_refused():
    model = Model()
    with pytest.raises(TypeError, match="LayerList"):
        model.blocks = [Linear(2), Linear(2)]


@pytest.mark.parametrize("blocks", [
    {"a": Linear(4, in_size=4)},
    [[Linear(4, in_size=4)]],
    (1, [Parameter(np.ones(2, np.float32))]),
    {"deep": ({"deeper": [Linear(2)]},)},
    {Linear(2)},
    {Linear(2, in_size=2): 1},
], ids=["dict", "nested list", "parameter in a tuple", "deep", "set", "dict key"])
def test_layers_hidden_in_any_plain_container_are_refused(blocks):
    model = TwoLayer()
    model.blocks = None
    message = r"TwoLayer\.blocks: a plain \w+ holds a layer or parameter.*LayerList"
    with pytest.raises(TypeError, match=message):
        model.blocks = blocks
    assert model.blocks is None  # a refused assignment changes nothing
    with pytest.raises(TypeError, match="LayerList"):
        model.head = [Linear(2)]
    assert [name for name, _ in model.named_params()] == ["encoder.0.W", "encoder.0.b", "head.W", "head.b"]


@pytest.mark.parametrize("walk", [
    lambda model, path: list(model.params()),
    lambda model, path: list(model.named_params()),
    lambda model, path: list(model.named_buffers()),
    lambda model, path: model.sublayers(),
    lambda model, path: model.eval(),
    lambda model, path: model.to("strict"),
    lambda model, path: model.save_weights(path),
    lambda model, path: model.load_weights(path),
])
def test_layer_put_in_a_plain_list_after_assignment_is_refused_when_the_model_is_walked(tmp_path, walk):
    model = Model()
    model.head = Linear(2, in_size=2)
    model.save_weights(tmp_path / "head.npz")
    model.inner = Model()
    model.inner.blocks = []  # allowed: empty...
    model.inner.blocks.append(Linear(4, in_size=4))  # ...but filled later: its parameters would be invisible
    before = _values(model.head)
    message = r"Model\.blocks: a plain list holds a layer or parameter.*LayerList"
    with pytest.raises(TypeError, match=message):
        walk(model, tmp_path / "head.npz")
    assert model.training and model.device == "cpu" and model.inner.training  # eval() / to() changed nothing
    _assert_same(before, _values(model.head))


def test_a_list_inside_a_tuple_filled_with_a_layer_later_is_refused():
    model = Model()
    model.blocks = ([],)
    model.blocks[0].append(Linear(2, in_size=2))  # was invisible to params(), silently
    with pytest.raises(TypeError, match=r"Model\.blocks: a plain tuple holds a layer"):
        list(model.params())


def test_plain_containers_of_other_things_keep_working(tmp_path):
    model = TwoLayer()
    model.sizes = (3, 4, 2)
    model.names = ["encoder", "head"]
    model.history = []
    model.history.append(0.5)
    model.settings = {"lr": 0.1, "arrays": [np.ones(3)], "nested": {"tags": {"a", "b"}}}
    model.loop = []
    model.loop.append(model.loop)  # a list that holds itself is searched once
    model.empty = []
    names = ["encoder.0.W", "encoder.0.b", "head.W", "head.b"]
    assert [name for name, _ in model.named_params()] == names
    model.eval().to("cpu").save_weights(tmp_path / "w.npz")
    model.load_weights(tmp_path / "w.npz")
    assert not model.training and len(model.sublayers()) == 4


def test_a_variable_in_place_of_a_parameter_is_refused():
    """`layer.W -= lr * layer.W.grad` made W a new Variable (not a Parameter): W silently left
    params(), so it was no longer trained or saved."""
    layer = Linear(2, in_size=2)
    layer(np.ones((1, 2), np.float32)).sum().backward()
    W = layer.W
    with pytest.raises(TypeError, match=r"Linear\.W: assigning a Variable \(not a Parameter\) in place of "
                                        r"parameter 'W' would unregister it"):
        layer.W -= 0.1 * layer.W.grad
    assert layer.W is W and [name for name, _ in layer.named_params()] == ["W", "b"]
    layer.W = Parameter(np.zeros((2, 2), np.float32))   # a Parameter may replace one
    assert [name for name, _ in layer.named_params()] == ["W", "b"]


def test_a_trainable_variable_that_is_not_a_parameter_is_refused():
    """`self.W = Variable(...)` in a student's layer was silently never trained: params() lists Parameters."""
    class Scale(Layer):
        def __init__(self):
            super().__init__()
            self.w = Variable(np.ones(3, np.float32))

    with pytest.raises(TypeError, match=r"Scale\.w: a Variable that needs a gradient is not a parameter.*"
                                        r"Parameter\(array\)"):
        Scale()
    layer = Linear(2, in_size=2)
    layer.mask = Variable(np.ones(2, np.float32), requires_grad=False)   # constants may be kept
    layer.last = layer(np.ones((1, 2), np.float32))                     # so may results of ops
    assert [name for name, _ in layer.named_params()] == ["W", "b"]


@pytest.mark.parametrize("mode", ["no", "eval", 0, None])
def test_train_mode_must_be_a_bool(mode):
    """model.train("no") kept training behaviour ("no" is truthy) and stored "no" as every layer's flag."""
    model = Sequential(Linear(2, in_size=2), Dropout(0.5))
    with pytest.raises(TypeError, match=r"Sequential\.train: mode must be True or False, got .*model\.eval\(\)"):
        model.train(mode)
    assert all(layer.training is True for layer in model.sublayers())
    assert model.train(np.bool_(False)).training is False   # NumPy's bool is accepted, stored as Python's


def test_forgetting_super_init_is_a_clear_error():
    class Broken(Layer):
        def __init__(self):
            self.l1 = Linear(2)

    with pytest.raises(TypeError, match=r"super\(\)\.__init__\(\)"):
        Broken()


def test_cleargrads_clears_every_grad():
    model = TwoLayer()
    model(np.ones((2, 3), np.float32)).sum().backward()
    assert all(p.grad is not None for p in model.params())
    model.cleargrads()
    assert all(p.grad is None for p in model.params())


# -----------------------------------------------------------------------------
# Linear
# -----------------------------------------------------------------------------
def test_linear_shapes_dtype_and_pytorch_init_bounds():
    np.random.seed(0)
    layer = Linear(300, in_size=400)
    assert layer.W.shape == (400, 300) and layer.b.shape == (300,)
    assert layer.W.dtype == np.float32 and layer.b.dtype == np.float32
    bound = 1 / np.sqrt(400)
    for p in (layer.W.data, layer.b.data):
        assert np.abs(p).max() <= bound
        assert np.abs(p).max() > 0.95 * bound  # spread over the whole interval, not a narrower one
    assert abs(layer.W.data.std() - bound / np.sqrt(3)) < 0.01 * bound  # std of U(-a, a) = a / sqrt(3)


def test_linear_without_bias():
    layer = Linear(3, in_size=2, bias=False)
    assert [name for name, _ in layer.named_params()] == ["W"]
    y = layer(np.ones((4, 2), np.float32))
    np.testing.assert_allclose(y.data, np.ones((4, 2), np.float32) @ layer.W.data, rtol=1e-6)


def test_lazy_linear_creates_params_on_first_call_on_the_layer_device(device):
    layer = Linear(5).to(device)
    params = list(layer.params())  # an optimizer may hold these before the first call
    assert all(p.data is None for p in params)
    with pytest.raises(RuntimeError, match="not created yet"):
        layer.num_params()
    y = layer(on(device, np.ones((2, 7), np.float32)))
    assert y.shape == (2, 5)
    assert layer.W.shape == (7, 5) and params[0] is layer.W
    assert all(zero.backend.device_of(p.data) == device for p in params)
    assert layer.num_params() == 7 * 5 + 5


def test_linear_wrong_input_size_names_layer_and_shapes():
    layer = Linear(5, in_size=3)
    with pytest.raises(ValueError, match=r"Linear\(out_size=5, in_size=3.*\(2, 4\)"):
        layer(np.ones((2, 4), np.float32))


@pytest.mark.parametrize("shape", [(2, 0), ()])
def test_lazy_linear_without_features_is_a_clear_error(shape):
    layer = Linear(5)
    with pytest.raises(ValueError, match=r"Linear\(out_size=5, in_size=None.*shape " + re.escape(str(shape))):
        layer(np.ones(shape, np.float32))
    assert layer.W.data is None and layer.b.data is None  # still lazy: a good input can follow
    assert layer(np.ones((2, 3), np.float32)).shape == (2, 5)


@pytest.mark.parametrize("shape", [(4, 0), (4, 0, 5, 5)])
def test_lazy_batch_norm_without_channels_is_a_clear_error(shape):
    """It made 0-size parameters, failed with a bare ZeroDivisionError, and refused every later
    input as 'expected 0' (found by a helper's mutation audit)."""
    layer = BatchNorm()
    with pytest.raises(ValueError, match=r"cannot take num_features from an input of shape " + re.escape(str(shape))):
        layer(np.zeros(shape, np.float32))
    assert layer.gamma.data is None and layer.running_mean is None  # still lazy: a good input can follow
    assert layer(np.random.rand(4, 3).astype(np.float32)).shape == (4, 3)


def test_linear_matches_torch_forward_and_backward():
    torch = pytest.importorskip("torch")
    layer = Linear(3, in_size=4)
    reference = torch.nn.Linear(4, 3)
    with torch.no_grad():
        reference.weight.copy_(torch.from_numpy(layer.W.data.T.copy()))
        reference.bias.copy_(torch.from_numpy(layer.b.data))
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    y = layer(x)
    (y * y).sum().backward()
    y_ref = reference(torch.from_numpy(x))
    (y_ref * y_ref).sum().backward()
    np.testing.assert_allclose(y.data, y_ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.W.grad.data, reference.weight.grad.numpy().T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.b.grad.data, reference.bias.grad.numpy(), rtol=1e-5, atol=1e-5)


# -----------------------------------------------------------------------------
# Models
# -----------------------------------------------------------------------------
def test_mlp_structure_and_forward():
    model = MLP((6, 5, 4, 3), activation=F.relu, output_activation=F.sigmoid)
    assert [layer.W.shape for layer in model.layers] == [(6, 5), (5, 4), (4, 3)]
    x = np.random.default_rng(0).standard_normal((2, 6)).astype(np.float32)
    expected = x
    for i, layer in enumerate(model.layers):
        expected = expected @ layer.W.data + layer.b.data
        expected = np.maximum(expected, 0) if i < 2 else 1 / (1 + np.exp(-expected))
    np.testing.assert_allclose(model(x).data, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="sizes"):
        MLP((3,))


def test_mlp_with_lazy_input_size():
    model = MLP((None, 4, 2))
    assert model(np.ones((3, 9), np.float32)).shape == (3, 2)
    assert model.layers[0].W.shape == (9, 4)


def test_sequential_mixes_layers_and_functions():
    model = Sequential(Linear(4, in_size=2), F.relu, Linear(1, in_size=4))
    x = np.array([[1.0, -2.0]], np.float32)
    first, last = model.steps[0], model.steps[2]
    expected = np.maximum(x @ first.W.data + first.b.data, 0) @ last.W.data + last.b.data
    np.testing.assert_allclose(model(x).data, expected, rtol=1e-6)
    with pytest.raises(TypeError, match="step 1"):
        Sequential(Linear(1), 3)


def test_sequential_refuses_a_layer_class_instead_of_a_layer():
    """Sequential(Linear, F.relu)(x) called Linear(x): 'Linear: out_size must be a whole number >= 1, got Variable(...)'."""
    with pytest.raises(TypeError, match=re.escape("Sequential: step 0 is the class Linear; pass an instance, "
                                                  "e.g. Linear(...)")):
        Sequential(Linear, F.relu)
    with pytest.raises(TypeError, match="step 2 is the class BatchNorm"):
        Sequential(Linear(4), F.relu, BatchNorm)


def test_mlp_trains_on_a_tiny_regression():
    from zero.optimizers import Adam
    np.random.seed(0)
    x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(-1, 1)
    t = np.sin(3 * x)
    model = MLP((1, 32, 1), activation=F.sigmoid)
    optimizer = Adam(model.params(), lr=0.02)
    for _ in range(400):
        loss = F.mean_squared_error(model(x), t)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.01


# -----------------------------------------------------------------------------
# Train / eval modes
# -----------------------------------------------------------------------------
class Probe(Layer):
    """Records Config.train as seen by its forward."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(Config.train)
        return x


def test_eval_switches_sublayers_and_test_mode_wins():
    model = Sequential(Probe())
    probe = model.steps[0]
    model(np.ones(1, np.float32))
    model.eval()
    assert not probe.training
    model(np.ones(1, np.float32))
    model.train()
    with zero.test_mode():
        model(np.ones(1, np.float32))
    model(np.ones(1, np.float32))
    assert probe.seen == [True, False, False, True]
    assert Config.train  # restored


def test_eval_of_a_sublayer_only_affects_it():
    outer, inner = Probe(), Probe()
    model = Sequential(outer, inner)
    inner.eval()
    model(np.ones(1, np.float32))
    assert outer.seen == [True] and inner.seen == [False]


# -----------------------------------------------------------------------------
# Devices
# -----------------------------------------------------------------------------
def test_to_moves_params_grads_and_buffers(device):
    layer = WithBuffer()
    layer(np.ones(3, np.float32)).sum().backward()
    layer.to(device)
    assert layer.device == device
    assert zero.backend.device_of(layer.scale.data) == device
    assert zero.backend.device_of(layer.scale.grad.data) == device
    assert zero.backend.device_of(layer.count) == device
    assert [name for name, _ in layer.named_buffers()] == ["count"]
    y = layer(on(device, np.full(3, 2.0, np.float32)))
    np.testing.assert_array_equal(host(y.data), [2, 2, 2])
    layer.to("cpu")
    assert isinstance(layer.count, np.ndarray)


def test_to_unknown_device_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown device"):
        Linear(2, in_size=2).to("tpu")


def test_mlp_forward_backward_on_strict_device():
    model = MLP((3, 4, 2)).to("strict")
    x = on("strict", np.ones((5, 3), np.float32))
    loss = F.softmax_cross_entropy(model(x), on("strict", np.array([0, 1, 0, 1, 1])))
    loss.backward()
    assert all(isinstance(p.grad.data, StrictArray) for p in model.params())


def test_model_on_cpu_with_input_on_another_device_fails_clearly():
    model = MLP((3, 2))
    with pytest.raises(TypeError, match="different devices"):
        model(on("strict", np.ones((1, 3), np.float32)))


# -----------------------------------------------------------------------------
# Dtypes
# -----------------------------------------------------------------------------
@pytest.mark.parametrize("make, shape", [
    (lambda: Linear(2, in_size=3), (4, 3)),
    (lambda: Conv2d(2, 3, padding=1, in_channels=1), (1, 1, 5, 5)),
    (lambda: ConvTranspose2d(2, 3, in_channels=1), (1, 1, 5, 5)),
    (lambda: BatchNorm(3), (4, 3)),
])
def test_a_float64_input_to_a_float32_layer_is_refused_with_both_dtypes(make, shape):
    """NumPy would run the rest of the model in float64 and give the float32 weights float64 gradients."""
    layer = make()
    with pytest.raises(TypeError, match=r"input has dtype float64 but the layer's parameters have float32: "
                                        r"convert the input \(x.astype\(np.float32\)\) or the model"):
        layer(np.ones(shape))
    with pytest.raises(TypeError, match="float64"):
        layer(Variable(np.ones(shape)))
    assert layer(np.ones(shape, np.float32)).dtype == np.float32


def test_integer_inputs_still_reach_a_linear_layer():
    layer = Linear(2, in_size=3)
    y = layer(np.arange(6).reshape(2, 3))
    y.sum().backward()
    assert y.dtype == layer.W.grad.dtype == np.float32


def test_astype_converts_params_grads_buffers_and_lazy_layers(device):
    np.random.seed(0)
    model = Sequential(Linear(4, in_size=3), BatchNorm(4), Linear(2)).to(device)
    x = on(device, np.random.rand(5, 3).astype(np.float32))
    y32 = host(model(x).data)
    model.steps[0].W.grad = Variable(on(device, np.ones((3, 4), np.float32)))
    assert model.astype(np.float64) is model
    assert all(layer.dtype == np.float64 for layer in model.sublayers())
    assert model.steps[0].W.dtype == model.steps[0].W.grad.dtype == np.float64
    assert model.steps[1].running_mean.dtype == np.float64
    assert model.steps[2].W.data.dtype == np.float64  # created on the first call, which ran in float32
    assert zero.backend.device_of(model.steps[1].running_var) == device
    x64 = on(device, host(x).astype(np.float64))
    y = model(x64)
    y.sum().backward()
    assert y.dtype == np.float64 and all(p.grad.dtype == np.float64 for p in model.params())
    np.testing.assert_allclose(host(y.data), y32, rtol=1e-5, atol=1e-6)
    lazy = Linear(2).astype(np.float64)
    assert lazy(np.ones((1, 3))).dtype == lazy.W.dtype == np.float64
    with pytest.raises(TypeError, match="Linear.astype: parameters must have a floating dtype, got int64"):
        lazy.astype(np.int64)


def test_a_float64_model_loads_float64_weights_into_lazy_layers_and_refuses_float32(tmp_path):
    source = Sequential(Linear(4, in_size=3), Linear(2)).astype(np.float64)
    source(np.ones((1, 3)))
    source.save_weights(tmp_path / "w64.npz")
    target = Sequential(Linear(4), Linear(2)).astype(np.float64)
    target.load_weights(tmp_path / "w64.npz")
    assert target.steps[1].W.dtype == np.float64
    with pytest.raises(ValueError, match="has dtype float64 in the file but float32 in the model"):
        Sequential(Linear(4), Linear(2)).load_weights(tmp_path / "w64.npz")


# --- found by a mutation audit of the dtypes ---
def test_a_float32_input_to_a_float64_model_is_refused():
    """The other way round: a float64 gradient check fed float32 data would quietly measure
    float32-rounded inputs (refusing only float64 inputs would let it through)."""
    model = Sequential(Linear(2, in_size=3), BatchNorm(2)).astype(np.float64)
    with pytest.raises(TypeError, match="input has dtype float32 but the layer's parameters have float64"):
        model(np.ones((4, 3), np.float32))
    assert model(np.ones((4, 3))).dtype == np.float64


def test_a_lazy_batch_norm_converted_before_its_first_call_creates_float64_statistics(device):
    """Its running statistics are still None at astype: the first call creates them in the layer's
    dtype. float32 ones would round every update of a float64 model's statistics."""
    norm = BatchNorm().to(device).astype(np.float64)
    norm(on(device, np.random.default_rng(0).standard_normal((8, 3))))
    assert norm.gamma.dtype == norm.running_mean.dtype == norm.running_var.dtype == np.float64
    assert zero.backend.device_of(norm.running_var) == device


def test_astype_leaves_integer_buffers_alone():
    """Only floating buffers hold values of the model's precision; a count or an index stays integral."""
    class Counting(Layer):
        def __init__(self):
            super().__init__()
            self.scale = Parameter(np.ones(2, np.float32))
            self.register_buffer("seen", np.zeros((), np.int64))
            self.register_buffer("offset", np.zeros(2, np.float32))

    layer = Counting().astype(np.float64)
    assert (layer.scale.dtype, layer.offset.dtype, layer.seen.dtype) == (np.float64, np.float64, np.int64)
    with pytest.raises(TypeError, match="floating dtype, got complex128"):
        layer.astype(np.complex128)


def test_a_buffer_array_held_by_two_layers_is_each_layers_own(tmp_path):
    """to() and loading replace a buffer in its layer: two layers built around one array (a mask, say)
    must each be listed, moved and saved, or the second keeps the old array (left on the host by
    to(), and saved under a name a freshly built model did not list)."""
    shared = np.array([1.0, 0.0], np.float32)

    class Masked(Layer):
        def __init__(self):
            super().__init__()
            self.register_buffer("mask", shared)

    model = Sequential(Masked(), Masked())
    assert [name for name, _ in model.named_buffers()] == ["0.mask", "1.mask"]
    model.to("strict")
    assert all(isinstance(array, StrictArray) for _, array in model.named_buffers())
    model.to("cpu").astype(np.float64)     # the two arrays are now distinct ones
    model.save_weights(tmp_path / "w.npz")
    fresh = Sequential(Masked(), Masked()).astype(np.float64)
    fresh.load_weights(tmp_path / "w.npz")
    assert [array.dtype for _, array in fresh.named_buffers()] == [np.float64, np.float64]


def test_astype_to_the_dtype_a_model_has_copies_nothing():
    """As F.astype: the same dtype is a no-op, so converting a model on a GPU to its own dtype does
    not hold every parameter, gradient and buffer twice for a moment."""
    model = Sequential(Linear(4, in_size=3), BatchNorm(4))
    model.steps[0].W.grad = Variable(np.ones((3, 4), np.float32))

    def arrays():
        return [model.steps[0].W.data, model.steps[0].W.grad.data, model.steps[1].running_mean]
    before = arrays()
    model.astype(np.float32)
    assert all(now is then for now, then in zip(arrays(), before))


def test_parameters_converted_by_hand_still_load_weights_of_their_dtype(tmp_path):
    """Before Layer.astype, float64 checks set p.data by hand, and the layer's dtype stays float32:
    a file is compared with each array's own dtype, with the layer's only for lazy (None) ones."""
    layer = Linear(2, in_size=3)
    for param in layer.params():
        param.data = param.data.astype(np.float64)
    layer.save_weights(tmp_path / "w64.npz")
    layer.load_weights(tmp_path / "w64.npz")
    assert layer.W.dtype == np.float64


# -----------------------------------------------------------------------------
# Saving and loading
# -----------------------------------------------------------------------------
def _values(model):
    named = [(name, host(p.data)) for name, p in model.named_params()]
    named += [(name, host(b)) for name, b in model.named_buffers()]
    return {name: array.copy() for name, array in named}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_save_load_roundtrip_across_devices(tmp_path, device):
    source = TwoLayer().to(device)
    source.extra = WithBuffer()
    source.extra.count = source.extra.count + 5  # a changed buffer must round-trip
    source.extra.to(device)
    path = tmp_path / "model.npz"
    source.save_weights(path)
    target = TwoLayer()
    target.extra = WithBuffer()
    target.to("strict" if device == "cpu" else "cpu")
    target.load_weights(path)
    _assert_same(_values(source), _values(target))
    assert all(p.device == target.device for p in target.params())  # loaded onto the model's device
    assert zero.backend.device_of(target.extra.count) == target.device
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary file left
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == sorted(_values(source))


def test_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    model = TwoLayer()
    model.save_weights(path)
    old_bytes = path.read_bytes()

    def crash(file, arrays):
        file.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(zero.utils, "write_npz", crash)
    with pytest.raises(KeyboardInterrupt):
        TwoLayer().save_weights(path)
    assert path.read_bytes() == old_bytes
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


@pytest.mark.parametrize("change, message", [
    (lambda arrays: arrays.pop("head.b"), r"missing \['head.b'\]"),
    (lambda arrays: arrays.update(stray=np.zeros(1, np.float32)), r"unexpected \['stray'\]"),
    (lambda arrays: arrays.update({"head.W": np.zeros((4, 3), np.float32)}),
     r"'head.W' has shape \(4, 3\) in the file but \(4, 2\) in the model"),   # a created layer's message, not a lazy one's
    (lambda arrays: arrays.update({"head.W": np.zeros((4, 2), np.float64)}), r"'head.W' has dtype float64"),
])
def test_mismatching_file_leaves_model_unchanged(tmp_path, change, message):
    model = TwoLayer()
    arrays = {name: np.full_like(value, 7.0) for name, value in _values(model).items()}
    change(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    before = _values(model)
    with pytest.raises(ValueError, match=message) as error:
        model.load_weights(path)
    assert "bad.npz" in str(error.value)
    _assert_same(before, _values(model))  # not even the entries checked before the bad one changed


def _damage_a_compressed_entry(path):
    """Overwrite 16 bytes in the middle of the first entry's deflate stream of the .npz at path."""
    data = bytearray(path.read_bytes())
    entry = zipfile.ZipFile(path).infolist()[0]
    start = entry.header_offset + 30 + len(entry.filename.encode()) + len(entry.extra)   # after its local header
    middle = start + entry.compress_size // 2
    data[middle:middle + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))


def _npy_claiming_petabytes():
    """The bytes of an .npy whose header says (2**50,) float32 (4 PiB, more than any address space),
    followed by 16 bytes of data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (2 ** 50,)})
    return header.getvalue() + bytes(16)


def _an_entry_claiming_petabytes(path):
    """An .npz whose one entry is _npy_claiming_petabytes."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hidden.W.npy", _npy_claiming_petabytes())


@pytest.mark.parametrize("content, message", [
    (b"", "neither an .npz archive nor an .npy array"),
    (b"not a zip file at all", "neither an .npz archive nor an .npy array"),   # not NumPy's advice to unpickle
    ("truncated", ""), *((damage, "") for damage in ZIP_HEADER_DAMAGE),
    ("damaged deflate", "while decompressing"),
    ("an entry claiming petabytes", r"entry 'hidden.W' does not fit in memory"),
])
def test_corrupt_file_is_a_clear_error_and_changes_nothing(tmp_path, content, message):
    model = TwoLayer()
    path = tmp_path / "corrupt.npz"
    if content == "truncated":
        model.save_weights(path)
        path.write_bytes(path.read_bytes()[:-40])
    elif content in ZIP_HEADER_DAMAGE:
        TwoLayer().save_weights(path)   # other weights, so that a load would show
        damage_zip_header(path, content)
    elif content == "damaged deflate":
        np.savez_compressed(path, weights=np.random.default_rng(0).random((40, 30)).astype(np.float32))
        _damage_a_compressed_entry(path)
    elif content == "an entry claiming petabytes":
        _an_entry_claiming_petabytes(path)
    else:
        path.write_bytes(content)
    before = _values(model)
    with pytest.raises(ValueError, match="corrupt.npz") as error:
        model.load_weights(path)
    assert re.search(message, str(error.value)), str(error.value)
    _assert_same(before, _values(model))
    assert error.value is not None and open_handles(path) == []  # closed, even while the error lives


def test_pickled_or_missing_file_is_refused(tmp_path):
    model = TwoLayer()
    path = tmp_path / "pickled.npz"
    np.savez(path, **{"encoder.0.W": np.array([object()], dtype=object)})
    with pytest.raises(ValueError, match="pickled.npz"):
        model.load_weights(path)
    np.save(tmp_path / "array.npy", np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="array.npy.*not an .npz archive"):
        model.load_weights(tmp_path / "array.npy")
    (tmp_path / "huge.npy").write_bytes(_npy_claiming_petabytes())   # refused unread, not a MemoryError
    with pytest.raises(ValueError, match="huge.npy.*not an .npz archive"):
        model.load_weights(tmp_path / "huge.npy")
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        model.load_weights(tmp_path / "nothing.npz")


def test_lazy_params_take_their_shape_from_the_file(tmp_path):
    source = MLP((6, 4, 2))
    source.save_weights(tmp_path / "w.npz")
    target = MLP((None, 4, 2))
    with pytest.raises(RuntimeError, match="not created yet"):
        target.save_weights(tmp_path / "lazy.npz")
    target.load_weights(tmp_path / "w.npz")
    x = np.ones((1, 6), np.float32)
    np.testing.assert_array_equal(target(x).data, source(x).data)


_W, _B = np.zeros((8, 3, 3, 3)), np.zeros(8)  # fit Conv2d(8, 3) with 3 input channels
_BAD_LAZY_FILES = [  # layer, its arrays in the file, the error's entry and expected shape
    (lambda: Linear(10), {"W": np.zeros((5, 3)), "b": np.zeros(7)}, "'layer.W' has shape (5, 3)", "(5, 10)"),
    (lambda: Linear(10), {"W": np.zeros((5, 10)), "b": np.zeros(7)}, "'layer.b' has shape (7,)", "(10,)"),
    (lambda: Linear(10), {"W": np.zeros((2, 5, 10)), "b": np.zeros(10)}, "'layer.W' has shape (2, 5, 10)",
     "(in_size, 10)"),
    (lambda: Linear(10), {"W": np.zeros((0, 10)), "b": np.zeros(10)}, "'layer.W' has shape (0, 10)",
     "(in_size, 10)"),
    (lambda: Conv2d(8, 3), {"W": np.zeros((4, 3, 3, 3)), "b": _B}, "'layer.W' has shape (4, 3, 3, 3)",
     "(8, 3, 3, 3)"),
    (lambda: Conv2d(8, 3), {"W": np.zeros((8, 3, 5, 5)), "b": _B}, "'layer.W' has shape (8, 3, 5, 5)",
     "(8, 3, 3, 3)"),
    (lambda: Conv2d(8, 3), {"W": _W, "b": np.zeros(4)}, "'layer.b' has shape (4,)", "(8,)"),
    (lambda: Conv2d(8, 3), {"W": np.zeros((8, 3, 9)), "b": _B}, "'layer.W' has shape (8, 3, 9)",
     "(8, in_channels, 3, 3)"),
    (lambda: ConvTranspose2d(8, 3), {"W": _W, "b": _B}, "'layer.W' has shape (8, 3, 3, 3)", "(8, 8, 3, 3)"),
    (lambda: BatchNorm(), {"gamma": np.zeros(3), "beta": np.zeros(3), "running_mean": np.zeros(4),
                           "running_var": np.zeros(2)}, "'layer.running_mean' has shape (4,)", "(3,)"),
    (lambda: BatchNorm(), {"gamma": np.zeros((3, 1)), "beta": np.zeros(3), "running_mean": np.zeros(3),
                           "running_var": np.zeros(3)}, "'layer.gamma' has shape (3, 1)", "(C,)"),
]


@pytest.mark.parametrize("make, arrays, entry, expected", _BAD_LAZY_FILES)
def test_lazy_layer_refuses_a_file_it_could_not_have_written(tmp_path, make, arrays, entry, expected):
    model = Model()
    model.layer = make()
    path = tmp_path / "bad.npz"
    np.savez(path, **{f"layer.{name}": array.astype(np.float32) for name, array in arrays.items()})
    with pytest.raises(ValueError) as error:
        model.load_weights(path)
    message = str(error.value)
    assert "bad.npz" in message and type(model.layer).__name__ in message
    assert entry in message and f"would create {expected}" in message
    values = [p.data for _, p in model.named_params()] + [b for _, b in model.named_buffers()]
    assert all(value is None for value in values)  # still lazy: nothing changed


@pytest.mark.parametrize("make, x", [
    (lambda in_size: Linear(10, in_size=in_size), np.ones((2, 3), np.float32)),
    (lambda in_size: Conv2d(8, 3, in_channels=in_size), np.ones((2, 3, 5, 5), np.float32)),
    (lambda in_size: ConvTranspose2d(8, 3, in_channels=in_size), np.ones((2, 3, 5, 5), np.float32)),
    (lambda in_size: BatchNorm(in_size), np.ones((2, 3), np.float32)),
])
def test_lazy_layer_loads_a_file_written_by_the_same_layer(tmp_path, make, x):
    source = make(3)
    source(x)  # moves batch norm's running statistics
    source.save_weights(tmp_path / "w.npz")
    target = make(None)
    target.load_weights(tmp_path / "w.npz")
    _assert_same(_values(source), _values(target))
    np.testing.assert_array_equal(target(x).data, source(x).data)


# -----------------------------------------------------------------------------
# Layers over ops written elsewhere (conv, batch norm, embedding, dropout)
# -----------------------------------------------------------------------------
def test_conv2d_shapes_init_and_lazy_channels(device):
    np.random.seed(0)
    layer = Conv2d(8, 3, padding=1).to(device)
    y = layer(on(device, np.ones((2, 5, 6, 6), np.float32)))
    assert y.shape == (2, 8, 6, 6)
    assert layer.W.shape == (8, 5, 3, 3) and layer.b.shape == (8,)
    bound = 1 / np.sqrt(5 * 9)
    assert np.abs(host(layer.W.data)).max() <= bound
    with pytest.raises(ValueError, match=r"expected input \(N, 5, H, W\)"):
        layer(on(device, np.ones((2, 4, 6, 6), np.float32)))


@pytest.mark.parametrize("make", [lambda: Conv2d(8, 3), lambda: ConvTranspose2d(8, 3)])
@pytest.mark.parametrize("shape", [(5, 6, 6), (2, 0, 6, 6)])
def test_lazy_conv_given_a_bad_input_is_a_clear_error(make, shape):
    layer = make()
    with pytest.raises(ValueError, match=type(layer).__name__ + r"\(out_channels=8.*" + re.escape(str(shape))
                       + r".*expected \(N, C, H, W\)"):
        layer(np.ones(shape, np.float32))  # (5, 6, 6): the batch axis forgotten
    assert layer.W.data is None  # still lazy
    assert layer(np.ones((2, 5, 6, 6), np.float32)).shape[:2] == (2, 8)


FLOAT64_INTO_FLOAT32 = r"the input has dtype float64 but the layer's parameters have float32"


@pytest.mark.parametrize("make, bad, error, good, created", [
    (lambda: Conv2d(4, 3), np.ones((2, 28, 28, 1), np.float32),        # NHWC by mistake: W was (4, 28, 3, 3)
     (ValueError, r"conv2d: kernel \(3, 3\) does not fit input \(2, 28, 28, 1\)"),
     np.ones((2, 1, 28, 28), np.float32), {"W": (4, 1, 3, 3), "b": (4,)}),
    (lambda: ConvTranspose2d(4, 3), np.ones((2, 5, 6, 6)), (TypeError, FLOAT64_INTO_FLOAT32),
     np.ones((2, 2, 6, 6), np.float32), {"W": (2, 4, 3, 3), "b": (4,)}),
    (lambda: Linear(3), np.ones((2, 4)), (TypeError, FLOAT64_INTO_FLOAT32),
     np.ones((2, 5), np.float32), {"W": (5, 3), "b": (3,)}),
    (lambda: BatchNorm(), np.ones((1, 3), np.float32),                  # one value per channel
     (ValueError, r"training needs more than one value per channel, got input \(1, 3\)"),
     np.random.rand(4, 2).astype(np.float32), {"gamma": (2,), "beta": (2,), "running_mean": (2,), "running_var": (2,)}),
], ids=["Conv2d", "ConvTranspose2d", "Linear", "BatchNorm"])
def test_a_lazy_layers_failed_first_call_leaves_it_lazy(make, bad, error, good, created):
    """A first call that raised kept the parameters it had created for the bad input's size, so the
    corrected call was refused ('expected input (N, 28, H, W)'). Each bad call must fail for its own
    reason (any ValueError or TypeError was accepted)."""
    layer = make()
    params = list(layer.params())   # an optimizer may hold these
    error_type, message = error
    with pytest.raises(error_type, match=message):
        layer(bad)
    assert all(value is None for _, value in layer.named_buffers())
    assert all(param.data is None for param in layer.params())
    layer(good)
    after = list(layer.params())   # the same Parameter objects (an optimizer built before keeps working)
    assert len(after) == len(params) and all(param is before for param, before in zip(after, params))
    assert {name: value.shape for name, value in [*layer.named_params(), *layer.named_buffers()]} == created


def test_conv2d_matches_torch():
    torch = pytest.importorskip("torch")
    layer = Conv2d(4, 3, stride=2, padding=1, in_channels=3)
    reference = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
    with torch.no_grad():
        reference.weight.copy_(torch.from_numpy(layer.W.data))
        reference.bias.copy_(torch.from_numpy(layer.b.data))
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 7)).astype(np.float32)
    np.testing.assert_allclose(layer(x).data, reference(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)


def test_conv_transpose2d_matches_torch():
    torch = pytest.importorskip("torch")
    np.random.seed(1)
    layer = ConvTranspose2d(2, 4, stride=2, padding=1, in_channels=3)
    assert layer.W.shape == (3, 2, 4, 4)
    assert np.abs(layer.W.data).max() <= 1 / np.sqrt(2 * 16)  # PyTorch's fan_in: out_channels * KH * KW
    reference = torch.nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1)
    with torch.no_grad():
        reference.weight.copy_(torch.from_numpy(layer.W.data))
        reference.bias.copy_(torch.from_numpy(layer.b.data))
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(np.float32)
    y = layer(x)
    assert y.shape == (2, 2, 10, 10)
    np.testing.assert_allclose(y.data, reference(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5, 5)])
def test_batch_norm_train_and_eval(device, shape):
    layer = BatchNorm().to(device)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32) * 3 + 1
    y = host(layer(on(device, x)).data)
    axes = (0,) if len(shape) == 2 else (0, 2, 3)
    np.testing.assert_allclose(y.mean(axis=axes), 0, atol=1e-4)
    np.testing.assert_allclose(y.var(axis=axes), 1, atol=1e-2)
    assert [name for name, _ in layer.named_buffers()] == ["running_mean", "running_var"]
    assert zero.backend.device_of(layer.running_mean) == device
    np.testing.assert_allclose(host(layer.running_mean), 0.1 * x.mean(axis=axes), rtol=1e-4, atol=1e-6)
    layer.eval()
    mean, var = host(layer.running_mean), host(layer.running_var)
    expanded = (slice(None),) + (None,) * (len(shape) - 2)
    expected = (x - mean[expanded]) / np.sqrt(var[expanded] + 1e-5)
    np.testing.assert_allclose(host(layer(on(device, x)).data), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(host(layer.running_mean), mean)  # frozen in eval mode


def test_batch_norm_wrong_features_is_a_clear_error():
    layer = BatchNorm(3)
    with pytest.raises(ValueError, match=r"BatchNorm\(num_features=3.*\(2, 4\)"):
        layer(np.ones((2, 4), np.float32))


def test_embedding_lookup_and_grad(device):
    layer = Embedding(5, 3).to(device)
    ids = on(device, np.array([[0, 4], [4, 1]]))
    y = layer(ids)
    assert y.shape == (2, 2, 3)
    np.testing.assert_array_equal(host(y.data)[0, 1], host(layer.W.data)[4])
    y.sum().backward()
    np.testing.assert_array_equal(host(layer.W.grad.data)[:, 0], [1, 1, 0, 0, 2])


def test_dropout_only_in_training(device):
    layer = Dropout()   # p = 0.5 by default
    x = on(device, np.ones((100, 100), np.float32))
    y = host(layer(x).data)
    assert set(np.unique(y)) == {0.0, 2.0} and 0.4 < (y == 0).mean() < 0.6
    layer.eval()
    np.testing.assert_array_equal(host(layer(x).data), 1.0)
    with pytest.raises(ValueError, match="p must be"):
        Dropout(1.0)


@pytest.mark.parametrize("make, fan_in", [
    (lambda: Conv2d(8, 3, in_channels=2), 2 * 3 * 3),            # W (8, 2, 3, 3): fan_in = C * KH * KW
    (lambda: ConvTranspose2d(8, 3, in_channels=2), 8 * 3 * 3),   # W (2, 8, 3, 3): PyTorch uses W.shape[1]
    (lambda: Conv2d(2, (2, 5), in_channels=8), 8 * 2 * 5),
])
def test_convolution_init_draws_pytorch_bounds_from_numpys_generator(make, fan_in):
    """W then b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn in that order from np.random (float32)."""
    np.random.seed(0)
    layer = make()
    bound = 1 / np.sqrt(fan_in)
    np.random.seed(0)
    W = np.random.uniform(-bound, bound, size=layer.W.shape).astype(np.float32)
    b = np.random.uniform(-bound, bound, size=layer.b.shape).astype(np.float32)
    np.testing.assert_array_equal(layer.W.data, W)
    np.testing.assert_array_equal(layer.b.data, b)


def test_embedding_init_is_standard_normal_from_numpys_generator():
    np.random.seed(1)
    layer = Embedding(7, 3)
    np.random.seed(1)
    np.testing.assert_array_equal(layer.W.data, np.random.standard_normal((7, 3)).astype(np.float32))


def test_batch_norm_layer_starts_from_zero_mean_unit_var_and_uses_its_momentum_and_eps():
    x = np.array([[1.0, -2.0], [3.0, 0.0], [8.0, 4.0]], np.float32)
    layer = BatchNorm(2, momentum=0.25, eps=0.5)
    layer.eval()
    # before any training step: running_mean 0, running_var 1, so y = x / sqrt(1 + eps)
    np.testing.assert_allclose(layer(x).data, x / np.sqrt(1.5), rtol=1e-6)
    layer.train()
    y = layer(x).data
    mean, var = x.mean(axis=0, dtype=np.float64), x.var(axis=0, dtype=np.float64)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 0.5), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.running_mean, 0.25 * mean, rtol=1e-6)
    np.testing.assert_allclose(layer.running_var, 0.75 + 0.25 * x.var(axis=0, ddof=1, dtype=np.float64), rtol=1e-6)


@pytest.mark.parametrize("p", [0.2, 0.75])
def test_dropout_layer_uses_its_own_p(p):
    np.random.seed(0)
    y = Dropout(p)(np.ones(4000, np.float32)).data
    kept = y[y != 0]
    np.testing.assert_array_equal(kept, np.float32(1 / (1 - p)))
    assert abs(len(kept) / 4000 - (1 - p)) < 0.03


# -----------------------------------------------------------------------------
# Models: found by a mutation audit
# -----------------------------------------------------------------------------
def mlp_by_hand(model, x, activation):
    for i, layer in enumerate(model.layers):
        x = x @ layer.W.data + layer.b.data
        x = activation(x) if i < len(model.layers) - 1 else x
    return x


def test_mlp_hidden_activation_defaults_to_relu_and_can_be_changed():
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    model = MLP((3, 5, 5, 2))
    np.testing.assert_allclose(model(x).data, mlp_by_hand(model, x, lambda h: np.maximum(h, 0)), rtol=1e-5, atol=1e-6)
    model = MLP((3, 5, 5, 2), activation=F.tanh)
    np.testing.assert_allclose(model(x).data, mlp_by_hand(model, x, np.tanh), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sizes, error, message", [
    (784, TypeError, "MLP: sizes must be a list or tuple of layer sizes (in, hidden..., out), e.g. (784, 200, 10), "
                     "got 784"),                                   # was TypeError: 'int' object is not iterable
    ("784", TypeError, "MLP: sizes must be a list or tuple of layer sizes"),
    ((784, 10.5), ValueError, "MLP: sizes[1] must be a whole number >= 1, got 10.5"),
    ((None, 200, None), ValueError, "MLP: sizes[2] must be a whole number >= 1, got None"),
])
def test_mlp_refuses_sizes_that_are_not_a_list_of_whole_numbers_by_name(sizes, error, message):
    with pytest.raises(error, match=re.escape(message)):
        MLP(sizes)


@pytest.mark.parametrize("make", [lambda: Linear(3, in_size=5), lambda: Linear(3), lambda: Conv2d(2, 3),
                                  lambda: BatchNorm()], ids=["Linear", "lazy Linear", "Conv2d", "BatchNorm"])
def test_a_layer_given_a_list_says_so_by_name(make):
    """Linear(3, in_size=5)([[...]]) raised AttributeError: 'list' object has no attribute 'ndim'."""
    layer = make()
    with pytest.raises(TypeError, match=re.escape(f"{layer!r}: the input must be an array or a Variable, got a list")):
        layer([[1.0, 2.0, 3.0, 4.0, 5.0]])


def test_mlp_takes_sizes_as_any_iterable():
    for sizes in ([3, 4, 2], range(3, 0, -1), (size for size in (3, 4, 2))):
        model = MLP(sizes)
        assert model(np.ones((2, 3), np.float32)).shape[0] == 2
        assert model.layers[0].W.shape[0] == 3


# -----------------------------------------------------------------------------
# Layers: found by a mutation audit
# -----------------------------------------------------------------------------
def test_a_shared_lazy_batch_norm_is_listed_once():
    """Its buffers are None until the first call, so only the layer itself can tell it was seen."""
    model = Model()
    model.a = model.b = BatchNorm()
    assert [name for name, _ in model.named_params()] == ["a.gamma", "a.beta"]
    assert [name for name, _ in model.named_buffers()] == ["a.running_mean", "a.running_var"]


def test_sequential_names_layers_by_their_position_among_all_steps():
    model = Sequential(Linear(4, in_size=2), F.relu, Linear(1, in_size=4))
    assert [name for name, _ in model.named_params()] == ["0.W", "0.b", "2.W", "2.b"]


def test_repr_shows_settings_and_nests_sublayers():
    assert repr(TwoLayer()) == ("TwoLayer(\n"
                                "  (encoder): Sequential(\n"
                                "    (0): Linear(out_size=4, in_size=3, bias=True)\n"
                                "  )\n"
                                "  (head): Linear(out_size=2, in_size=4, bias=True)\n"
                                ")")
    assert repr(Conv2d(4, 3, in_channels=2, bias=False)) == ("Conv2d(out_channels=4, kernel_size=(3, 3), stride=(1, 1), "
                                                             "padding=(0, 0), in_channels=2, bias=False)")


def test_a_plain_model_records_no_checkpoint_settings():
    assert TwoLayer().checkpoint_config() == {}


def test_to_records_the_devices_canonical_name():
    layer = Linear(2).to("strict:0")
    assert layer.device == "strict"
    layer(on("strict", np.ones((1, 3), np.float32)))
    assert layer.W.device == layer.device


def test_save_weights_creates_missing_folders(tmp_path):
    model = TwoLayer()
    path = tmp_path / "runs" / "today" / "model.npz"
    model.save_weights(path)
    target = TwoLayer()
    target.load_weights(path)
    _assert_same(_values(model), _values(target))


def test_lazy_layer_refuses_a_file_of_another_dtype(tmp_path):
    """A lazy parameter would be created float32, so a float64 file is refused like a wrong shape."""
    model = Model()
    model.layer = Linear(3)
    path = tmp_path / "float64.npz"
    np.savez(path, **{"layer.W": np.zeros((2, 3)), "layer.b": np.zeros(3)})
    with pytest.raises(ValueError, match=r"'layer.W' has dtype float64 in the file but float32"):
        model.load_weights(path)
    assert model.layer.W.data is None and model.layer.b.data is None


def test_lazy_batch_norm_loads_its_file_onto_its_device(tmp_path, device):
    source = BatchNorm(3)
    source(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))   # moves the running statistics
    source.save_weights(tmp_path / "norm.npz")
    target = BatchNorm().to(device)
    target.load_weights(tmp_path / "norm.npz")
    assert all(zero.backend.device_of(array) == device for array in (target.gamma.data, target.running_mean,
                                                                         target.running_var))
    _assert_same(_values(source), _values(target))


def test_lazy_linear_takes_in_size_from_the_last_axis():
    layer = Linear(5)
    assert layer(np.ones((2, 4, 3), np.float32)).shape == (2, 4, 5)
    assert layer.W.shape == (3, 5)


def test_conv_transpose2d_adds_its_output_padding():
    """H' = (H - 1) stride - 2 padding + KH + output_padding = 3 * 2 - 0 + 3 + 1 = 10."""
    layer = ConvTranspose2d(2, 3, stride=2, output_padding=1, in_channels=1)
    assert layer(np.ones((1, 1, 4, 4), np.float32)).shape == (1, 2, 10, 10)


def test_batch_norm_default_eps_is_one_hundred_thousandth():
    """A batch whose variance equals eps = 1e-5 is scaled by 1 / sqrt(var + eps) = 1 / sqrt(2 var):
    its normalised values are +-1/sqrt(2), not +-1."""
    half_spread = np.sqrt(1e-5)
    x = np.array([[half_spread], [-half_spread]], np.float32)   # mean 0, variance 1e-5
    np.testing.assert_allclose(BatchNorm()(x).data, [[2 ** -0.5], [-(2 ** -0.5)]], rtol=1e-4)


def test_batch_norm_refuses_three_dimensional_input():
    with pytest.raises(ValueError, match=r"expected input \(N, C\) or \(N, C, H, W\), got shape \(2, 3, 4\)"):
        BatchNorm()(np.ones((2, 3, 4), np.float32))


@pytest.mark.parametrize("p", [1.0, -0.1])
def test_dropout_probability_must_lie_in_zero_to_one(p):
    with pytest.raises(ValueError, match=r"Dropout: p must be a finite number in \[0, 1\)"):
        Dropout(p)


@pytest.mark.parametrize("make, message", [
    (lambda: Linear(0), "Linear: out_size must be a whole number >= 1, got 0"),
    (lambda: Linear(-3), "Linear: out_size must be a whole number >= 1, got -3"),
    (lambda: Linear(2.5), "Linear: out_size must be a whole number >= 1, got 2.5"),
    (lambda: Linear(4, in_size=0), "Linear: in_size must be a whole number >= 1, got 0"),
    (lambda: MLP((3, 0, 2)), "MLP: sizes[1] must be a whole number >= 1, got 0"),
    (lambda: Conv2d(0, 3), "Conv2d: out_channels must be a whole number >= 1, got 0"),
    (lambda: ConvTranspose2d(8, 3, in_channels=-1), "ConvTranspose2d: in_channels must be a whole number >= 1, got -1"),
    (lambda: BatchNorm(0), "BatchNorm: num_features must be a whole number >= 1, got 0"),
    (lambda: BatchNorm(4, momentum=1.5), "BatchNorm: momentum must be a finite number in [0, 1], got 1.5"),
    (lambda: BatchNorm(4, eps=0), "BatchNorm: eps must be a finite number > 0, got 0"),
    (lambda: Embedding(0, 4), "Embedding: num must be a whole number >= 1, got 0"),
    (lambda: Embedding(10, True), "Embedding: dim must be a whole number >= 1, got True"),
    (lambda: Conv2d(8, 0, in_channels=2), "Conv2d: kernel_size must be a whole number >= 1 or a pair of them, got 0"),
    (lambda: Conv2d(8, (3, -1)), "Conv2d: kernel_size must be a whole number >= 1 or a pair of them, got (3, -1)"),
    (lambda: ConvTranspose2d(8, (3,)), "ConvTranspose2d: kernel_size must be a whole number >= 1 or a pair of them, "
                                       "got (3,)"),
    (lambda: Conv2d(8, (3, 3, 3)), "Conv2d: kernel_size must be a whole number >= 1 or a pair of them, got (3, 3, 3)"),
    # stride, padding and output_padding were only checked by the first call, after it had created W
    (lambda: Conv2d(8, 3, stride=0), "Conv2d: stride must be a whole number >= 1 or a pair of them, got 0"),
    (lambda: Conv2d(8, 3, padding="same"), "Conv2d: padding must be a whole number >= 0 or a pair of them, got 'same'"),
    (lambda: ConvTranspose2d(8, 3, stride=(2, -1)), 
     "ConvTranspose2d: stride must be a whole number >= 1 or a pair of them, got (2, -1)"),
    (lambda: ConvTranspose2d(8, 3, padding=(1, 1, 1)),
     "ConvTranspose2d: padding must be a whole number >= 0 or a pair of them, got (1, 1, 1)"),
    (lambda: ConvTranspose2d(8, 3, output_padding=-1), 
     "ConvTranspose2d: output_padding must be a whole number >= 0 or a pair of them, got -1"),
    (lambda: ConvTranspose2d(8, 3, stride=(2, 1), output_padding=1),
     "ConvTranspose2d: output_padding must be smaller than stride, got output_padding=1 with stride=(2, 1)"),
])
def test_a_layer_refuses_a_size_or_setting_out_of_range_by_name(make, message):
    """A 0 or negative size failed later, if at all (MLP((3, 0, 2)) with a bare ZeroDivisionError)."""
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def test_layer_sizes_may_be_numpy_integers():
    assert Linear(np.int64(4), in_size=np.int64(3)).W.shape == (3, 4)
    assert Conv2d(8, np.int64(3), in_channels=2).W.shape == (8, 2, 3, 3)


# -----------------------------------------------------------------------------
# Found by a second mutation audit
# -----------------------------------------------------------------------------
def test_layers_show_their_own_settings_in_repr():
    assert repr(Linear(3, in_size=2, bias=False)) == "Linear(out_size=3, in_size=2, bias=False)"
    assert repr(Embedding(7, 3)) == "Embedding(num=7, dim=3)"
    assert repr(Dropout(0.25)) == "Dropout(p=0.25)"
    assert repr(BatchNorm(4, momentum=0.2, eps=0.001)) == "BatchNorm(num_features=4, momentum=0.2, eps=0.001)"


def test_linear_refuses_a_scalar_input_by_name():
    with pytest.raises(ValueError, match=r"Linear\(out_size=5, in_size=3.*input of shape \(\) does not end in 3"):
        Linear(5, in_size=3)(np.array(1.0, np.float32))


@pytest.mark.parametrize("make", [lambda: Conv2d(8, 3, in_channels=5), lambda: ConvTranspose2d(8, 3, in_channels=5)])
def test_conv_layer_refuses_an_input_without_batch_axis_by_name(make):
    """(2, 5, 6) has 5 in axis 1 like a good input, but no batch axis."""
    layer = make()
    with pytest.raises(ValueError, match=type(layer).__name__ + r"\(out_channels=8.*expected input \(N, 5, H, W\), "
                                                                 r"got shape \(2, 5, 6\)"):
        layer(np.ones((2, 5, 6), np.float32))


def test_conv_layer_with_a_rectangular_kernel_keeps_height_then_width():
    layer = Conv2d(4, (2, 3), in_channels=1)
    assert layer.W.shape == (4, 1, 2, 3)
    assert layer(np.ones((1, 1, 5, 5), np.float32)).shape == (1, 4, 4, 3)


def test_batch_norm_accepts_momentum_zero_and_one_and_refuses_negative():
    x = np.array([[1.0], [3.0], [8.0]], np.float32)
    frozen, follow = BatchNorm(1, momentum=0), BatchNorm(1, momentum=1)
    frozen(x), follow(x)
    np.testing.assert_array_equal(frozen.running_mean, [0.0])
    np.testing.assert_array_equal(frozen.running_var, [1.0])
    np.testing.assert_allclose(follow.running_mean, [4.0], rtol=1e-6)
    np.testing.assert_allclose(follow.running_var, [x.var(ddof=1)], rtol=1e-6)
    with pytest.raises(ValueError, match=r"BatchNorm: momentum must be a finite number in \[0, 1\], got -0.1"):
        BatchNorm(1, momentum=-0.1)


def test_dropout_with_p_zero_keeps_every_element():
    x = np.random.default_rng(0).standard_normal(100).astype(np.float32)
    np.testing.assert_array_equal(Dropout(0.0)(x).data, x)


def test_check_lazy_shapes_skips_entries_the_arrays_do_not_hold():
    """zero.training passes only the buffers its checkpoint holds: a lazy entry without an array is not checked."""
    model = Model()
    model.layer = Linear(5)
    model.check_lazy_shapes({"layer.W": np.zeros((3, 5), np.float32)}, "checkpoint c.npz")
    with pytest.raises(ValueError, match=r"checkpoint c.npz: 'layer.W' has shape \(3, 4\)"):
        model.check_lazy_shapes({"layer.W": np.zeros((3, 4), np.float32)}, "checkpoint c.npz")


def test_layer_put_in_a_plain_set_after_assignment_is_refused_when_the_model_is_walked():
    model = Model()
    model.tags = set()
    model.tags.add(Linear(2, in_size=2))
    with pytest.raises(TypeError, match=r"Model\.tags: a plain set holds a layer or parameter"):
        list(model.params())


# --- from a bug hunt of layers and models (2026-12-03) ----------------------------------------------------------------
def test_deleting_a_part_unregisters_it():
    """del left the name registered: every walk over the model (params, repr, save) raised KeyError."""
    class Two(Layer):
        def __init__(self):
            super().__init__()
            self.a, self.b = Linear(2, in_size=3), Linear(1, in_size=2)
    model = Two()
    del model.a
    assert [name for name, _ in model.named_params()] == ["b.W", "b.b"] and "(a)" not in repr(model)
    norm = BatchNorm(3)
    del norm.running_mean
    assert [name for name, _ in norm.named_buffers()] == ["running_var"]


def test_a_layer_put_in_place_of_another_is_the_one_that_runs():
    """Sequential and LayerList ran the old layer while params(), eval() and save_weights saw the new one."""
    np.random.seed(0)
    new = Linear(1, in_size=2)
    new.W.data[:] = 0
    new.b.data[:] = 5
    sequential = Sequential(Linear(2, in_size=3), F.relu, Linear(1, in_size=2))
    setattr(sequential, "2", new)
    np.testing.assert_array_equal(sequential(np.ones((1, 3), np.float32)).data, [[5.0]])
    layers = LayerList([Linear(1, in_size=2), Linear(1, in_size=2)])
    setattr(layers, "0", new)
    assert layers[0] is new and list(layers)[0] is new and len(layers) == 2


def test_a_child_pointing_back_at_its_parent_does_not_rename_or_recurse():
    class Child(Layer):
        def __init__(self):
            super().__init__()
            self.linear = Linear(2, in_size=2)

    class Parent(Layer):
        def __init__(self):
            super().__init__()
            self.child = Child()
            self.child.parent = self
            self.W = Parameter(np.ones(2, np.float32))
    parent = Parent()
    assert [name for name, _ in parent.named_params()] == ["child.linear.W", "child.linear.b", "W"]
    assert "(parent): Parent(, ...)" in repr(parent)


def test_weights_named_like_numpy_savez_arguments_are_saved(tmp_path):
    """np.savez takes the names as keyword arguments: 'allow_pickle' was dropped, 'file' an error."""
    class Odd(Layer):
        def __init__(self):
            super().__init__()
            self.file = Parameter(np.arange(2, dtype=np.float32))
            self.allow_pickle = Parameter(np.ones(3, np.float32))
    Odd().save_weights(tmp_path / "odd.npz")
    other = Odd()
    other.file.data[:] = 7
    other.load_weights(tmp_path / "odd.npz")
    np.testing.assert_array_equal(other.file.data, [0, 1])
    with np.load(tmp_path / "odd.npz") as archive:
        assert sorted(archive.files) == ["allow_pickle", "file"]


def test_batch_norm_with_a_numpy_float64_eps_keeps_float32_in_eval_mode():
    model = Sequential(Linear(3, in_size=2), BatchNorm(eps=np.float64(1e-3)), Linear(1))
    x = np.random.default_rng(0).standard_normal((4, 2)).astype(np.float32)
    assert model(x).dtype == np.float32
    model.eval()
    assert model(x).dtype == np.float32   # the next layer refused the float64 batch


def test_batch_norm_momentum_none_and_the_transposed_convs_output_padding_are_named():
    with pytest.raises(ValueError, match=r"BatchNorm: momentum must be a finite number in \[0, 1\], got None"):
        BatchNorm(3, momentum=None)
    assert "output_padding=(1, 1)" in repr(ConvTranspose2d(3, 2, stride=2, output_padding=1))
    assert "output_padding" not in repr(ConvTranspose2d(3, 2, stride=2))


def test_dropout_draws_its_mask_in_the_arrays_dtype_on_cupy(monkeypatch):
    """Dropout asks zero.backend.uniform for draws in x's dtype, which on CuPy come in that dtype (a
    float32 model draws no float64 array as large as its activations); a stand-in module takes
    CuPy's place in zero.backend to record the call."""
    backend = zero.backend
    asked = []
    real_uniform = backend.uniform
    monkeypatch.setattr(backend, "uniform", lambda xp, shape, dtype: asked.append(dtype) or real_uniform(xp, shape, dtype))
    Dropout(0.5)(np.ones((2, 3), np.float32))
    assert asked == [np.float32]

    calls = []

    class FakeRandom:
        @staticmethod
        def random_sample(shape, dtype=float):
            calls.append((shape, np.dtype(dtype)))
            return np.random.random_sample(shape).astype(dtype)

    fake_cupy = type("FakeCuPy", (), {"random": FakeRandom})()
    monkeypatch.setattr(backend, "cupy", fake_cupy)
    draws = real_uniform(fake_cupy, (3, 4), np.float32)
    assert calls == [((3, 4), np.dtype(np.float32))] and draws.dtype == np.float32
    # NumPy: float64 draws, the same numbers for a seed whatever the model's dtype
    np.random.seed(0)
    on_numpy = real_uniform(np, (3, 4), np.float32)
    np.random.seed(0)
    np.testing.assert_array_equal(on_numpy, np.random.random_sample((3, 4)))
