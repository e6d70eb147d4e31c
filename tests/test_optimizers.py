"""Optimizers: each update rule checked against hand-computed steps (float64
reference formulas written out here) and against torch.optim when installed."""
import math
import re

import numpy as np
import pytest
from hypothesis import given, strategies as st

import zero
from conftest import host, on
from zero import Parameter, Variable
from zero.layers import Linear
from zero.optimizers import FLUSH_EVERY, SGD, Adam, AdamW, Momentum, Optimizer, clip_grad_norm, cosine_lr
from zero.testing import StrictArray
from zero.training import load_checkpoint, save_checkpoint

START = np.array([[0.5, -1.0], [2.0, 0.25]], np.float32)
GRADS = [np.array([[0.1, -0.2], [0.3, 0.0]], np.float32),
         np.array([[-0.5, 0.4], [0.1, 1.0]], np.float32),
         np.array([[0.2, 0.2], [-0.3, -0.6]], np.float32)]


def run(make_optimizer, device, grads=GRADS):
    """Apply the optimizer for len(grads) steps to a parameter starting at START."""
    param = Parameter(on(device, START.copy()))  # updates are in place
    optimizer = make_optimizer([param])
    for grad in grads:
        param.grad = Variable(on(device, grad))
        optimizer.step()
        assert param.data.dtype == np.float32
        assert zero.backend.device_of(param.data) == device
    return host(param.data), optimizer


def reference_adam(lr, betas, eps, weight_decay=0.0, decoupled=False):
    p = START.astype(np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    b1, b2 = betas
    for t, g in enumerate(GRADS, start=1):
        g = g.astype(np.float64)
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def test_sgd_by_hand(device):
    result, _ = run(lambda ps: SGD(ps, lr=0.1), device)
    np.testing.assert_allclose(result, START - 0.1 * sum(GRADS), rtol=1e-6)


def test_momentum_by_hand(device):
    result, optimizer = run(lambda ps: Momentum(ps, lr=0.1, momentum=0.9), device)
    g1, g2, g3 = GRADS
    v1 = g1
    v2 = 0.9 * v1 + g2
    v3 = 0.9 * v2 + g3
    np.testing.assert_allclose(result, START - 0.1 * (v1 + v2 + v3), rtol=1e-6)
    assert zero.backend.device_of(optimizer.velocities[0]) == device  # state on the param's device


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_by_hand(device, weight_decay):
    result, optimizer = run(lambda ps: Adam(ps, lr=0.01, betas=(0.8, 0.9), eps=1e-6,
                                            weight_decay=weight_decay), device)
    expected = reference_adam(0.01, (0.8, 0.9), 1e-6, weight_decay)
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-7)
    assert optimizer.steps == [3]
    assert isinstance(optimizer.means[0], StrictArray) == (device == "strict")


def test_first_adam_step_moves_each_weight_by_lr():
    # with m_hat = g and v_hat = g^2 the first step is lr * sign(g) (eps aside)
    result, _ = run(lambda ps: Adam(ps, lr=0.01), "cpu", grads=GRADS[:1])
    expected = START - 0.01 * np.sign(GRADS[0]) * (np.abs(GRADS[0]) / (np.abs(GRADS[0]) + 1e-8))
    np.testing.assert_allclose(result, expected, rtol=1e-6)


def test_adamw_by_hand(device):
    result, _ = run(lambda ps: AdamW(ps, lr=0.01, weight_decay=0.5), device)
    expected = reference_adam(0.01, (0.9, 0.999), 1e-8, 0.5, decoupled=True)
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-7)
    assert not np.allclose(expected, reference_adam(0.01, (0.9, 0.999), 1e-8, 0.5))  # really different


