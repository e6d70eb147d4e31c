"""zero: a small autograd engine on NumPy (CPU) and CuPy (GPU).

    import numpy as np
    import zero
    import zero.functions as F

    x = zero.Variable(np.array(2.0))
    y = F.sin(x) * x
    y.backward()
    print(x.grad)
"""
__version__ = "0.1.0"  # setup.py reads it from here (installing must not import zero)

import zero.host_memory  # noqa: F401  (sets C's allocator to keep freed memory: see that module)
from zero.backend import cuda_available, get_array_module, reseed_device, seed, to_device, to_numpy
from zero.core import (Config, Function, Parameter, Variable, as_variable, no_grad, test_mode,
                       using_config)
import zero.functions  # noqa: F401  (gives Variable its operators)

__all__ = ["__version__", "Config", "Function", "Parameter", "Variable", "as_variable", "cuda_available",
           "get_array_module", "no_grad", "reseed_device", "seed", "test_mode", "to_device", "to_numpy", "using_config"]
