"""Layers: objects that own parameters, and the layers the course uses.

A `Layer` finds its parameters and sub-layers by itself: assigning a
`Parameter` or a `Layer` to an attribute registers it under that name, so

    class Encoder(Layer):
        def __init__(self):
            super().__init__()
            self.l1 = Linear(200, in_size=784)
            self.l2 = Linear(20)

gives `encoder.params()` (each parameter once, W and b of both layers) and the
dotted names "l1.W", "l1.b", "l2.W", "l2.b" used by `save_weights`. Lists of
layers go in a `LayerList`: a plain list, tuple, dict or set holding a layer or
parameter (at any depth) would hide it, so it is refused when assigned or, if
filled later, when the model is next walked (params(), eval(), to(),
save_weights). Arrays that are not trained but belong to the model (batch
norm's running statistics) are *buffers*: `register_buffer(name, array)`;
they move with `to(device)` and are saved with the weights.

Train and test behaviour: every layer has a flag `training` (True after
construction; `model.eval()` clears it on the layer and all its sub-layers,
`model.train()` sets it again). A layer behaves as in training only when its
own flag and `Config.train` are both True: `__call__` runs `forward` under
`using_config('train', False)` for a layer in eval mode, and
`with zero.test_mode():` switches every layer to test behaviour as well.

Devices and dtypes: parameters and buffers live on the layer's device (`layer.device`,
'cpu' by default); `to(device)` moves them all. They hold `layer.dtype` (float32, zero's
default), and `astype(np.float64)` converts them all (a float64 gradient check, say).
Linear, convolution and batch norm layers refuse a floating input of another dtype than
their parameters rather than run the rest of the model in it. Layers whose input size is not
given (`Linear(10)`) create their parameters on the first call, on the layer's device (a
first call that raises leaves them uncreated); until then their parameters are
`Parameter(None)`, already known to `params()`, so an optimizer may be built before the first call.

Initialization follows PyTorch's defaults, so results can be compared with it
by copying weights: Linear and convolutions draw weights and biases from
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), Embedding from N(0, 1). Random numbers
come from NumPy's global generator: `np.random.seed(0)` makes them repeatable.
"""
import math
from pathlib import Path

import numpy as np

import zero.functions as F
from zero.backend import DEFAULT_DTYPE, device_of, get_backend, to_device, to_numpy
from zero.core import Config, Parameter, Variable, date_change, using_config
from zero.functions.conv import size_pair
from zero.utils import NPZ_READ_ERRORS, check_count, check_number, read_npz, save_npz_atomically

PARAM, LAYER, BUFFER = "param", "layer", "buffer"
_SHOWN = set()   # ids of the layers whose repr is being built (Layer.__repr__)
PLAIN_CONTAINERS = (list, tuple, dict, set, frozenset)