@pytest.mark.parametrize("name", ["SGD", "Momentum", "Adam", "AdamW", "AdamL2"])
def test_matches_torch_optim(name):
    torch = pytest.importorskip("torch")
    ours = {"SGD": lambda ps: SGD(ps, lr=0.1),
            "Momentum": lambda ps: Momentum(ps, lr=0.1, momentum=0.9),
            "Adam": lambda ps: Adam(ps, lr=0.01),
            "AdamW": lambda ps: AdamW(ps, lr=0.01, weight_decay=0.1),
            "AdamL2": lambda ps: Adam(ps, lr=0.01, weight_decay=0.1)}[name]
    theirs = {"SGD": lambda ps: torch.optim.SGD(ps, lr=0.1),
              "Momentum": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
              "Adam": lambda ps: torch.optim.Adam(ps, lr=0.01),
              "AdamW": lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
              "AdamL2": lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1)}[name]
    result, _ = run(ours, "cpu")
    param = torch.tensor(START, requires_grad=True)
    optimizer = theirs([param])
    for grad in GRADS:
        param.grad = torch.from_numpy(grad.copy())
        optimizer.step()
    np.testing.assert_allclose(result, param.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_params_without_grad_are_skipped_and_zero_grad_clears():
    a, b = Parameter(np.ones(2, np.float32)), Parameter(np.ones(2, np.float32))
    optimizer = Adam([a, b], lr=0.1)
    a.grad = Variable(np.ones(2, np.float32))
    optimizer.step()
    np.testing.assert_array_equal(b.data, 1.0)
    assert optimizer.steps == [1, 0]
    assert not np.allclose(a.data, 1.0)
    optimizer.zero_grad()
    assert a.grad is None


@pytest.mark.parametrize("make", [SGD, Momentum, Adam, AdamW])
def test_a_step_without_any_gradient_is_refused(make):
    """optimizer.zero_grad() between backward() and step() (or backward() forgotten) trained nothing, silently."""
    layer = Linear(2, in_size=2)
    optimizer = make(layer.params(), lr=0.1)
    loss = layer(np.ones((1, 2), np.float32)).sum()
    loss.backward()
    optimizer.zero_grad()   # the wrong place
    W = layer.W.data.copy()
    with pytest.raises(RuntimeError, match=rf"{make.__name__}\.step: none of the 2 parameters has a gradient.*"
                                           r"zero_grad\(\) before backward\(\)"):
        optimizer.step()
    np.testing.assert_array_equal(layer.W.data, W)


def test_params_kept_in_a_variable_serve_the_optimizer_and_clip_grad_norm():
    """params = model.params() was a generator: the optimizer used it up, and clip_grad_norm(params, ...)
    then saw no parameters, returned 0.0 and clipped nothing, silently."""
    layer = Linear(2, in_size=2)
    params = layer.params()
    optimizer = SGD(params, lr=0.1)
    layer(np.ones((1, 2), np.float32)).sum().backward()
    assert clip_grad_norm(params, 1e-3) > 1e-3
    assert len(optimizer.params) == 2
    norm = math.sqrt(sum(float((p.grad.data ** 2).sum()) for p in params))
    assert norm == pytest.approx(1e-3, rel=1e-3)


def test_shared_param_is_updated_once():
    p = Parameter(np.zeros(1, np.float32))
    optimizer = SGD([p, p], lr=1.0)
    p.grad = Variable(np.ones(1, np.float32))
    optimizer.step()
    np.testing.assert_array_equal(p.data, [-1.0])


def test_bad_params_are_clear_errors():
    with pytest.raises(ValueError, match="no parameters"):
        SGD(iter([]), lr=0.1)
    with pytest.raises(TypeError, match="expected Parameters"):
        SGD([np.ones(2)], lr=0.1)


@pytest.mark.parametrize("make, owner", [(SGD, "SGD"), (Momentum, "Momentum"), (Adam, "Adam"), (AdamW, "AdamW"),
                                         (lambda ps: clip_grad_norm(ps, 1e-3), "clip_grad_norm")])
def test_a_single_parameter_where_a_list_is_expected_is_refused(make, owner):
    """A Variable iterates over its rows: SGD(layer.W) held each row as a parameter of its own and its steps
    left W unchanged; clip_grad_norm(layer.W, ...) saw no gradients and returned 0.0 without clipping."""
    layer = Linear(3, in_size=2)
    (layer(np.ones((4, 2), np.float32)) ** 2).sum().backward()
    with pytest.raises(TypeError, match=rf"^{owner}: params must be an iterable of Parameters "
                                        r"\(e\.g\. \[layer\.W\] or model\.params\(\)\), got a Parameter$"):
        make(layer.W)


def test_optimizer_built_before_lazy_layer_is_called(device):
    layer = Linear(2).to(device)
    optimizer = Adam(layer.params(), lr=0.1)
    x = on(device, np.ones((4, 3), np.float32))
    before = None
    for _ in range(2):
        loss = (layer(x) * layer(x)).sum()
        optimizer.zero_grad()
        loss.backward()
        before = host(layer.W.data).copy() if before is None else before
        optimizer.step()
    assert not np.allclose(host(layer.W.data), before)


def test_state_follows_a_parameter_moved_to_another_device():
    p = Parameter(np.ones(2, np.float32))
    optimizer = Momentum([p], lr=0.1)
    p.grad = Variable(np.ones(2, np.float32))
    optimizer.step()
    p.to("strict")
    p.grad = Variable(on("strict", np.ones(2, np.float32)))
    optimizer.step()
    assert isinstance(optimizer.velocities[0], StrictArray)
    np.testing.assert_allclose(host(p.data), 1 - 0.1 * (1 + 1.9), rtol=1e-6)


def test_lr_can_be_changed_between_steps():
    p = Parameter(np.zeros(1, np.float32))
    optimizer = SGD([p], lr=1.0)
    p.grad = Variable(np.ones(1, np.float32))
    optimizer.step()
    optimizer.lr = 0.5
    optimizer.step()
    np.testing.assert_allclose(p.data, [-1.5])


@pytest.mark.parametrize("make", [SGD, Momentum, Adam, AdamW])
@pytest.mark.parametrize("lr", [-0.1, "0.5", float("nan"), True])
def test_a_learning_rate_set_between_steps_is_checked_as_the_constructor_s(make, lr):
    """optimizer.lr = schedule(step) was unchecked: a negative lr climbed the loss, '0.5' worked through float()."""
    optimizer = make([Parameter(np.zeros(3, np.float32))], lr=0.1)
    with pytest.raises(ValueError, match=rf"^{make.__name__}: lr must be a finite number >= 0, "
                                         rf"got {re.escape(repr(lr))}$"):
        optimizer.lr = lr
    assert optimizer.lr == 0.1


# -----------------------------------------------------------------------------
# Gradient clipping
# -----------------------------------------------------------------------------
def test_clip_grad_norm_scales_to_max_norm(device):
    a, b = Parameter(on(device, np.zeros(2, np.float32))), Parameter(on(device, np.zeros(1, np.float32)))
    a.grad = Variable(on(device, np.array([3.0, 0.0], np.float32)))
    b.grad = Variable(on(device, np.array([4.0], np.float32)))
    norm = clip_grad_norm([a, b], max_norm=1.0)
    assert isinstance(norm, float) and norm == pytest.approx(5.0)
    np.testing.assert_allclose(host(a.grad.data), [0.6, 0.0], rtol=1e-5)
    np.testing.assert_allclose(host(b.grad.data), [0.8], rtol=1e-5)
    assert a.grad.dtype == np.float32 and zero.backend.device_of(a.grad.data) == device


def test_clip_grad_norm_leaves_small_grads_and_skips_missing():
    a, b = Parameter(np.zeros(2, np.float32)), Parameter(np.zeros(2, np.float32))
    a.grad = Variable(np.array([0.3, 0.4], np.float32))
    assert clip_grad_norm([a, b], max_norm=1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(a.grad.data, np.array([0.3, 0.4], np.float32))
    assert b.grad is None
    assert clip_grad_norm([b], max_norm=1.0) == 0.0


def test_clip_grad_norm_scales_a_shared_gradient_once():
    a, b = Parameter(np.zeros(1, np.float32)), Parameter(np.zeros(1, np.float32))
    a.grad = b.grad = Variable(np.array([4.0], np.float32))  # as backward of x0 + x1 may leave it
    norm = clip_grad_norm([a, b], max_norm=math.sqrt(2))
    assert norm == pytest.approx(math.sqrt(32))
    np.testing.assert_allclose(a.grad.data, [1.0], rtol=1e-5)
    np.testing.assert_allclose(b.grad.data, [1.0], rtol=1e-5)


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    grads = [np.random.default_rng(i).standard_normal(shape).astype(np.float32)
             for i, shape in enumerate([(3, 4), (4,)])]
    ours = [Parameter(np.zeros_like(g)) for g in grads]
    for p, g in zip(ours, grads):
        p.grad = Variable(g.copy())
    theirs = [torch.zeros(g.shape, requires_grad=True) for g in grads]
    for p, g in zip(theirs, grads):
        p.grad = torch.from_numpy(g.copy())
    norm = clip_grad_norm(ours, 0.5)
    torch_norm = torch.nn.utils.clip_grad_norm_(theirs, 0.5)
    assert norm == pytest.approx(float(torch_norm), rel=1e-6)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.data, q.grad.numpy(), rtol=1e-6)


def _denormal(array):
    array = host(array)
    return (array != 0) & (np.abs(array) < np.finfo(array.dtype).tiny)


def test_adam_moments_never_become_denormals(device):
    p = Parameter(on(device, np.ones(3, np.float32)))
    optimizer = Adam([p], lr=1e-3)
    p.grad = Variable(on(device, np.array([1e-3, 0.0, 1.0], np.float32)))
    optimizer.step()
    p.grad = Variable(on(device, np.array([0.0, 0.0, 1.0], np.float32)))  # a dead unit from now on
    import zero.testing
    reads = zero.testing.host_reads
    for _ in range(999):  # m shrinks by 0.9 per step: below 1.2e-38 after ~800 steps
        optimizer.step()
        # flushed early enough: not even between two flushes (FLUSH_EVERY steps apart)
        assert not _denormal(optimizer.means[0]).any() and not _denormal(optimizer.variances[0]).any()
        reads += 2   # the two reads of this check (the flush itself reads nothing: no m[mask] = 0 on CuPy)
    assert device == "cpu" or zero.testing.host_reads == reads
    means = host(optimizer.means[0])
    assert means[0] == 0 and means[1] == 0 and means[2] == pytest.approx(1.0)  # live moments untouched
    assert np.isfinite(host(p.data)).all()


def test_momentum_velocities_never_become_denormals(device):
    p = Parameter(on(device, np.ones(2, np.float32)))
    optimizer = Momentum([p], lr=1e-3, momentum=0.9)
    p.grad = Variable(on(device, np.array([1e-3, 1.0], np.float32)))
    optimizer.step()
    p.grad = Variable(on(device, np.array([0.0, 1.0], np.float32)))
    for _ in range(999):
        optimizer.step()
        assert not _denormal(optimizer.velocities[0]).any()
    velocity = host(optimizer.velocities[0])
    assert velocity[0] == 0 and velocity[1] == pytest.approx(10.0, rel=1e-4)  # 1 / (1 - 0.9)


def test_cosine_lr_decays_from_base_to_final():
    assert cosine_lr(1e-3, 0, 100) == pytest.approx(1e-3)
    assert cosine_lr(1e-3, 50, 100) == pytest.approx(0.5e-3)                 # half way: the mean
    assert cosine_lr(1e-3, 100, 100, final_lr=1e-5) == pytest.approx(1e-5)
    assert cosine_lr(1e-3, 25, 100) == pytest.approx(1e-3 * (1 + math.cos(math.pi / 4)) / 2)
    rates = [cosine_lr(1.0, step, 40) for step in range(41)]
    assert all(a > b for a, b in zip(rates, rates[1:]))                       # strictly decreasing
    assert cosine_lr(1.0, 500, 40) == 0.0                                     # clamped past the end
    with pytest.raises(ValueError, match="total_steps"):
        cosine_lr(1.0, 0, 0)


def test_cosine_lr_is_clamped_before_the_start_and_after_the_end():
    """progress = step / total_steps is clamped to [0, 1]: a negative step gives base_lr (not a rate
    from a cosine run backwards), a step past the end gives final_lr."""
    assert cosine_lr(1.0, -1, 40) == 1.0
    assert cosine_lr(1.0, -10, 40) == 1.0                    # unclamped: (1 + cos(-pi / 4)) / 2 = 0.85
    assert cosine_lr(1.0, -40, 40) == 1.0                    # unclamped: (1 + cos(-pi)) / 2 = 0
    assert cosine_lr(2e-3, -7, 100, final_lr=1e-4) == cosine_lr(2e-3, 0, 100, final_lr=1e-4)
    assert cosine_lr(2e-3, 0, 100, final_lr=1e-4) == pytest.approx(2e-3, rel=1e-12)
    assert cosine_lr(1.0, 41, 40) == 0.0 and cosine_lr(1.0, 80, 40) == 0.0   # unclamped 80: cos(2 pi) -> 1.0
    assert cosine_lr(2e-3, 150, 100, final_lr=1e-4) == pytest.approx(1e-4, rel=1e-12)


@given(st.integers(-10_000, 10_000), st.integers(1, 1_000),
       st.floats(1e-6, 1.0), st.floats(0.0, 1e-6))
def test_cosine_lr_stays_between_final_and_base_and_is_flat_outside_the_run(step, total, base, final):
    lr = cosine_lr(base, step, total, final_lr=final)
    assert final <= lr <= base * (1 + 1e-15)   # (base - final) + final may round up by an ulp
    if step <= 0:
        assert lr == cosine_lr(base, 0, total, final_lr=final)
    if step >= total:
        assert lr == cosine_lr(base, total, total, final_lr=final)


# -----------------------------------------------------------------------------
# Found by a mutation audit
# -----------------------------------------------------------------------------
def test_adam_and_adamw_defaults_are_pytorchs():
    """lr 1e-3, betas (0.9, 0.999), eps 1e-8; weight_decay 0 for Adam and 0.01 for AdamW."""
    result, _ = run(lambda ps: Adam(ps), "cpu")
    np.testing.assert_allclose(result, reference_adam(1e-3, (0.9, 0.999), 1e-8), rtol=1e-6, atol=1e-7)
    result, _ = run(lambda ps: AdamW(ps), "cpu")
    expected = reference_adam(1e-3, (0.9, 0.999), 1e-8, weight_decay=0.01, decoupled=True)
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-7)
    assert not np.allclose(expected, reference_adam(1e-3, (0.9, 0.999), 1e-8), rtol=1e-6, atol=1e-7)
    # a gradient equal to eps: the first step is lr g / (|g| + eps) = lr / 2
    result, _ = run(lambda ps: Adam(ps), "cpu", grads=[np.full((2, 2), 1e-8, np.float32)])
    np.testing.assert_allclose(result, START - 0.5e-3, rtol=1e-5)


