"""Pieces of the benchmarks' hand-written NumPy trainers (the "NumPy by hand" floor: the same
arithmetic as zero's, with no engine around it)."""
import math

import numpy as np


def adam_by_hand(params, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """zero.optimizers.Adam's in-place passes written out: a function step(grads) that updates the
    arrays `params` in place, one gradient array each, in the same order. As zero's Adam does, it
    keeps all moments in one flat array each (views per parameter), so the passes that involve no
    gradient run once over all parameters."""
    sizes = [p.size for p in params]
    flat = [np.zeros(sum(sizes), params[0].dtype) for _ in range(3)]   # means, variances, scratch
    bounds = np.cumsum([0] + sizes)

    def parts(array):
        return [array[a:b].reshape(p.shape) for a, b, p in zip(bounds[:-1], bounds[1:], params)]
    mean_parts, scratch_parts = parts(flat[0]), parts(flat[2])
    steps = [0]

    def step(grads):
        means, variances, scratch = flat
        steps[0] += 1
        t = steps[0]
        root_bias2 = math.sqrt(1 - beta2 ** t)
        for m, g in zip(mean_parts, grads):   # m <- b1 m + (1 - b1) g
            m -= g
        means *= beta1
        for m, s, g in zip(mean_parts, scratch_parts, grads):
            m += g
            np.square(g, out=s)               # v <- b2 v + (1 - b2) g^2
        scratch *= 1 - beta2
        variances *= beta2
        variances += scratch
        np.sqrt(variances, out=scratch)       # p <- p - lr_t m / (sqrt(v) + eps_t)
        scratch += eps * root_bias2
        np.divide(means, scratch, out=scratch)
        scratch *= -lr * root_bias2 / (1 - beta1 ** t)
        for p, s in zip(params, scratch_parts):
            p += s
    return step
