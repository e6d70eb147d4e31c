"""The autograd core: Variable, Function, backward, and the config switches.

A `Variable` holds an array (`data`) and, after `backward()`, its gradient
(`grad`, itself a Variable). Calling a `Function` on variables runs its
`forward` on the raw arrays and, unless gradients are switched off, links the
result into a graph: each output remembers its `creator`, each function its
`inputs`. `backward()` walks that graph from the output back to the leaves,
calling every function's `backward` once, in order of generation (its distance from
the leaves), highest first: a function runs only after every function that used its outputs.

Functions hold their outputs through weak references, so a graph is freed
as soon as nothing but the graph points at its outputs.

The operators (+, -, *, /, **, @, [ ]) and the methods `reshape`,
`transpose`, `T`, `sum`, ... are attached to Variable by `zero.functions`,
where the ops live, grouped by theme.
"""
import contextlib
import heapq
import weakref

import numpy as np

from zero import backend
from zero.backend import get_array_module


# =============================================================================
# Config: switches read by the whole library
# =============================================================================
class Config:
    enable_backprop = True  # build graphs? (off inside no_grad())
    train = True            # training behaviour of dropout / batch norm
    weight_changes = 0      # optimizer steps and weight loads so far: the clock that dates graphs and changes


@contextlib.contextmanager
def using_config(name, value):
    old_value = getattr(Config, name)
    setattr(Config, name, value)
    try:
        yield
    finally:
        setattr(Config, name, old_value)


def no_grad():
    """Context: compute values only, record no graph (evaluation, sampling)."""
    return using_config("enable_backprop", False)


def test_mode():
    """Context: layers such as dropout and batch norm behave as at test time."""
    return using_config("train", False)