def test_adam_state_follows_a_parameter_moved_to_another_device():
    p = Parameter(np.ones(2, np.float32))
    optimizer = Adam([p], lr=0.1)
    p.grad = Variable(np.array([1.0, -2.0], np.float32))
    optimizer.step()
    p.to("strict")
    p.grad = Variable(on("strict", np.array([1.0, -2.0], np.float32)))
    optimizer.step()
    assert isinstance(p.data, StrictArray) and isinstance(optimizer.means[0], StrictArray)
    np.testing.assert_allclose(host(p.data), [1 - 0.2, 1 + 0.2], rtol=1e-5)  # lr sign(g) per step: g is constant


@pytest.mark.parametrize("make", [lambda ps: Adam(ps, lr=0.1), lambda ps: Momentum(ps, lr=0.1)],
                         ids=["adam", "momentum"])
def test_state_follows_a_model_converted_to_float64(make):
    """After model.astype(np.float64), the next step continues in float64 (state kept, converted):
    float32 state (and Adam's float32 scratch array) would round every update to float32."""
    np.random.seed(0)
    layer = Linear(2, in_size=2)
    optimizer = make(list(layer.params()))
    reference = make([Parameter(layer.W.data.astype(np.float64))])  # the same run in float64 throughout
    grads = [np.array([[0.1, -0.2], [0.3, 0.05]]), np.array([[1 / 3, 0.2], [-0.1, 0.7]])]
    for step, grad in enumerate(grads):
        if step == 1:
            layer.astype(np.float64)
        layer.W.grad = Variable(grad.astype(layer.W.dtype))
        reference.params[0].grad = Variable(grad)
        optimizer.step()
        reference.step()
    state = optimizer.means[0] if isinstance(optimizer, Adam) else optimizer.velocities[0]
    assert layer.W.dtype == state.dtype == np.float64
    np.testing.assert_allclose(layer.W.data, reference.params[0].data, rtol=1e-6, atol=1e-7)  # step 1 in float32
    assert not np.array_equal(layer.W.data, layer.W.data.astype(np.float32))  # not rounded to float32