class Layer:
    """Base class: owns Parameters, buffers and sub-layers; see the module docstring.

    Subclasses call `super().__init__()` first, then assign their parts, and
    define `forward(*inputs)`. Call the layer itself (`layer(x)`), not forward.
    """

    def __init__(self):
        object.__setattr__(self, "_members", {})  # attribute name -> PARAM, LAYER or BUFFER
        object.__setattr__(self, "_containers", set())  # names of plain container attributes: see _walk
        self.training = True
        self.device = "cpu"
        self.dtype = np.dtype(DEFAULT_DTYPE)

    def __setattr__(self, name, value):
        members = self.__dict__.get("_members")
        if members is None:
            raise TypeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                            f"before assigning attributes (assigning {name!r})")
        if isinstance(value, Variable) and not isinstance(value, Parameter):
            self._refuse_plain_variable(name, value, members.get(name) == PARAM)
        elif members.get(name) == PARAM and not isinstance(value, Variable) and hasattr(value, "dtype"):
            raise TypeError(f"{type(self).__name__}.{name}: assigning an array in place of parameter {name!r} "
                            f"would unregister it (no longer trained, saved or moved, while the optimizer keeps "
                            f"updating the old one): change its values in place (layer.{name}.data[...] = array) "
                            f"or assign Parameter(array)")
        if isinstance(value, PLAIN_CONTAINERS):
            self._refuse_hidden_layers(name, value)  # raises before anything changes
            # it may be filled later (self.blocks = []; append), even inside a tuple: _walk looks again
            self._containers.add(name)
        else:
            self._containers.discard(name)
        if isinstance(value, Parameter):
            members[name] = PARAM
        elif isinstance(value, Layer):
            members[name] = LAYER
        elif members.get(name) == BUFFER:
            pass  # a buffer keeps its slot when its array is replaced
        else:
            members.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        """`del layer.part` unregisters the part too (as layer.part = None would)."""
        object.__delattr__(self, name)
        self._members.pop(name, None)
        self._containers.discard(name)

    def _refuse_hidden_layers(self, name, value):
        """TypeError if plain container `value` (attribute `name`) holds a Layer or Parameter at any
        depth: params(), save_weights, eval() and to() only look at attributes, not inside containers."""
        if _holds_layer(value):
            raise TypeError(f"{type(self).__name__}.{name}: a plain {type(value).__name__} holds a layer or "
                            f"parameter, which params(), save_weights, eval() and to() would not see; "
                            f"put layers in a LayerList([...]) and parameters in attributes of their own")

    def _refuse_plain_variable(self, name, value, replaces_param):
        """TypeError for a Variable that is not a Parameter where a Parameter belongs: in place of a
        parameter (`self.W -= lr * self.W.grad` makes W a new Variable, which would silently
        unregister it), or as a new trainable leaf (`self.W = Variable(...)`): params() lists
        Parameters only, so the optimizer would never update it. Results of ops (a creator) and
        constants (requires_grad=False) may be kept as attributes."""
        where = f"{type(self).__name__}.{name}"
        if replaces_param:
            raise TypeError(f"{where}: assigning a Variable (not a Parameter) in place of parameter {name!r} "
                            f"would unregister it (no longer trained or saved): update it in place "
                            f"(layer.{name}.data -= lr * layer.{name}.grad.data) or assign a Parameter")
        if value.creator is None and value.requires_grad:
            raise TypeError(f"{where}: a Variable that needs a gradient is not a parameter: params() and the "
                            f"optimizer would never see it. Use Parameter(array) for a weight to train, "
                            f"or Variable(array, requires_grad=False) (or register_buffer) for a constant")

    def _check_containers(self):
        """Look again into the container attributes (usually none): catches `self.blocks = []`
        (or a list inside a tuple) filled with layers after the assignment."""
        for name in self._containers:
            self._refuse_hidden_layers(name, self.__dict__.get(name))

    def __call__(self, *inputs):
        if self.training or not Config.train:
            return self.forward(*inputs)
        with using_config("train", False):
            return self.forward(*inputs)

    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    # --- parts ---
    def register_buffer(self, name, array):
        """Make `name` a buffer: an array (or None until known) saved and moved with the layer."""
        self._members[name] = BUFFER
        object.__setattr__(self, name, array)

    def _walk(self, prefix="", seen=None):
        """(dotted name, owning layer, attribute, kind) for every parameter and
        buffer below this layer: each layer and parameter once, under its first name (a
        parameter shared by two layers is one Parameter, moved and loaded in place); each
        buffer under its own name, even when two layers hold the same array, since to() and
        loading replace a buffer in its layer, not in place."""
        seen = {id(self)} if seen is None else seen   # the root too: a child may point back at it
        self._check_containers()
        for name, kind in self._members.items():
            value = self.__dict__[name]
            if kind == LAYER:
                if id(value) not in seen:
                    seen.add(id(value))
                    yield from value._walk(f"{prefix}{name}.", seen)
            elif kind == BUFFER:
                yield prefix + name, self, name, kind
            elif value is None or id(value) not in seen:
                if value is not None:
                    seen.add(id(value))
                yield prefix + name, self, name, kind

    def sublayers(self):
        """This layer and every layer inside it, each once."""
        found, stack = {id(self): self}, [self]
        while stack:
            layer = stack.pop()
            layer._check_containers()
            for name, kind in layer._members.items():
                child = layer.__dict__[name]
                if kind == LAYER and id(child) not in found:
                    found[id(child)] = child
                    stack.append(child)
        return list(found.values())

    def named_params(self):
        """(dotted name, Parameter) for every parameter, each once."""
        for name, layer, attribute, kind in self._walk():
            if kind == PARAM:
                yield name, layer.__dict__[attribute]

    def params(self):
        """Every Parameter of this layer and its sub-layers, each once (including
        lazy ones whose data is still None), as a list: kept in a variable
        (`params = model.params()`), it serves the optimizer and clip_grad_norm
        alike; a generator would be used up by the first, and the second would
        silently find no parameters."""
        return [param for _, param in self.named_params()]

    def named_buffers(self):
        """(dotted name, array or None) for every buffer: one held by two layers comes once under each
        name (save_weights writes both)."""
        for name, layer, attribute, kind in self._walk():
            if kind == BUFFER:
                yield name, layer.__dict__[attribute]

    def checkpoint_config(self):
        """Settings that the weights depend on but their shapes do not show (a VAE's likelihood):
        {name: str}. zero.training saves them with the weights and refuses to load weights
        trained under other settings. Empty by default."""
        return {}

    def cleargrads(self):
        for param in self.params():
            param.cleargrad()

    def num_params(self):
        """Number of trainable numbers (elements of all parameters)."""
        total = 0
        for name, param in self.named_params():
            if param.data is None:
                raise RuntimeError(f"{type(self).__name__}.num_params: parameter {name!r} is not created "
                                   f"yet (its layer infers its input size): call the model on a batch first")
            total += param.data.size
        return total

    # --- modes and devices ---
    def train(self, mode=True):
        """Training behaviour for this layer and all sub-layers (eval() undoes it); returns self."""
        if not isinstance(mode, (bool, np.bool_)):   # train("no") or train(0) would store a truthy or odd flag
            raise TypeError(f"{type(self).__name__}.train: mode must be True or False, got {mode!r} "
                            f"(for test behaviour call model.eval())")
        for layer in self.sublayers():
            layer.training = bool(mode)   # NumPy's bool stored as Python's
        return self

    def eval(self):
        """Test behaviour (dropout off, batch norm uses running stats); returns self."""
        return self.train(False)

    def to(self, device):
        """Move every parameter (with its grad) and buffer to device; returns self."""
        device = get_backend(device).name
        for layer in self.sublayers():
            layer.device = device
        for _, layer, attribute, kind in self._walk():
            value = layer.__dict__[attribute]
            if kind == PARAM and value.data is not None:
                value.to(device)
            elif kind == BUFFER and value is not None:
                setattr(layer, attribute, to_device(value, device))
        return self

    def astype(self, dtype):
        """Convert every parameter (with its grad) and buffer to floating dtype `dtype`, and
        create lazy ones in it; returns self. An optimizer's state follows on its next step."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"{type(self).__name__}.astype: parameters must have a floating dtype, got {dtype}")
        for layer in self.sublayers():
            layer.dtype = dtype
        for _, layer, attribute, kind in self._walk():
            value = layer.__dict__[attribute]
            if kind == PARAM and value.data is not None:
                value.data = value.data.astype(dtype, copy=False)
                if value.grad is not None:
                    value.grad.data = value.grad.data.astype(dtype, copy=False)
            elif kind == BUFFER and value is not None and value.dtype.kind == "f":
                setattr(layer, attribute, value.astype(dtype, copy=False))
        return self

    def _first_call(self, size, *inputs):
        """A lazy layer's first call: create its parameters and buffers for input size `size`
        (`_init_params`), then run forward. If forward raises (images in NHWC, say), they are
        dropped again: the layer stays lazy, so a corrected call can still set its size."""
        values = self.__dict__
        lazy = [name for name, kind in self._members.items()
                if (kind == PARAM and values[name].data is None) or (kind == BUFFER and values[name] is None)]
        self._init_params(size)
        try:
            return self.forward(*inputs)
        except BaseException:   # Ctrl-C too
            for name in lazy:
                if self._members[name] == PARAM:
                    values[name].data = None
                else:
                    object.__setattr__(self, name, None)
            raise

    def _fill(self, param, array):
        """Give (lazy) Parameter `param` host array `array` as data of the layer's dtype on its device."""
        param.data = to_device(array.astype(self.dtype), self.device)

    def _check_array(self, x):
        """Refuse an input that is not an array or a Variable (a list, say) by name, before its
        shape is read (a list has none: AttributeError 'list' object has no attribute 'ndim')."""
        if not hasattr(x, "ndim"):
            raise TypeError(f"{self!r}: the input must be an array or a Variable, got a {type(x).__name__}: "
                            f"convert it first, e.g. np.array(x, dtype=np.float32)")

    def _check_dtype(self, x, param):
        """Refuse a floating input whose dtype is not the parameters': float64 data in a float32
        layer would run the rest of the model in float64 (twice the memory, about half the
        speed) and give float32 weights float64 gradients. Integer inputs pass (computed as floats)."""
        if x.dtype != param.dtype and x.dtype.kind == "f":
            raise TypeError(f"{self!r}: the input has dtype {x.dtype} but the layer's parameters have "
                            f"{param.dtype}: convert the input (x.astype(np.{param.dtype})) or the "
                            f"model (model.astype(np.{x.dtype}))")

    # --- saving and loading ---
    def save_weights(self, path):
        """Write parameters and buffers to an .npz file under their dotted names.

        The file is written to a temporary file in the same folder and then
        renamed over `path`, so an interrupted save leaves the old file intact.
        """
        path = Path(path)
        arrays = {}
        for name, layer, attribute, kind in self._walk():
            value = layer.__dict__[attribute]
            array = value.data if kind == PARAM else value
            if array is None:
                raise RuntimeError(f"cannot save {type(self).__name__} to {path}: {kind} {name!r} is not "
                                   f"created yet (lazy layer): call the model on a batch first")
            arrays[name] = to_numpy(array)
        save_npz_atomically(path, arrays)

    def load_weights(self, path):
        """Load weights saved by `save_weights` onto the model's current device.

        Every name, shape and dtype is checked before anything is changed: on
        a missing, corrupt or mismatching file the model is left untouched and
        the error names the file and the offending entry. Lazy parameters
        (data None) take the shape stored in the file, if their layer could
        have created it (see `check_lazy_shapes`).
        """
        path = Path(path)
        stored = _read_npz(path)
        slots = {name: (layer, attribute, kind) for name, layer, attribute, kind in self._walk()}
        missing = [name for name in slots if name not in stored]
        unexpected = [name for name in stored if name not in slots]
        if missing or unexpected:
            raise ValueError(f"weights file {path} does not match {type(self).__name__}: "
                             f"missing {missing or 'nothing'}, unexpected {unexpected or 'nothing'}")
        self.check_lazy_shapes(stored, f"weights file {path}")
        staged = []
        for name, (layer, attribute, kind) in slots.items():
            value = layer.__dict__[attribute]
            current = value.data if kind == PARAM else value
            array = stored[name]
            check_stored_array(f"weights file {path}", f"{kind} {name!r}", array, current, layer.dtype)
            device = device_of(current) if current is not None else layer.device
            staged.append((layer, attribute, kind, to_device(array, device)))
        loaded = []
        for layer, attribute, kind, array in staged:
            if kind == PARAM:
                layer.__dict__[attribute].data = array
                loaded.append(layer.__dict__[attribute])
            else:
                setattr(layer, attribute, array)
        date_change(loaded)   # a graph built before the load is refused by backward, as after a step

    def check_lazy_shapes(self, arrays, source):
        """Refuse stored arrays ({dotted name: array}) that a lazy layer could not have created.

        A lazy parameter or buffer (still None) takes its shape from the file, so nothing else
        checks it: its layer's `expected_shapes` says what the layer would create from the
        file's arrays (Linear(10) needs W (in_size, 10)). Changes nothing; the ValueError
        starts with `source` ("weights file w.npz") and names the entry and both shapes.
        """
        lazy = {}  # id(layer) -> (layer, [(dotted name, attribute)]) for the lazy entries in `arrays`
        for name, layer, attribute, kind in self._walk():
            value = layer.__dict__[attribute]
            if (value.data if kind == PARAM else value) is None and name in arrays:
                lazy.setdefault(id(layer), (layer, []))[1].append((name, attribute))
        for layer, entries in lazy.values():
            expected = layer.expected_shapes({attribute: arrays[name] for name, attribute in entries})
            for name, attribute in entries:
                shape = arrays[name].shape
                if shape != expected.get(attribute, shape):
                    raise ValueError(f"{source}: {name!r} has shape {_shape_text(shape)} in the file, but "
                                     f"lazy {layer!r} would create {_shape_text(expected[attribute])}")

    def expected_shapes(self, arrays):
        """{attribute: shape} this layer would create for its lazy parameters and buffers, given
        the stored arrays {attribute: array} it is loaded from. Layers that create them on the
        first call override this; the default accepts the stored shapes."""
        return {attribute: array.shape for attribute, array in arrays.items()}

    def __repr__(self):
        head = f"{type(self).__name__}({self.describe()}"
        if id(self) in _SHOWN:   # a sub-layer that points back at a layer being shown
            return head + ", ...)"
        _SHOWN.add(id(self))
        try:
            children = [f"({name}): {child!r}".replace("\n", "\n  ")
                        for name, kind in self._members.items() if kind == LAYER
                        for child in [self.__dict__[name]]]
        finally:
            _SHOWN.discard(id(self))
        if not children:
            return head + ")"
        return head + "\n  " + "\n  ".join(children) + "\n)"

    def describe(self):
        """Settings shown in repr (subclasses override)."""
        return ""


