"""Optimizers: update parameters from their gradients.

    optimizer = Adam(model.params(), lr=1e-3)
    for x, t in loader:
        loss = F.softmax_cross_entropy(model(x), t)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

`step()` updates every parameter that has a gradient, in place on its array
(no graph is built, nothing leaves the parameter's device); parameters whose
grad is None are skipped (but a step where no parameter has one is an error: it
would train nothing). State (momentum buffers, Adam moments) is created
on the first update of each parameter, on that parameter's device. The
formulas are PyTorch's (torch.optim), so runs can be compared; so are Adam's
and AdamW's defaults. SGD and Momentum default to lr 0.01, torch.optim.SGD to
1e-3: pass lr when comparing them.

backward() adds to each parameter's .grad (so that a parameter used twice, or
several backward passes, sum their gradients): call zero_grad() (or
model.cleargrads()) before each backward, or the steps follow the sum of all
gradients so far. A parameter listed twice, or shared by two layers, is
updated once. The optimizer holds the Parameter objects it was given: to change
a parameter's values, change its array (layer.W.data[...] = ..., or
load_weights); a new Parameter put in a layer's attribute afterwards is not
updated (build the optimizer again). And `step()` comes after backward():
backward reads the parameters' current arrays, so a step between a forward and
its backward would give gradients for weights the forward did not use. backward
refuses that case (RuntimeError, as PyTorch): each step stamps the parameters it
changed, as load_weights and load_checkpoint stamp those they load. A change made
by hand (p.data -= ...) is not stamped, and not caught.
"""
import math

from zero.backend import device_of, get_array_module, to_device
from zero.core import Variable, date_change
from zero.utils import check_number

FLUSH_EVERY = 100  # steps between flushes of decaying optimizer state (see _flush_denormals)


class Optimizer:
    """Base class: holds the parameters; subclasses define `update(index, data, grad)`.

    `state_lists` names the attributes that hold per-parameter state, one entry per parameter
    (an array, None before the parameter's first update, or an int count): what a checkpoint
    saves and restores besides the learning rate (zero.training.save_checkpoint).
    `hyperparameters` names the settings a checkpoint records and a resumed run must repeat
    (Adam's betas, say): they are not restored, as the learning rate is, but compared.
    """

    state_lists = ()
    hyperparameters = ()

    def __init__(self, params, lr):
        _check_not_one_parameter(type(self).__name__, params)
        self.params = []
        seen = set()
        for param in params:
            if not isinstance(param, Variable):
                raise TypeError(f"{type(self).__name__}: expected Parameters (e.g. model.params()), "
                                f"got {type(param).__name__}")
            if id(param) not in seen:  # a shared parameter is updated once
                seen.add(id(param))
                self.params.append(param)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got no parameters to optimize")
        self.lr = lr

    @property
    def lr(self):
        """The learning rate. Setting it (a schedule does, before each step) is checked as in the constructor."""
        return self._lr

    @lr.setter
    def lr(self, lr):
        check_number(type(self).__name__, "lr", lr, at_least=0)   # a negative lr climbs the loss
        self._lr = lr

    def step(self):
        self._check_gradients()
        self._update_parameters()
        # stamp the parameters this step changed: backward then refuses a graph built before it (date_change)
        date_change([param for param in self.params if param.grad is not None])

    def _update_parameters(self):
        """update() each parameter that has a gradient, one at a time."""
        for index, param in enumerate(self.params):
            if param.grad is not None:
                self.update(index, param.data, param.grad.data)

    def _check_gradients(self):
        """Refuse a gradient that is not a Variable, or of another shape than its parameter's, before
        any state changes: the in-place update would broadcast it silently (a scalar), take an array's
        raw buffer, or fail half-way through the parameters, leaving some of them and their moments updated.
        Refuse, too, a step where no parameter has a gradient: it would change nothing, silently (zero_grad()
        called between backward() and step(), or backward() forgotten)."""
        some_gradient = False
        for index, param in enumerate(self.params):
            grad = param.grad
            if grad is None:
                continue
            some_gradient = True
            if isinstance(grad, Variable) and grad.data.shape == param.data.shape:
                continue
            where = f"{type(self).__name__}.step: the gradient of parameter {index}"
            where += f" ({param.name!r})" if param.name else ""
            if not isinstance(grad, Variable):
                raise TypeError(f"{where} is a {type(grad).__name__}, not a Variable (the parameter has shape "
                                f"{param.data.shape}): set param.grad = Variable(array); nothing was updated")
            raise ValueError(f"{where} has shape {grad.shape}, the parameter {param.data.shape}; nothing was updated")
        if not some_gradient:
            raise RuntimeError(f"{type(self).__name__}.step: none of the {len(self.params)} parameters has a "
                               f"gradient, so nothing would change: call loss.backward() before step(), and "
                               f"zero_grad() before backward(), not between backward() and step()")

    def zero_grad(self):
        for param in self.params:
            param.cleargrad()

    def update(self, index, data, grad):
        """Change array `data` (parameter number `index`) in place, given its gradient array."""
        raise NotImplementedError

    def _state(self, buffers, index, data):
        """The zero-initialized state array number `index` of `buffers`, on data's device, in its dtype."""
        state = buffers[index]
        if state is None:
            state = buffers[index] = get_array_module(data).zeros_like(data)
        elif type(state) is not type(data) or state.dtype != data.dtype:  # moved (.to) or converted (.astype)
            state = buffers[index] = to_device(state, device_of(data)).astype(data.dtype, copy=False)
        return state