@pytest.mark.parametrize("bias", [False, True], ids=["all_at_once", "one_at_a_time"])
def test_adam_steps_a_converted_parameter_exactly_as_a_float64_one(bias):
    """After astype(np.float64), Adam's scratch array (where the update is computed) is float64
    too: a float32 one keeps the moments in float64 but rounds each update to float32 (relative
    6e-8, within the tolerance of the test above). With a bias that gets no gradient, Adam steps one
    parameter at a time, a path whose scratch array is kept between steps: made again in float64 too."""
    layer = Linear(2, in_size=2, bias=bias)
    adam = Adam(list(layer.params()), lr=0.1)
    index = next(i for i, param in enumerate(adam.params) if param is layer.W)
    layer.W.grad = Variable(np.array([[0.1, -0.2], [0.3, 0.05]], np.float32))
    adam.step()
    assert adam.steps == [1 if i == index else 0 for i in range(len(adam.params))]   # W alone
    layer.astype(np.float64)
    reference = Adam([Parameter(layer.W.data.copy())], lr=0.1)  # float64 from the same state on
    reference.means[0] = adam.means[index].astype(np.float64)
    reference.variances[0] = adam.variances[index].astype(np.float64)
    reference.steps[0] = 1
    grad = np.array([[1 / 3, 0.2], [-0.1, 0.7]])
    layer.W.grad, reference.params[0].grad = Variable(grad), Variable(grad)
    adam.step()
    reference.step()
    np.testing.assert_array_equal(layer.W.data, reference.params[0].data)


@pytest.mark.parametrize("make", [lambda ps: Adam(ps, lr=0.1), lambda ps: Momentum(ps, lr=0.1)],
                         ids=["adam", "momentum"])
def test_state_follows_a_model_converted_back_to_float32(make):
    """A float64 check done, the model goes back to float32: so does the state (float64 state
    would make every step convert it again and train at float64 cost)."""
    layer = Linear(2, in_size=2, bias=False).astype(np.float64)
    optimizer = make(list(layer.params()))
    for dtype in [np.float64, np.float32]:
        layer.astype(dtype)
        layer.W.grad = Variable(np.full((2, 2), 0.5, dtype))
        optimizer.step()
    states = [optimizer.means[0], optimizer.variances[0]] if isinstance(optimizer, Adam) else [optimizer.velocities[0]]
    assert layer.W.dtype == np.float32 and all(state.dtype == np.float32 for state in states)


def test_fast_momentum_flushes_dead_velocities_but_keeps_small_live_ones(device):
    """momentum 0.5 halves a dead unit's velocity each step (1e-3 becomes a float32 denormal within
    about 117 steps), so a flush must catch it one FLUSH_EVERY ahead; a live velocity of 2e-9 is far
    above anything that could decay that far and must survive the flush at step 200."""
    p = Parameter(on(device, np.ones(2, np.float32)))
    optimizer = Momentum([p], lr=1.0, momentum=0.5)
    p.grad = Variable(on(device, np.array([1e-3, 1e-9], np.float32)))
    optimizer.step()
    p.grad = Variable(on(device, np.array([0.0, 1e-9], np.float32)))
    for _ in range(199):
        optimizer.step()
        assert not _denormal(optimizer.velocities[0]).any()
    assert optimizer.steps == [200]  # just flushed
    velocity = host(optimizer.velocities[0])
    assert velocity[0] == 0 and velocity[1] == pytest.approx(2e-9, rel=1e-5)  # 1e-9 / (1 - 0.5)