def _holds_layer(container, searched=None):
    """Whether a plain container holds a Layer or Parameter, at any depth (numbers, strings and
    arrays inside are skipped; `searched`: ids of the containers seen, so a list that holds
    itself is searched once)."""
    searched = set() if searched is None else searched
    if not isinstance(container, PLAIN_CONTAINERS) or id(container) in searched:
        return False  # not a container (the attribute was replaced since), or seen already
    searched.add(id(container))
    items = [*container.keys(), *container.values()] if isinstance(container, dict) else container
    return any(isinstance(item, (Layer, Parameter)) or _holds_layer(item, searched) for item in items)


def check_stored_array(source, label, array, current, lazy_dtype):
    """An array read from a file against the model's array `current` it would replace (None for a
    lazy layer's parameter not created yet, which will have `lazy_dtype`, its layer's): a shape
    or dtype that differs raises ValueError, starting with `source` and naming `label`."""
    if current is not None and tuple(current.shape) != array.shape:
        raise ValueError(f"{source}: {label} has shape {array.shape} in the file but "
                         f"{tuple(current.shape)} in the model")
    expected = current.dtype if current is not None else np.dtype(lazy_dtype)
    if array.dtype != expected:
        raise ValueError(f"{source}: {label} has dtype {array.dtype} in the file but {expected} in the model")


