"""Models: whole networks built from layers.

    model = MLP((784, 200, 10))                      # 784 -> 200 (ReLU) -> 10
    model = Sequential(Linear(200), F.relu, Linear(10))
"""
from collections.abc import Iterable

import zero.functions as F
from zero.layers import Layer, LayerList, Linear
from zero.utils import check_count


class Model(Layer):
    """Base class for a whole network: a Layer you train, save and load.

    Subclass it, assign layers in __init__ and define forward().
    """


class Sequential(Model):
    """Apply layers and plain functions (such as F.relu) in order.

    Layers are registered under their position: Sequential(Linear(5), F.relu,
    Linear(1)) has parameters "0.W", "0.b", "2.W", "2.b".
    """

    def __init__(self, *steps):
        super().__init__()
        for position, step in enumerate(steps):
            if isinstance(step, Layer):
                setattr(self, str(position), step)
            elif isinstance(step, type):   # Sequential(Linear): x would be passed to Linear() as out_size
                raise TypeError(f"Sequential: step {position} is the class {step.__name__}; pass an instance, "
                                f"e.g. {step.__name__}(...)")
            elif not callable(step):
                raise TypeError(f"Sequential: step {position} is a {type(step).__name__}, "
                                f"expected a Layer or a function")
        object.__setattr__(self, "steps", steps)

    def forward(self, x):
        for position, step in enumerate(self.steps):
            x = getattr(self, str(position), step)(x)   # a layer put in place of another runs
        return x


class MLP(Model):
    """Fully connected network. sizes = (in, hidden..., out): x (N, in) -> (N, out).

    `activation` follows every layer but the last; `output_activation` (if
    given) follows the last. sizes[0] may be None (taken from the first input).
    """

    def __init__(self, sizes, activation=F.relu, output_activation=None):
        super().__init__()
        if isinstance(sizes, str) or not isinstance(sizes, Iterable):   # MLP(784), say
            raise TypeError(f"MLP: sizes must be a list or tuple of layer sizes (in, hidden..., out), "
                            f"e.g. (784, 200, 10), got {sizes!r}")
        sizes = tuple(sizes)
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs an input and an output size, got {sizes}")
        for position, size in enumerate(sizes):
            check_count("MLP", f"sizes[{position}]", size, optional=position == 0)   # sizes[0] may be None
        self.activation = activation
        self.output_activation = output_activation
        self.layers = LayerList(Linear(out_size, in_size=in_size)
                                for in_size, out_size in zip(sizes[:-1], sizes[1:]))

    def forward(self, x):
        *hidden, last = self.layers
        for layer in hidden:
            x = self.activation(layer(x))
        x = last(x)
        if self.output_activation is not None:
            x = self.output_activation(x)
        return x