@pytest.mark.parametrize("make, message", [
    (lambda p: SGD(p, lr=-0.1), "SGD: lr must be a finite number >= 0, got -0.1"),
    (lambda p: SGD(p, lr=float("inf")), "SGD: lr must be a finite number >= 0, got inf"),    # every weight inf
    (lambda p: SGD(p, lr="0.1"), "SGD: lr must be a finite number >= 0, got '0.1'"),       # a TypeError in >=
    (lambda p: SGD(p, lr=True), "SGD: lr must be a finite number >= 0, got True"),
    (lambda p: Momentum(p, momentum=-0.5), "Momentum: momentum must be a finite number >= 0, got -0.5"),
    (lambda p: Adam(p, lr=-1e-3), "Adam: lr must be a finite number >= 0, got -0.001"),
    (lambda p: Adam(p, betas=(1.0, 0.999)), "Adam: betas[0] must be a finite number in [0, 1), got 1.0"),
    (lambda p: Adam(p, betas=(0.9, -0.1)), "Adam: betas[1] must be a finite number in [0, 1), got -0.1"),
    (lambda p: Adam(p, betas=(0.9,)), "Adam: betas must be a pair (beta1, beta2), got (0.9,)"),
    (lambda p: Adam(p, betas=(0.9, 0.999, 0.5)), "Adam: betas must be a pair (beta1, beta2), got (0.9, 0.999, 0.5)"),
    (lambda p: Adam(p, betas=0.9), "Adam: betas must be a pair (beta1, beta2), got 0.9"),
    (lambda p: AdamW(p, betas=None), "AdamW: betas must be a pair (beta1, beta2), got None"),
    (lambda p: Adam(p, eps=-1e-8), "Adam: eps must be a finite number >= 0, got -1e-08"),
    (lambda p: Adam(p, eps=float("nan")), "Adam: eps must be a finite number >= 0, got nan"),
    (lambda p: AdamW(p, weight_decay=-0.01), "AdamW: weight_decay must be a finite number >= 0, got -0.01"),
])
def test_an_optimizer_refuses_a_hyperparameter_out_of_range_by_name(make, message):
    """A negative learning rate would climb the loss; torch.optim refuses these too."""
    import re
    with pytest.raises(ValueError, match=re.escape(message)):
        make([Parameter(np.zeros(3, np.float32))])


def test_an_optimizer_takes_a_zero_learning_rate_and_leaves_the_parameter_alone():
    param = Parameter(np.ones(3, np.float32))
    param.grad = Variable(np.ones(3, np.float32))
    Adam([param], lr=0.0).step()
    np.testing.assert_array_equal(param.data, np.ones(3, np.float32))


@pytest.mark.parametrize("max_norm", [0.0, 1.0])
def test_clip_grad_norm_of_all_zero_gradients_leaves_them_zero(max_norm):
    """A norm of 0 (a step where nothing gets a gradient signal) must not give 0 / 0 = NaN gradients:
    the 1e-6 added to the norm keeps the scale finite."""
    params = [Parameter(np.ones(3, np.float32)), Parameter(np.ones((2, 2), np.float32))]
    for param in params:
        param.grad = Variable(np.zeros(param.shape, np.float32))
    with np.errstate(all="raise"):   # a 0 / 0 would raise here, not only warn
        assert clip_grad_norm(params, max_norm) == 0.0
    for param in params:
        np.testing.assert_array_equal(param.grad.data, np.zeros(param.shape, np.float32))


def test_clip_grad_norm_refuses_a_negative_max_norm_that_would_flip_the_gradients():
    param = Parameter(np.ones(3, np.float32))
    param.grad = Variable(np.full(3, 10.0, np.float32))
    with pytest.raises(ValueError, match="clip_grad_norm: max_norm must be a finite number >= 0, got -1"):
        clip_grad_norm([param], -1)
    np.testing.assert_array_equal(param.grad.data, np.full(3, 10.0, np.float32))


# --- from a mutation audit of the hyperparameter checks --------------------------------------------------------------
def test_an_optimizer_takes_the_zero_edges_of_its_ranges_as_torch_does():
    """momentum 0 is plain SGD; Adam's betas may be 0 and its eps 0 (torch.optim: 0 <= beta < 1, 0 <= eps)."""
    param = Parameter(np.ones(3, np.float32))
    param.grad = Variable(np.full(3, 2.0, np.float32))
    Momentum([param], lr=0.5, momentum=0.0).step()
    np.testing.assert_allclose(param.data, np.zeros(3))
    Adam([param], lr=0.1, betas=(0.0, 0.0), eps=0.0).step()    # m_hat / sqrt(v_hat) = g / |g| = 1
    np.testing.assert_allclose(param.data, np.full(3, -0.1), rtol=1e-6)


def test_clip_grad_norm_to_zero_zeroes_the_gradients():
    param = Parameter(np.ones(3, np.float32))
    param.grad = Variable(np.full(3, 10.0, np.float32))
    assert clip_grad_norm([param], 0.0) == pytest.approx(math.sqrt(300))
    np.testing.assert_array_equal(param.grad.data, np.zeros(3, np.float32))


def test_clip_grad_norm_refuses_a_nan_max_norm_that_would_make_every_gradient_nan():
    param = Parameter(np.ones(3, np.float32))
    param.grad = Variable(np.full(3, 10.0, np.float32))
    with pytest.raises(ValueError, match="clip_grad_norm: max_norm must be a finite number >= 0, got nan"):
        clip_grad_norm([param], float("nan"))
    np.testing.assert_array_equal(param.grad.data, np.full(3, 10.0, np.float32))


@pytest.mark.parametrize("max_norm", ["1", None, True, float("inf")])
def test_clip_grad_norm_refuses_a_max_norm_that_is_not_a_finite_number_by_name(max_norm):
    """'1' gave TypeError: '>=' not supported between 'str' and 'int', which named no argument."""
    param = Parameter(np.ones(3, np.float32))
    param.grad = Variable(np.full(3, 10.0, np.float32))
    with pytest.raises(ValueError, match=rf"^clip_grad_norm: max_norm must be a finite number >= 0, "
                                         rf"got {re.escape(repr(max_norm))}$"):
        clip_grad_norm([param], max_norm)
    np.testing.assert_array_equal(param.grad.data, np.full(3, 10.0, np.float32))


# --- from a mutation audit of defaults, flushing and clipping -------------------------------------------------------
def test_sgd_and_momentum_default_to_lr_0_01_and_momentum_0_9():
    result, _ = run(lambda ps: SGD(ps), "cpu")
    np.testing.assert_allclose(result, START - 0.01 * sum(GRADS), rtol=1e-6)
    result, _ = run(lambda ps: Momentum(ps), "cpu")
    g1, g2, g3 = GRADS
    v2 = 0.9 * g1 + g2
    np.testing.assert_allclose(result, START - 0.01 * (g1 + v2 + 0.9 * v2 + g3), rtol=1e-6)