def _read_npz(path):
    """All arrays of an .npz file as {name: numpy array}; clear errors for bad files."""
    try:
        arrays = read_npz(path)
        if arrays is None:
            raise ValueError("an .npy array, not an .npz archive")
        return arrays
    except FileNotFoundError:
        raise FileNotFoundError(f"weights file not found: {path}") from None
    except NPZ_READ_ERRORS as error:
        raise ValueError(f"cannot load weights from {path}: corrupt or not a weights file ({error})") from None


class LayerList(Layer):
    """A list of layers whose parameters are registered (names "0.W", "1.W", ...)."""

    def __init__(self, layers=()):
        super().__init__()
        object.__setattr__(self, "_length", 0)
        for layer in layers:
            self.append(layer)

    def append(self, layer):
        if not isinstance(layer, Layer):
            raise TypeError(f"LayerList holds layers, got {type(layer).__name__}")
        setattr(self, str(self._length), layer)
        object.__setattr__(self, "_length", self._length + 1)

    def _layers(self):
        """The registered layers in order: one put in place of another (setattr(layers, "0", new))
        is the one that runs, trains and is saved."""
        return [self.__dict__[str(position)] for position in range(self._length)]

    def __getitem__(self, index):
        return self._layers()[index]

    def __len__(self):
        return self._length

    def __iter__(self):
        return iter(self._layers())