class SGD(Optimizer):
    """Plain gradient descent: p <- p - lr g."""

    def __init__(self, params, lr=0.01):
        super().__init__(params, lr)

    def update(self, index, data, grad):
        data -= float(self.lr) * grad


class Momentum(Optimizer):
    """SGD with momentum (PyTorch's form): v <- momentum v + g, p <- p - lr v.
    Velocities are flushed like Adam's moments (see _flush_denormals)."""

    state_lists = ("velocities", "steps")
    hyperparameters = ("momentum",)

    def __init__(self, params, lr=0.01, momentum=0.9):
        super().__init__(params, lr)
        check_number(type(self).__name__, "momentum", momentum, at_least=0)
        self.momentum = momentum
        self.velocities = [None] * len(self.params)
        self.steps = [0] * len(self.params)  # updates per parameter: when to flush (saved with the state)

    def update(self, index, data, grad):
        velocity = self._state(self.velocities, index, data)
        velocity *= float(self.momentum)
        velocity += grad
        data -= float(self.lr) * velocity
        self.steps[index] += 1
        if self.steps[index] % FLUSH_EVERY == 0:
            _flush_denormals(get_array_module(velocity), velocity, float(self.momentum))


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), as torch.optim.Adam:

        m <- b1 m + (1 - b1) g          v <- b2 v + (1 - b2) g^2
        p <- p - lr m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)

    weight_decay adds weight_decay * p to the gradient (L2 penalty); for
    decoupled weight decay use AdamW.

    Each step works in place with one scratch array per parameter, so it
    allocates nothing (with weight_decay, the penalised gradient is a new
    array). Every FLUSH_EVERY steps, moments small enough to decay
    into float32 denormals before the next flush are set to 0 (see
    _flush_denormals): a speed fix only.

    All parameters at once: the moments of every parameter live in one flat
    array (self.means[i] is a view of its part), so the passes that do not
    involve a gradient (m *= b1, the whole of v, the update) run once over all
    parameters instead of once per parameter. That is the same arithmetic on
    the same numbers, with fewer calls: for step 7's VAE (10 parameters) 48
    NumPy calls a step instead of 120, 540 us instead of 640. Steps fall back to one
    parameter at a time (update) while some parameter has no gradient, the
    parameters differ in device or dtype, or their step counts differ.
    """

    state_lists = ("means", "variances", "steps")
    hyperparameters = ("betas", "eps", "weight_decay")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{type(self).__name__}: betas must be a pair (beta1, beta2), got {betas!r}")
        for name, beta in zip(("betas[0]", "betas[1]"), betas):
            check_number(type(self).__name__, name, beta, at_least=0, below=1)
        check_number(type(self).__name__, "eps", eps, at_least=0)
        check_number(type(self).__name__, "weight_decay", weight_decay, at_least=0)
        self.betas = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.means = [None] * len(self.params)       # m: running mean of g
        self.variances = [None] * len(self.params)   # v: running mean of g^2
        self.steps = [0] * len(self.params)          # t, per parameter
        self._scratch = {}                           # parameter index -> work array
        self._flat = None                            # the state of all parameters at once (_FlatState)

    def _update_parameters(self):
        grads = [param.grad for param in self.params]
        flat = None
        if all(grad is not None for grad in grads) and self.steps.count(self.steps[0]) == len(self.steps):
            flat = self._flat_state()
        if flat is None:
            super()._update_parameters()   # one parameter at a time (update); the gradients are checked
            return
        datas = [param.data for param in self.params]
        grads = [self._gradient(data, grad.data) for data, grad in zip(datas, grads)]
        self.steps = [self.steps[0] + 1] * len(self.params)
        self._adam_passes(flat.xp, self.steps[0], datas, grads, flat.mean_parts, flat.scratch_parts,
                          flat.mean, flat.variance, flat.scratch)

    def update(self, index, data, grad):
        grad = self._gradient(data, grad)
        xp = get_array_module(data)
        mean = self._state(self.means, index, data)
        variance = self._state(self.variances, index, data)
        scratch = self._scratch.get(index)
        if (scratch is None or scratch.shape != data.shape or type(scratch) is not type(data)
                or scratch.dtype != data.dtype):
            scratch = self._scratch[index] = xp.empty_like(data)
        self.steps[index] += 1
        self._adam_passes(xp, self.steps[index], [data], [grad], [mean], [scratch], mean, variance, scratch)

    def _gradient(self, data, grad):
        """The gradient Adam follows: with weight_decay, that of the L2-penalised loss."""
        if self.weight_decay:
            grad = grad + float(self.weight_decay) * data
        return grad

    def _adam_passes(self, xp, t, datas, grads, mean_parts, scratch_parts, mean, variance, scratch):
        """Step t of Adam, in place. mean, variance, scratch: the state and work arrays; datas,
        grads, mean_parts, scratch_parts: per parameter (mean_parts[i] and scratch_parts[i] parts
        of mean and scratch; for one parameter, those arrays themselves)."""
        beta1, beta2 = (float(b) for b in self.betas)
        for mean_part, grad in zip(mean_parts, grads):  # m <- b1 m + (1 - b1) g, as b1 (m - g) + g:
            mean_part -= grad                            # three passes over two arrays, faster than
        mean *= beta1                                    # over three (g (1 - b1) in the scratch array)
        for mean_part, scratch_part, grad in zip(mean_parts, scratch_parts, grads):
            mean_part += grad
            xp.square(grad, out=scratch_part)            # g^2 in scratch, no new array (square: 2-3x faster than
                                                         # g * g on 2026-12-02, as fast on a Zen 4 on 2026-12-06)
        scratch *= 1 - beta2                             # v <- b2 v + (1 - b2) g^2
        variance *= beta2
        variance += scratch
        # lr m_hat / (sqrt(v_hat) + eps) = lr_t m / (sqrt(v) + eps_t), with
        # lr_t = lr sqrt(1 - b2^t) / (1 - b1^t) and eps_t = eps sqrt(1 - b2^t)
        root_bias2 = math.sqrt(1 - beta2 ** t)
        xp.sqrt(variance, out=scratch)
        scratch += float(self.eps) * root_bias2
        xp.divide(mean, scratch, out=scratch)
        scratch *= -float(self.lr) * root_bias2 / (1 - beta1 ** t)
        for data, scratch_part in zip(datas, scratch_parts):
            data += scratch_part
        if t % FLUSH_EVERY == 0:
            _flush_denormals(xp, mean, beta1)
            _flush_denormals(xp, variance, beta2)

    def _flat_state(self):
        """The _FlatState whose parts are self.means and self.variances, built (taking over the
        current state) when there is none or it is stale: a checkpoint loaded, a parameter moved
        or converted. None when the parameters differ in array type or dtype."""
        first = self.params[0].data
        for param in self.params:
            if type(param.data) is not type(first) or param.data.dtype != first.dtype:
                return None
        flat = self._flat
        if (flat is None or flat.array_type is not type(first) or flat.dtype != first.dtype
                or any(a is not b for a, b in zip(self.means, flat.mean_parts))
                or any(a is not b for a, b in zip(self.variances, flat.variance_parts))):
            flat = self._flat = _FlatState(self)
        return flat


class _FlatState:
    """Adam's moments for all parameters as three flat arrays (mean, variance, scratch), and the
    per-parameter views of each (mean_parts, ...), shaped as the parameters. Building it copies
    the optimizer's current moments in and puts the views in their place in its lists."""

    def __init__(self, optimizer):
        datas = [param.data for param in optimizer.params]
        self.array_type, self.dtype = type(datas[0]), datas[0].dtype
        self.xp = xp = get_array_module(datas[0])
        total = sum(data.size for data in datas)
        self.mean, self.variance = xp.zeros(total, self.dtype), xp.zeros(total, self.dtype)
        self.scratch = xp.empty(total, self.dtype)
        self.mean_parts = self._parts(self.mean, datas, optimizer.means)
        self.variance_parts = self._parts(self.variance, datas, optimizer.variances)
        self.scratch_parts = self._parts(self.scratch, datas)

    def _parts(self, flat, datas, states=None):
        """Views of `flat`, one per parameter, shaped as it. With `states` (the optimizer's list of
        one moment), each view takes over the state it replaces in that list (none: zeros)."""
        parts, start = [], 0
        for index, data in enumerate(datas):
            part = flat[start:start + data.size].reshape(data.shape)
            start += data.size
            if states is not None:
                if states[index] is not None:   # the moment so far, on this device and in this dtype
                    part[...] = to_device(states[index], device_of(data)).astype(self.dtype, copy=False)
                states[index] = part
            parts.append(part)
        return parts