def test_adam_keeps_a_small_live_variance_across_a_flush(device):
    """A constant gradient of 1e-17 gives v = (1 - 0.999^t) 1e-34, far above what could decay into a
    denormal by the next flush: it must survive the flush at step 100, and with eps = 0 every step
    stays lr m_hat / sqrt(v_hat) = lr."""
    p = Parameter(on(device, np.zeros(1, np.float32)))
    optimizer = Adam([p], lr=1.0, eps=0.0)
    moves = []
    for _ in range(101):
        p.grad = Variable(on(device, np.full(1, 1e-17, np.float32)))
        before = host(p.data).copy()
        optimizer.step()
        moves.append(float((before - host(p.data))[0]))
        if optimizer.steps == [100]:
            variance = host(optimizer.variances[0]).copy()
    np.testing.assert_allclose(variance, (1 - 0.999 ** 100) * np.float32(1e-17) ** 2, rtol=1e-4)
    np.testing.assert_allclose(moves, 1.0, rtol=1e-4)



@pytest.mark.parametrize("name", ["adam", "momentum"])
def test_dead_state_is_flushed_at_step_flush_every_and_not_before(name, device):
    """A dead unit's moment that would decay into the denormals before the next flush is zeroed at
    step FLUSH_EVERY, and is still there, untouched, at the step before: flushing at every step but
    the multiples of FLUSH_EVERY (t % FLUSH_EVERY != 0) passed the suite."""
    tiny = float(np.finfo(np.float32).tiny)
    state_after_step_1 = 10 * tiny / 0.9 ** (FLUSH_EVERY - 1)   # 10 tiny at step FLUSH_EVERY: normal, yet flushed
    p = Parameter(on(device, np.zeros(2, np.float32)))
    if name == "adam":   # m = (1 - 0.9) g after one step
        optimizer, states, first = Adam([p], lr=1e-3), "means", state_after_step_1 / 0.1
    else:                # v = g after one step
        optimizer, states, first = Momentum([p], lr=1e-3, momentum=0.9), "velocities", state_after_step_1
    p.grad = Variable(on(device, np.array([first, 1.0], np.float32)))
    optimizer.step()
    p.grad = Variable(on(device, np.array([0.0, 1.0], np.float32)))   # unit 0 dead from now on
    for _ in range(FLUSH_EVERY - 2):
        optimizer.step()
    assert optimizer.steps == [FLUSH_EVERY - 1]
    np.testing.assert_allclose(host(getattr(optimizer, states)[0])[0], 10 * tiny / 0.9, rtol=1e-4)
    optimizer.step()
    state = host(getattr(optimizer, states)[0])
    assert state[0] == 0 and state[1] > 0.5   # the live unit's state is kept

def test_negative_velocities_are_flushed_when_dead_and_kept_when_live(device):
    p = Parameter(on(device, np.ones(2, np.float32)))
    optimizer = Momentum([p], lr=1e-3, momentum=0.9)
    p.grad = Variable(on(device, np.array([-1e-3, -1.0], np.float32)))
    optimizer.step()
    p.grad = Variable(on(device, np.array([0.0, -1.0], np.float32)))
    for _ in range(699):  # -1e-3 0.9^t is within a flush interval of the denormals after ~660 steps
        optimizer.step()
        assert not _denormal(optimizer.velocities[0]).any()
    assert optimizer.steps == [700]  # just flushed
    velocity = host(optimizer.velocities[0])
    assert velocity[0] == 0 and velocity[1] == pytest.approx(-10.0, rel=1e-4)


@pytest.mark.parametrize("float32_first", [True, False])
def test_clip_grad_norm_keeps_each_gradient_in_its_own_dtype(float32_first):
    a, b = Parameter(np.zeros(2, np.float32)), Parameter(np.zeros(2, np.float64))
    a.grad = Variable(np.array([3.0, 4.0], np.float32))
    b.grad = Variable(np.array([0.0, 0.0], np.float64))
    assert clip_grad_norm([a, b] if float32_first else [b, a], 1.0) == pytest.approx(5.0)
    assert (a.grad.dtype, b.grad.dtype) == (np.float32, np.float64)
    np.testing.assert_allclose(a.grad.data, [0.6, 0.8], rtol=1e-5)


def test_clip_grad_norm_of_float16_gradients_sums_their_squares_without_overflow():
    """In float16, 3 x 200^2 overflowed to inf and every gradient became 0."""
    p = Parameter(np.zeros(3, np.float16))
    p.grad = Variable(np.full(3, 200.0, np.float16))
    assert clip_grad_norm([p], 1.0) == pytest.approx(200 * math.sqrt(3), rel=1e-3)
    assert p.grad.dtype == np.float16
    np.testing.assert_allclose(p.grad.data.astype(np.float64), 1 / math.sqrt(3), rtol=1e-3)


@pytest.mark.parametrize("make", [lambda ps: Adam(ps, lr=1e-2), lambda ps: Momentum(ps, lr=1e-2)])
def test_float16_state_is_not_flushed_while_it_is_live(make):
    """float16's tiny is 6e-5: the flush threshold scaled from it zeroed live moments every 100 steps."""
    p = Parameter(np.zeros(1, np.float16))
    optimizer = make([p])
    p.grad = Variable(np.full(1, 0.1, np.float16))
    for _ in range(100):
        optimizer.step()
    state = optimizer.means[0] if isinstance(optimizer, Adam) else optimizer.velocities[0]
    assert float(state[0]) > 0.09   # Adam's mean -> 0.1, Momentum's velocity -> 1


def _adam_pair(make, device, seed=0):
    """Two copies of the same three parameters (a matrix, a vector, a scalar-like one), each with
    its own optimizer made by `make`."""
    rng = np.random.default_rng(seed)
    starts = [rng.standard_normal(shape).astype(np.float32) for shape in [(3, 4), (4,), (1,)]]
    copies = []
    for _ in range(2):
        params = [Parameter(on(device, start.copy())) for start in starts]
        copies.append((params, make(params)))
    return copies