def _uniform(bound, shape):
    """U(-bound, bound) samples, float64 on the host (cast by _fill)."""
    return np.random.uniform(-bound, bound, size=shape)


def _stored_size(array, ndim, axis, placeholder):
    """array.shape[axis] if `array` has `ndim` axes and that size is at least 1 (the size a lazy
    layer reads from its first input), else `placeholder`: a name that matches no shape, so the
    stored array is refused."""
    if array is not None and array.ndim == ndim and array.shape[axis] >= 1:
        return array.shape[axis]
    return placeholder


def _shape_text(shape):
    """(5, 3), (7,) or (in_size, 10): a shape that may hold a placeholder name."""
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


# =============================================================================
# Linear and convolution layers
# =============================================================================
class Linear(Layer):
    """y = x W + b. x: (..., in_size) -> y: (..., out_size); W: (in_size, out_size), b: (out_size,).

    in_size=None: taken from the first input (W is created then, on the
    layer's device). Init as PyTorch: W, b ~ U(-1/sqrt(in_size), 1/sqrt(in_size)).
    """

    def __init__(self, out_size, in_size=None, bias=True):
        super().__init__()
        check_count("Linear", "out_size", out_size)
        check_count("Linear", "in_size", in_size, optional=True)
        self.out_size = out_size
        self.W = Parameter(None, name="W")
        self.b = Parameter(None, name="b") if bias else None
        if in_size is not None:
            self._init_params(in_size)

    def _init_params(self, in_size):
        bound = 1 / math.sqrt(in_size)
        self._fill(self.W, _uniform(bound, (in_size, self.out_size)))
        if self.b is not None:
            self._fill(self.b, _uniform(bound, (self.out_size,)))

    def expected_shapes(self, arrays):
        in_size = _stored_size(arrays.get("W"), ndim=2, axis=0, placeholder="in_size")
        return {"W": (in_size, self.out_size), "b": (self.out_size,)}

    def forward(self, x):
        self._check_array(x)
        if self.W.data is None:  # lazy: in_size is the input's last axis
            if x.ndim == 0 or x.shape[-1] == 0:
                raise ValueError(f"{self!r}: cannot take in_size from an input of shape {tuple(x.shape)}: "
                                 f"expected (..., in_size) with in_size >= 1")
            return self._first_call(x.shape[-1], x)
        in_size = self.W.shape[0]
        if x.ndim == 0 or x.shape[-1] != in_size:
            raise ValueError(f"{self!r}: input of shape {tuple(x.shape)} does not end in "
                             f"{in_size} features")
        self._check_dtype(x, self.W)
        return F.linear(x, self.W, self.b)

    def describe(self):
        in_size = self.W.shape[0] if self.W.data is not None else None
        return f"out_size={self.out_size}, in_size={in_size}, bias={self.b is not None}"