# =============================================================================
# Variable
# =============================================================================
class Variable:
    """An array that remembers how it was computed.

    data: numpy.ndarray or a device array (cupy.ndarray). grad: Variable or None, the
    gradient as backward computed it, which may be the very array another variable's grad
    holds (both inputs of x + y get the same one) or a read-only broadcast view (the inputs
    of a sum): replace it (p.grad = Variable(...)) rather than changing it in place.
    creator: the Function that produced it (None for leaves).
    generation: 1 + the creator's generation; orders the backward pass.
    requires_grad: whether backward computes a gradient for it. Arrays and
    numbers passed straight to an op become constants (requires_grad=False):
    nobody holds them to read a gradient, so none is computed; results that
    depend on constants only, or are computed under no_grad(), are constants too.
    changed_at: Config.weight_changes right after the last optimizer step or weight
    load that changed data (0: none did); backward refuses a graph that used the old values.
    """

    __slots__ = ("data", "name", "grad", "creator", "generation", "requires_grad", "changed_at", "__weakref__")
    __array_priority__ = 200  # numpy_array * variable -> Variable.__rmul__
    # NumPy ufuncs refuse Variables: numpy_array * variable still calls Variable.__rmul__, but an in-place
    # `param.data -= lr * param.grad` (grad, not grad.data) raises TypeError instead of silently making
    # param.data a Variable (and np.exp(variable) raises instead of building an array of objects)
    __array_ufunc__ = None

    def __init__(self, data, name=None, requires_grad=True):
        if type(data) is not np.ndarray and data is not None:
            if isinstance(data, np.generic):
                data = np.asarray(data)
            elif backend.backend_of(data) is backend.CPU and not isinstance(data, np.ndarray):
                raise TypeError(f"Variable needs an array (numpy.ndarray or a device array), "
                                f"got {type(data).__name__}: wrap it, e.g. Variable(np.array(...))")
        self.data = data
        self.name = name
        self.grad = None
        self.creator = None
        self.generation = 0
        self.requires_grad = requires_grad
        self.changed_at = 0

    # --- array-like attributes ---
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return backend.device_of(self.data)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        if self.data is None:
            return "Variable(None)"
        body = str(backend.to_numpy(self.data)).replace("\n", "\n" + " " * 9)
        device = self.device
        suffix = "" if self.data.dtype == backend.DEFAULT_DTYPE else f", dtype={self.data.dtype}"  # as torch shows
        suffix += "" if device == "cpu" else f", device='{device}'"
        return f"Variable({body}{suffix})"

    def item(self):
        """The value of a one-element variable as a Python number (explicit host copy)."""
        if self.data.size != 1:
            raise ValueError(f"item: only a one-element variable has a single value; {self._label()} has "
                             f"{self.data.size} elements")
        return self.data.item()

    # --- graph ---
    def cleargrad(self):
        self.grad = None

    def unchain(self):
        """Forget the creator: this variable becomes a leaf."""
        self.creator = None

    def unchain_backward(self):
        """Cut the graph behind this variable (e.g. truncated backprop)."""
        if self.creator is None:
            return
        stack = [self.creator]
        seen = {id(self.creator)}
        while stack:
            function = stack.pop()
            for x in function.inputs:
                if x.creator is not None:
                    if id(x.creator) not in seen:
                        seen.add(id(x.creator))
                        stack.append(x.creator)
                    x.unchain()
        self.unchain()

    def to(self, device):
        """Move the data (and grad) to device 'cpu' or 'cuda'; returns self."""
        self.data = backend.to_device(self.data, device)
        if self.grad is not None:
            self.grad.to(device)
        return self

    def backward(self, gradient=None, retain_grad=False, create_graph=False):
        """Fill `.grad` of every variable this one depends on.

        Leaves (variables no function made, such as parameters) add this pass's
        gradient to their `.grad`. gradient: dL/d(this variable), an array or
        Variable of its shape (a vector-Jacobian product: the leaves then get
        gradient^T d(this)/d(leaf)); by default ones, dy/dy = 1. retain_grad: the
        intermediate variables, this one included, add this pass's gradient to
        their `.grad` too, as leaves do (by default they keep none). create_graph:
        record the backward computation itself, so gradients can be differentiated again.
        """
        if not self.requires_grad:  # else every parameter would keep grad None, and training do nothing
            raise RuntimeError(f"backward: {self._label()} needs no gradient: it was computed under no_grad(), "
                               f"or from constants only (arrays and numbers passed to ops, Variables made with "
                               f"requires_grad=False), so nothing it depends on would get a gradient")
        seed = self._seed(gradient)
        if self.creator is None:   # a leaf: dy/dy, added as every pass adds to a leaf
            self.grad = seed if self.grad is None else self.grad + seed
            return

        # This pass's gradients of intermediate variables, each held until the function that
        # made it runs (not in .grad: one kept by an earlier pass must not flow back again).
        grads = {self: seed}
        # Max-heap on generation: the function farthest from the leaves runs first, so a
        # function runs only once every function that used its outputs is done. (The middle
        # entry, a counter, breaks ties: heapq never has to compare two Functions.)
        pending = [(-self.creator.generation, 0, self.creator)]
        queued = {self.creator}
        old_enable_backprop = Config.enable_backprop
        Config.enable_backprop = create_graph
        try:
            while pending:
                function = heapq.heappop(pending)[2]
                if len(function.outputs) == 1:  # the common case, without building lists
                    y = function.outputs[0]()     # None if that output was freed: no gradient from it
                    outputs, output_grads = (y,), (grads.pop(y, None),)
                else:
                    outputs = [ref() for ref in function.outputs]
                    output_grads = [grads.pop(y, None) for y in outputs]
                input_grads = function.backward(*output_grads)
                if type(input_grads) is not tuple:
                    input_grads = (input_grads,)
                for x, gx in zip(function.inputs, input_grads):
                    if gx is None or not x.requires_grad:
                        continue
                    if x.creator is None:  # a leaf: its gradient is final
                        if x.changed_at > function.made_at:   # a step between this forward and backward
                            raise _changed_after_use(x, function)
                        x.grad = gx if x.grad is None else x.grad + gx
                        continue
                    if x.creator not in queued:
                        queued.add(x.creator)
                        heapq.heappush(pending, (-x.creator.generation, len(queued), x.creator))
                    # a variable used several times sums the gradients it gets
                    grads[x] = gx if x not in grads else grads[x] + gx
                if retain_grad:  # intermediate variables add this pass's gradient, as leaves do
                    for y, gy in zip(outputs, output_grads):
                        if gy is not None:
                            y.grad = gy if y.grad is None else y.grad + gy
        finally:
            Config.enable_backprop = old_enable_backprop

    def _seed(self, gradient):
        """The gradient backward starts from: ones of this variable's shape and dtype, or `gradient`
        checked against them (same shape and dtype, on this variable's device)."""
        if self.data.dtype.kind not in "fc":
            raise TypeError(f"backward needs floating-point data, but {self._label()} has dtype {self.data.dtype}")
        if gradient is None:
            return Variable(backend.ones(get_array_module(self.data), self.data.shape, self.data.dtype), None, False)
        array = gradient.data if isinstance(gradient, Variable) else gradient
        if backend.backend_of(array) is not backend.backend_of(self.data):
            raise TypeError(f"backward: the gradient is on {backend.device_of(array)}, {self._label()} on "
                            f"{self.device}: move it first (zero.to_device)")
        shape, dtype = getattr(array, "shape", None), getattr(array, "dtype", None)
        if dtype is None or dtype != self.data.dtype or tuple(shape) != self.shape:   # (NumPy reads None as float64)
            got = type(array).__name__ if dtype is None else f"shape {tuple(shape)}, dtype {dtype}"
            raise ValueError(f"backward: the gradient must have the shape and dtype of {self._label()}, "
                             f"{self.data.dtype}; got {got}")
        return gradient if isinstance(gradient, Variable) else Variable(gradient, None, False)

    def _label(self):
        name = f"variable {self.name!r}" if self.name else "the variable"
        return f"{name} (shape {self.shape})"