@pytest.mark.parametrize("make", [lambda ps: Adam(ps, lr=0.1), lambda ps: Adam(ps, lr=0.1, weight_decay=0.3),
                                  lambda ps: AdamW(ps, lr=0.1, weight_decay=0.3)], ids=["adam", "l2", "adamw"])
def test_adam_on_all_parameters_at_once_equals_one_at_a_time(make, device):
    """step() updates all parameters together (their moments parts of one flat array); the same
    steps taken one parameter at a time (update, as the base class does) give the same bits."""
    rng = np.random.default_rng(1)
    (together, adam), (alone, reference) = _adam_pair(make, device)
    for _ in range(FLUSH_EVERY + 3):   # past a flush of the moments
        for a, b in zip(together, alone):
            grad = rng.standard_normal(a.shape).astype(np.float32)
            a.grad, b.grad = Variable(on(device, grad)), Variable(on(device, grad.copy()))
        adam.step()
        Optimizer.step(reference)
    for a, b in zip(together, alone):
        np.testing.assert_array_equal(host(a.data), host(b.data))
    if device == "cpu":   # the fast path was taken: every parameter's moment is a part of one array
        base = adam.means[0].base
        assert base is not None and all(mean.base is base for mean in adam.means)
    assert adam.steps == reference.steps == [FLUSH_EVERY + 3] * 3


def test_adam_at_once_takes_over_state_set_from_outside_and_steps_without_a_gradient():
    """Moments replaced from outside (a checkpoint loaded, as training.load_checkpoint does) are
    used by the next all-at-once step; a step where one parameter has no gradient updates the
    others one at a time, and the counts then differ, so later steps stay one at a time."""
    rng = np.random.default_rng(2)
    (params, adam), (others, reference) = _adam_pair(lambda ps: Adam(ps, lr=0.1), "cpu")
    grads = [[rng.standard_normal(p.shape).astype(np.float32) for p in params] for _ in range(4)]

    def step(ps, optimizer, step_grads):
        for p, g in zip(ps, step_grads):
            p.grad = None if g is None else Variable(g.copy())
        optimizer.step()

    step(params, adam, grads[0])
    step(others, reference, [-g for g in grads[0]])
    # reference's weights and state copied in as new arrays, as a resumed run gets them
    adam.means, adam.variances = [m.copy() for m in reference.means], [v.copy() for v in reference.variances]
    for a, b in zip(params, others):
        a.data[...] = b.data
    for ps, optimizer in [(params, adam), (others, reference)]:
        step(ps, optimizer, grads[1])
        step(ps, optimizer, [grads[2][0], None, grads[2][2]])
        step(ps, optimizer, grads[3])
    for a, b in zip(params, others):
        np.testing.assert_array_equal(a.data, b.data)
    assert adam.steps == [4, 3, 4]
    expected = [p.data.copy() for p in params]
    Optimizer.step(reference)   # one at a time from here on, as adam now is
    adam.step()
    for a, b in zip(params, others):
        np.testing.assert_array_equal(a.data, b.data)
    assert not all(np.array_equal(a.data, e) for a, e in zip(params, expected))


@pytest.mark.parametrize("moment", ["means", "variances"])
def test_adam_at_once_takes_over_one_moment_list_replaced_alone(moment):
    """Either list of moments replaced by new arrays (not the parts of the flat state) makes the next
    step rebuild that state from them: here 4 times the moments, which the reference gets in place."""
    rng = np.random.default_rng(3)
    (params, adam), (others, reference) = _adam_pair(lambda ps: Adam(ps, lr=0.1), "cpu")
    for step in range(2):
        grads = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
        for ps, optimizer in [(params, adam), (others, reference)]:
            for p, g in zip(ps, grads):
                p.grad = Variable(g.copy())
            optimizer.step()
        if step == 0:
            setattr(adam, moment, [4 * state for state in getattr(adam, moment)])
            for state in getattr(reference, moment):
                state *= 4
    for a, b in zip(params, others):
        np.testing.assert_array_equal(a.data, b.data)


def test_adam_over_parameters_of_two_dtypes_steps_each_as_alone():
    """float32 and float64 parameters cannot share one flat state: each steps in its own dtype,
    exactly as an optimizer of its own would step it."""
    rng = np.random.default_rng(4)
    starts = [rng.standard_normal(3).astype(np.float32), rng.standard_normal(3)]
    mixed = [Parameter(start.copy()) for start in starts]
    alone = [Parameter(start.copy()) for start in starts]
    adam, references = Adam(mixed, lr=0.1), [Adam([p], lr=0.1) for p in alone]
    for _ in range(3):
        for a, b in zip(mixed, alone):
            grad = rng.standard_normal(3).astype(a.dtype)
            a.grad, b.grad = Variable(grad), Variable(grad.copy())
        adam.step()
        for reference in references:
            reference.step()
    for a, b in zip(mixed, alone):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a.data, b.data)


ALL_OPTIMIZERS = pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1), lambda ps: Momentum(ps, lr=0.1),
                                                  lambda ps: Adam(ps, lr=0.1), lambda ps: AdamW(ps, lr=0.1)],
                                         ids=["SGD", "Momentum", "Adam", "AdamW"])


def _stepped_twice(make):
    """An optimizer over two parameters ('first', 'W') after two good steps: state to keep."""
    first, second = Parameter(np.ones(3, np.float32), name="first"), Parameter(np.ones((2, 2), np.float32), name="W")
    optimizer = make([first, second])
    for _ in range(2):
        first.grad, second.grad = Variable(np.ones(3, np.float32)), Variable(np.full((2, 2), 0.5, np.float32))
        optimizer.step()
    return optimizer


def _assert_a_failed_step_changes_nothing(optimizer, message, error=ValueError):
    state = {name: [value if value is None or isinstance(value, int) else np.copy(value)
                    for value in getattr(optimizer, name)] for name in type(optimizer).state_lists}
    datas = [param.data.copy() for param in optimizer.params]
    with pytest.raises(error, match=message):
        optimizer.step()
    for param, data in zip(optimizer.params, datas):
        np.testing.assert_array_equal(param.data, data)
    for name, values in state.items():   # moments, velocities, step counts: all as they were
        for before, after in zip(values, getattr(optimizer, name)):
            if before is None or isinstance(before, int):
                assert after == before, name
            else:
                np.testing.assert_array_equal(after, before, err_msg=name)