class _ConvNd(Layer):
    """Shared parts of Conv2d and ConvTranspose2d: lazy in_channels, init, the input checks of
    forward; subclasses define `_convolve(x)`, the convolution itself."""

    IN_AXIS = None  # axis of W that holds in_channels (set by subclasses)

    def __init__(self, out_channels, kernel_size, stride, padding, in_channels, bias):
        super().__init__()
        check_count(type(self).__name__, "out_channels", out_channels)
        check_count(type(self).__name__, "in_channels", in_channels, optional=True)
        self.out_channels = out_channels
        # pairs, as PyTorch keeps them; checked here, not at the first call
        self.kernel_size = size_pair(type(self).__name__, "kernel_size", kernel_size, at_least=1)
        self.stride = size_pair(type(self).__name__, "stride", stride, at_least=1)
        self.padding = size_pair(type(self).__name__, "padding", padding)
        self.W = Parameter(None, name="W")
        self.b = Parameter(None, name="b") if bias else None
        if in_channels is not None:
            self._init_params(in_channels)

    def _weight_shape(self, in_channels):
        raise NotImplementedError

    def _init_params(self, in_channels):
        shape = self._weight_shape(in_channels)
        fan_in = shape[1] * shape[2] * shape[3]  # PyTorch's fan_in: weight.shape[1] * KH * KW
        bound = 1 / math.sqrt(fan_in)
        self._fill(self.W, _uniform(bound, shape))
        if self.b is not None:
            self._fill(self.b, _uniform(bound, (self.out_channels,)))

    @property
    def in_channels(self):
        return self.W.shape[self.IN_AXIS]

    def expected_shapes(self, arrays):
        in_channels = _stored_size(arrays.get("W"), ndim=4, axis=self.IN_AXIS, placeholder="in_channels")
        return {"W": self._weight_shape(in_channels), "b": (self.out_channels,)}

    def forward(self, x):
        self._check_array(x)
        if self.W.data is None:  # lazy: in_channels is the input's axis 1
            if x.ndim != 4 or x.shape[1] == 0:
                raise ValueError(f"{self!r}: cannot take in_channels from an input of shape "
                                 f"{tuple(x.shape)}: expected (N, C, H, W) with C >= 1")
            return self._first_call(x.shape[1], x)
        in_channels = self.in_channels
        if x.ndim != 4 or x.shape[1] != in_channels:
            raise ValueError(f"{self!r}: expected input (N, {in_channels}, H, W), got shape {tuple(x.shape)}")
        self._check_dtype(x, self.W)
        return self._convolve(x)

    def _convolve(self, x):
        raise NotImplementedError

    def describe(self):
        in_channels = self.in_channels if self.W.data is not None else None
        return (f"out_channels={self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, in_channels={in_channels}, bias={self.b is not None}")