def _flush_denormals(xp, array, decay):
    """Set to zero, in place, the entries of `array` (optimizer state that is
    multiplied by `decay` every step) that could become denormals before the
    next flush, FLUSH_EVERY steps from now.

    Where a gradient stays 0 (a dead ReLU unit, a pixel that is rarely
    non-zero) the state decays geometrically into the denormal range, below
    tiny = 1.2e-38, and gets stuck there (0.9 x the smallest float rounds back
    to itself). CPUs handle denormals tens of times slower, so without this an
    MNIST MLP step slows down about twofold after some thousand steps.
    Flushing only entries already below tiny would still leave each one
    denormal for up to FLUSH_EVERY steps (and a VAE's Adam step 5-20% slower
    during that time, 2026-12-02); an entry at least tiny / decay^FLUSH_EVERY (4.4e-34
    for Adam's 0.9) stays normal until the next flush. At most tiny x 2^23
    (1e-31) is flushed, for fast decays: values that small change no update
    measurably (the trained weights come out bit-identical in a VAE run) while
    Adam's eps is not tiny. With eps = 0 and gradients below about 1e-19 (whose
    squares are float32 denormals already), flushing Adam's variance changes
    the next steps (about 10x larger for a while): keep eps > 0 there.
    """
    if array.dtype.itemsize < 4:   # float16: its tiny (6e-5) is a live value; NumPy computes it in float32 anyway
        return
    reach = decay ** FLUSH_EVERY                  # how far an entry can decay before the next flush
    headroom = 2.0 ** 23 if reach < 2.0 ** -23 else 1.0 / reach
    # copyto, not array[mask] = 0: CuPy's boolean-mask assignment counts the mask on the host (a sync)
    xp.copyto(array, 0, where=xp.abs(array) < xp.finfo(array.dtype).tiny * headroom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as torch.optim.AdamW:
    p <- p (1 - lr weight_decay) first, then the Adam step on the plain gradient."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr, betas, eps, weight_decay)

    def _gradient(self, data, grad):
        """The plain gradient, the parameter decayed first: p <- p (1 - lr weight_decay)."""
        if self.weight_decay:
            data *= 1 - float(self.lr) * float(self.weight_decay)
        return grad


def _check_not_one_parameter(owner, params):
    """Refuse a single Variable where a list of parameters is expected: it iterates over its rows, each a
    new Variable, so an optimizer would update copies and clip_grad_norm would find no gradients."""
    if isinstance(params, Variable):
        raise TypeError(f"{owner}: params must be an iterable of Parameters (e.g. [layer.W] or model.params()), "
                        f"got a {type(params).__name__}")


def _sum_of_squares(g):
    """sum of g^2, in float32 at least: in float16 it overflows to inf once the norm passes 256."""
    if g.dtype.itemsize < 4:
        g = g.astype("float32")
    return (g * g).sum()


def clip_grad_norm(params, max_norm):
    """Scale all gradients together so that their global L2 norm is at most max_norm.

    Returns the norm before clipping as a Python float (one explicit host copy
    of a scalar). Gradients are replaced, not changed in place, so a gradient
    array shared by two parameters is scaled once.
    """
    check_number("clip_grad_norm", "max_norm", max_norm, at_least=0)   # a negative one would flip every gradient's sign
    _check_not_one_parameter("clip_grad_norm", params)
    params = [param for param in params if param.grad is not None]
    if not params:
        return 0.0
    xp = get_array_module(params[0].grad.data)
    total_norm = xp.sqrt(sum(_sum_of_squares(param.grad.data) for param in params))
    # scale = min(1, max_norm / (norm + 1e-6)), computed on the device: no host round trip
    scale = xp.minimum(float(max_norm) / (total_norm + 1e-6), 1.0)
    for param in params:  # the scale in each gradient's own dtype: a float32 one stays float32
        param.grad = Variable(param.grad.data * scale.astype(param.grad.dtype))
    return float(total_norm.item())


def cosine_lr(base_lr, step, total_steps, final_lr=0.0):
    """Learning rate at optimizer step `step` (0-based) of a cosine decay from base_lr to final_lr
    over total_steps (Loshchilov & Hutter 2017, without restarts):

        lr(s) = final_lr + (base_lr - final_lr) (1 + cos(pi s / total_steps)) / 2

    Large steps while the model is far off, ever smaller ones at the end, so the last weights are
    an average of many small moves rather than one noisy jump. Set it before each step:
    `optimizer.lr = cosine_lr(lr, step, total)`; it depends on the step number only, so a resumed
    run with the same total continues the same schedule (a larger total would restart the decay
    part-way up, which is why step 10.2 refuses to resume a cosine run with other --epochs)."""
    if not total_steps > 0:   # NaN too: it would make every learning rate NaN
        raise ValueError(f"cosine_lr: total_steps must be positive, got {total_steps}")
    progress = min(max(step / total_steps, 0.0), 1.0)
    return final_lr + (base_lr - final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