@ALL_OPTIMIZERS
@pytest.mark.parametrize("bad_grad", [np.ones(4, np.float32), np.float32(2.0)], ids=["another shape", "a scalar"])
def test_a_gradient_of_another_shape_than_its_parameter_is_refused_before_anything_changes(make, bad_grad):
    """The first parameter's gradient is fine, the second's is not: Adam's passes over all parameters at
    once used to update the first parameter's moment before failing on the second, and a scalar gradient
    was broadcast over the whole parameter."""
    optimizer = _stepped_twice(make)
    optimizer.params[1].grad = Variable(np.asarray(bad_grad))
    _assert_a_failed_step_changes_nothing(
        optimizer, rf"{type(optimizer).__name__}\.step: the gradient of parameter 1 \('W'\) "
                   rf"has shape {re.escape(str(np.shape(bad_grad)))}, the parameter \(2, 2\)")


@ALL_OPTIMIZERS
def test_a_gradient_that_is_not_a_variable_is_refused_before_anything_changes(make):
    """param.grad = array (not Variable(array)): SGD updated the first parameter, then failed on the second
    with a TypeError about a memoryview; Momentum and Adam took the array's buffer as the gradient."""
    optimizer = _stepped_twice(make)
    optimizer.params[1].grad = np.ones((2, 2), np.float32)
    _assert_a_failed_step_changes_nothing(
        optimizer, rf"^{type(optimizer).__name__}\.step: the gradient of parameter 1 \('W'\) is a ndarray, "
                   r"not a Variable \(the parameter has shape \(2, 2\)\): set param\.grad = Variable\(array\); "
                   r"nothing was updated$", TypeError)


@pytest.mark.parametrize("total_steps", [0, -3, float("nan")])
def test_cosine_lr_refuses_a_total_that_is_not_positive(total_steps):
    with pytest.raises(ValueError, match=f"cosine_lr: total_steps must be positive, got {total_steps}"):
        cosine_lr(0.1, 5, total_steps)


# --- a step between a forward pass and its backward pass ------------------------------------------------------------
OPTIMIZERS = {"SGD": SGD, "Momentum": Momentum, "Adam": Adam, "AdamW": AdamW}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_backward_through_a_graph_built_before_a_step_that_changed_its_weights_is_refused(name):
    """Two losses computed, then backward, step, backward: the second pass read the stepped weights in a
    graph built with the old ones, and gave wrong gradients silently (PyTorch raises)."""
    layer = Linear(3, in_size=2)
    x = np.random.default_rng(0).standard_normal((4, 2)).astype(np.float32)
    optimizer = OPTIMIZERS[name](layer.params(), lr=0.1)
    first, second = (layer(x) ** 2).sum(), layer(x).sum()
    first.backward()
    optimizer.step()
    optimizer.zero_grad()
    with pytest.raises(RuntimeError, match=r"backward: variable 'W' \(shape \(2, 3\)\) was changed by an optimizer "
                                           r"step \(or loaded weights\) after Linear used it.*call backward\(\) "
                                           r"before step\(\)"):
        second.backward()
    optimizer.zero_grad()
    layer(x).sum().backward()   # a graph built after the step: fine
    optimizer.step()


def test_the_gan_order_of_steps_passes_and_its_mistake_is_refused():
    """The discriminator's step between G's forward pass and G's backward pass is what train_gan does: D's output
    is recomputed after D's step, so G's loss goes through the new D. Reusing D's output from before the step
    (a common mistake) is refused."""
    generator, discriminator = Linear(2, in_size=2), Linear(1, in_size=2)
    g_optimizer, d_optimizer = Adam(generator.params()), Adam(discriminator.params())
    z = np.ones((4, 2), np.float32)
    fake = generator(z)
    d_out = discriminator(fake.data)
    d_out.sum().backward()
    d_optimizer.step()
    discriminator(fake).sum().backward()   # through the updated D: fine, fake was made by G before no G step
    g_optimizer.step()
    g_optimizer.zero_grad()
    d_optimizer.zero_grad()
    fake = generator(z)
    stale = discriminator(fake)            # D's output before D's step ...
    discriminator(fake.data).sum().backward()
    d_optimizer.step()
    with pytest.raises(RuntimeError, match=r"changed by an optimizer step \(or loaded weights\) after Linear used it"):
        stale.sum().backward()             # ... used for G's step after it


def test_a_graph_built_before_weights_are_loaded_is_refused_by_backward(tmp_path):
    """load_weights and load_checkpoint between a forward pass and its backward pass: backward read
    the loaded weights inside the old graph (wrong gradients, silently), as after a step. A graph
    built after the load is fine."""
    layer = Linear(3, in_size=2)
    x = np.ones((4, 2), np.float32)
    layer.save_weights(tmp_path / "w.npz")
    save_checkpoint(tmp_path / "c.npz", layer)
    for load in (lambda: layer.load_weights(tmp_path / "w.npz"), lambda: load_checkpoint(tmp_path / "c.npz", layer)):
        loss = layer(x).sum()
        load()
        with pytest.raises(RuntimeError, match=r"variable 'W' \(shape \(2, 3\)\) was changed by an optimizer step "
                                               r"\(or loaded weights\) after Linear used it"):
            loss.backward()
        layer.cleargrads()
        layer(x).sum().backward()   # built after the load
        assert layer.W.grad is not None
        layer.cleargrads()


def test_a_step_of_another_model_or_without_a_gradient_leaves_a_graph_usable():
    """Only the parameters a step changed are stamped: one optimizer's step does not refuse another model's
    graph, and a parameter without a gradient (skipped by the step) keeps its graphs usable."""
    a, b = Linear(2, in_size=2), Linear(2, in_size=2)
    x = np.ones((3, 2), np.float32)
    optimizer_a = SGD(a.params(), lr=0.1)
    loss_b = b(x).sum()
    a(x).sum().backward()
    optimizer_a.step()
    loss_b.backward()                       # b was not stepped
    assert b.W.grad is not None
    both = SGD([a.W, b.W], lr=0.1)
    b.cleargrads()
    loss_b = b(x).sum()
    a(x).sum().backward()                   # a.W and a.b have gradients, b.W none
    a.b.cleargrad()
    both.step()                             # changes a.W only
    loss_b.backward()
    assert b.W.grad is not None