def _changed_after_use(variable, function):
    """The error of a backward pass through an op that ran before an optimizer step (or a load of
    weights) changed its input: the op's backward would read the new values (wrong gradients,
    silently). PyTorch raises too."""
    return RuntimeError(
        f"backward: {variable._label()} was changed by an optimizer step (or loaded weights) after "
        f"{function.name} used it, so its gradient would mix the old graph with the new values: call backward() "
        f"before step(), or compute the loss again after the step or load (in a GAN: the generator's loss "
        f"through the updated discriminator). This pass's gradients are incomplete: zero_grad() before the "
        f"next backward")


def date_change(params):
    """Count a change of the Parameters `params` (an optimizer step, weights loaded) on the clock
    that dates graphs (Config.weight_changes), and stamp them with the new count: backward then
    refuses to send a gradient through an op that used one of them before the change."""
    Config.weight_changes += 1
    for param in params:
        param.changed_at = Config.weight_changes


class Parameter(Variable):
    """A Variable that a layer owns and an optimizer updates."""

    __slots__ = ()


backend.VARIABLE_TYPES = (Variable,)  # Parameter and any other subclass included


def as_variable(obj):
    """obj if it is a Variable; an array becomes a constant (no gradient), as arrays passed to ops do."""
    return obj if isinstance(obj, Variable) else Variable(obj, None, False)


# =============================================================================
# Function
# =============================================================================
class Function:
    """One differentiable operation.

    Subclasses implement `forward(*arrays) -> array(s)` on raw arrays and
    `backward(*output_grads) -> input grad(s)` on Variables, so that the
    backward pass can itself be differentiated. `self.xp` is the array
    module of the inputs (numpy or cupy), resolved once per call.
    """

    generation = 0
    made_at = 0   # Config.weight_changes when it ran (set for functions in a graph)

    def __call__(self, *inputs):
        # 1. the inputs' arrays (arrays and numbers passed in become constant Variables), all on one device
        xs = []
        for x in inputs:
            if not isinstance(x, Variable):
                inputs, xs = _as_variables(inputs)
                break
            xs.append(x.data)
        x0 = xs[0]
        array_type = type(x0)
        for x in xs:
            if type(x) is not array_type:  # the cheap test first; the device check only when types differ
                _check_same_device(self, xs)
                break
        self.xp = xp = np if array_type is np.ndarray else get_array_module(x0)
        # 2. the computation, on arrays; an error names this op and its inputs
        try:
            ys = self.forward(*xs)
        except (ValueError, TypeError, IndexError) as error:
            raise _op_error(self, error, xs) from error

        # 3. the outputs, linked into the graph if some input needs a gradient (and backprop is on)
        generation = -1  # stays -1 unless some input needs a gradient
        if Config.enable_backprop:
            for x in inputs:
                if x.requires_grad and x.generation > generation:
                    generation = x.generation
        requires_grad = generation >= 0
        # NumPy scalars (results of full reductions) become 0-d arrays
        if type(ys) is not tuple:  # one output: the common case, written out
            y = Variable(ys if type(ys) is np.ndarray else xp.asarray(ys), None, requires_grad)
            if requires_grad:
                # link the graph: the output points at this function, it points
                # at its inputs, and (weakly) back at its output
                self.generation = generation
                self.made_at = Config.weight_changes
                self.inputs = inputs
                y.creator = self
                y.generation = generation + 1
                self.outputs = (weakref.ref(y),)
            return y
        outputs = []
        for y in ys:
            outputs.append(Variable(y if type(y) is np.ndarray else xp.asarray(y), None, requires_grad))
        if requires_grad:
            self.generation = generation
            self.made_at = Config.weight_changes
            self.inputs = inputs
            refs = []
            for output in outputs:
                output.creator = self
                output.generation = generation + 1
                refs.append(weakref.ref(output))
            self.outputs = tuple(refs)
        return tuple(outputs)

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, *gys):
        raise NotImplementedError

    @property
    def name(self):
        return type(self).__name__