class Conv2d(_ConvNd):
    """2-D convolution. x: (N, C, H, W) -> (N, OC, H', W'); W: (OC, C, KH, KW), b: (OC,).

    in_channels=None: taken from the first input. Init as PyTorch:
    U(-1/sqrt(C KH KW), 1/sqrt(C KH KW)) for W and b.
    """

    def __init__(self, out_channels, kernel_size, stride=1, padding=0, in_channels=None, bias=True):
        super().__init__(out_channels, kernel_size, stride, padding, in_channels, bias)

    IN_AXIS = 1  # W: (OC, C, KH, KW)

    def _weight_shape(self, in_channels):
        return (self.out_channels, in_channels) + self.kernel_size

    def _convolve(self, x):
        return F.conv2d(x, self.W, self.b, stride=self.stride, padding=self.padding)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution (learned upsampling). x: (N, C, H, W) -> (N, OC, H', W');
    W: (C, OC, KH, KW), b: (OC,). H' = (H - 1) stride - 2 padding + KH + output_padding.

    in_channels=None: taken from the first input. Init as PyTorch:
    U(-1/sqrt(OC KH KW), 1/sqrt(OC KH KW)) for W and b.
    """

    def __init__(self, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 in_channels=None, bias=True):
        super().__init__(out_channels, kernel_size, stride, padding, in_channels, bias)
        self.output_padding = size_pair("ConvTranspose2d", "output_padding", output_padding)
        if any(extra >= step for extra, step in zip(self.output_padding, self.stride)):   # as F.conv_transpose2d does
            raise ValueError(f"ConvTranspose2d: output_padding must be smaller than stride, got "
                             f"output_padding={output_padding!r} with stride={stride!r}")

    IN_AXIS = 0  # W: (C, OC, KH, KW)

    def _weight_shape(self, in_channels):
        return (in_channels, self.out_channels) + self.kernel_size

    def _convolve(self, x):
        return F.conv_transpose2d(x, self.W, self.b, stride=self.stride, padding=self.padding,
                                  output_padding=self.output_padding)

    def describe(self):
        return super().describe() + (f", output_padding={self.output_padding}" if any(self.output_padding) else "")


# =============================================================================
# Normalization, embedding, dropout
# =============================================================================
class BatchNorm(Layer):
    """Batch normalization over the batch (and spatial) axes, per feature/channel.

    x: (N, C) or (N, C, H, W). gamma, beta: (C,) parameters; running_mean,
    running_var: (C,) buffers, updated in training and used at test time.
    num_features=None: C taken from the first input.
    """

    def __init__(self, num_features=None, momentum=0.1, eps=1e-5):
        super().__init__()
        check_count("BatchNorm", "num_features", num_features, optional=True)
        # momentum None (PyTorch's cumulative average) is not supported
        check_number("BatchNorm", "momentum", momentum, at_least=0, at_most=1)
        check_number("BatchNorm", "eps", eps, above=0)
        self.momentum = momentum
        self.eps = eps
        self.gamma = Parameter(None, name="gamma")
        self.beta = Parameter(None, name="beta")
        self.register_buffer("running_mean", None)
        self.register_buffer("running_var", None)
        if num_features is not None:
            self._init_params(num_features)

    def _init_params(self, num_features):
        self._fill(self.gamma, np.ones(num_features))
        self._fill(self.beta, np.zeros(num_features))
        self.running_mean = to_device(np.zeros(num_features, self.dtype), self.device)
        self.running_var = to_device(np.ones(num_features, self.dtype), self.device)

    def expected_shapes(self, arrays):
        channels = _stored_size(arrays.get("gamma"), ndim=1, axis=0, placeholder="C")
        return dict.fromkeys(("gamma", "beta", "running_mean", "running_var"), (channels,))

    def forward(self, x):
        self._check_array(x)
        if x.ndim not in (2, 4):
            raise ValueError(f"{self!r}: expected input (N, C) or (N, C, H, W), got shape {tuple(x.shape)}")
        if self.gamma.data is None:  # lazy: C is the input's axis 1
            if x.shape[1] == 0:
                raise ValueError(f"{self!r}: cannot take num_features from an input of shape {tuple(x.shape)}: "
                                 f"expected (N, C) or (N, C, H, W) with C >= 1")
            return self._first_call(x.shape[1], x)
        if x.shape[1] != self.gamma.shape[0]:
            raise ValueError(f"{self!r}: input of shape {tuple(x.shape)} has {x.shape[1]} features/channels "
                             f"in axis 1, expected {self.gamma.shape[0]}")
        self._check_dtype(x, self.gamma)
        return F.batch_norm(x, self.gamma, self.beta, self.running_mean, self.running_var,
                            momentum=self.momentum, eps=self.eps)

    def describe(self):
        num_features = self.gamma.shape[0] if self.gamma.data is not None else None
        return f"num_features={num_features}, momentum={self.momentum}, eps={self.eps}"


class Embedding(Layer):
    """Lookup table. ids: integer array (...) -> (..., dim); W: (num, dim), init N(0, 1) as PyTorch."""

    def __init__(self, num, dim):
        super().__init__()
        check_count("Embedding", "num", num)
        check_count("Embedding", "dim", dim)
        self.W = Parameter(None, name="W")
        self._fill(self.W, np.random.standard_normal((num, dim)))

    def forward(self, ids):
        return F.embedding(ids, self.W)

    def describe(self):
        return f"num={self.W.shape[0]}, dim={self.W.shape[1]}"


class Dropout(Layer):
    """Zero each element with probability p in training (scaling the rest by 1/(1-p)); identity at test time."""

    def __init__(self, p=0.5):
        super().__init__()
        check_number("Dropout", "p", p, at_least=0, below=1)
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p)

    def describe(self):
        return f"p={self.p}"