NUMBERS = (int, float, np.number, np.bool_)  # Python and NumPy scalars: constants on the other input's device


def _as_variables(inputs):
    """Variables for the inputs, and their arrays; arrays and numbers become
    constants. Python and NumPy numbers take the device of the first array input
    and, if it is floating, its dtype, so 2.0 * float32 stays float32. With an
    integer array NumPy's rules apply: a Python int takes its dtype (int32 * 2 is
    int32; 300 does not fit int8 and raises OverflowError), anything else its own
    (int32 * 2.5 is float64). Integer and boolean
    arrays passed beside a floating input take its dtype too, so W * np.arange(3) is
    float32 for a float32 W, and so is W's gradient (NumPy would make both float64), and
    so do 0-d floating arrays, which are numbers too: CuPy gives them where NumPy gives
    scalars (a sum, an element), and W * total must not be float64 on one device only."""
    variables, arrays = [], []
    for x in inputs:
        if not isinstance(x, Variable):
            if type(x) is not np.ndarray and isinstance(x, NUMBERS):  # arrays skip the slow isinstance
                x = _number_as_array(x, inputs)
            elif getattr(x, "dtype", None) is not None and (x.dtype.kind in "biu"
                                                            or (x.dtype.kind == "f" and x.ndim == 0)):
                x = _as_floating_beside(x, inputs)
            x = Variable(x, None, False)
        variables.append(x)
        arrays.append(x.data)
    return variables, arrays


def _number_as_array(number, inputs):
    arrays = [backend._data(x) for x in inputs if not isinstance(x, NUMBERS)]  # not x.data: an ndarray's is a memoryview
    reference = next((array for array in arrays if hasattr(array, "dtype")), None)  # a list: Variable says no
    if reference is None:
        dtype = backend.DEFAULT_DTYPE if isinstance(number, float) else None
        return np.asarray(number, dtype=dtype)
    kind = reference.dtype.kind
    keeps_dtype = kind == "f" or (kind in "iu" and isinstance(number, int))   # the last: NumPy's own rule (NEP 50)
    return get_array_module(reference).asarray(number, dtype=reference.dtype if keeps_dtype else None)


def _as_floating_beside(array, inputs):
    """A constant array (integer, boolean or 0-d floating) as the dtype of the first other floating
    input, on its own device (as is if there is none)."""
    for x in inputs:
        if x is array:
            continue
        dtype = getattr(backend._data(x), "dtype", None)
        if dtype is not None and dtype.kind == "f":
            return array if array.dtype == dtype else array.astype(dtype)
    return array


def _check_same_device(function, xs):
    """Inputs on different devices are an error, named with the op and shapes."""
    for x in xs:
        if backend.backend_of(x) is not backend.backend_of(xs[0]):
            raise TypeError(f"{function.name}: inputs are on different devices: "
                            f"{_describe(xs)}; move them with .to(device) first")


def _describe(xs):
    return ", ".join(f"{tuple(x.shape)} {x.dtype} on {backend.device_of(x)}" for x in xs)


def _op_error(function, error, xs):
    message = f"{function.name}: {error} (inputs: {_describe(xs)})"
    for kind in type(error).__mro__:  # the error's own type, else the nearest one that takes a message
        try:
            return kind(message)
        except Exception:  # exception types with unusual constructors (NumPy's UFuncTypeError)
            continue
