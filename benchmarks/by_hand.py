"""Pieces of the benchmarks' hand-written NumPy trainers (the "NumPy by hand" floor: the same
arithmetic as zero's, with no engine around it)."""
import math

import numpy as np


def adam_by_hand(params, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """zero.optimizers.Adam's in-place passes written out: a function step(grads) that updates the
    arrays `params` in place, one gradient array each, in the same order."""
    means, variances, scratch = ([np.zeros_like(p) for p in params] for _ in range(3))
    steps = [0]

    def step(grads):
        steps[0] += 1
        t = steps[0]
        root_bias2 = math.sqrt(1 - beta2 ** t)
        for p, g, m, v, s in zip(params, grads, means, variances, scratch):
            m -= g                  # m <- b1 m + (1 - b1) g
            m *= beta1
            m += g
            np.square(g, out=s)     # v <- b2 v + (1 - b2) g^2
            s *= 1 - beta2
            v *= beta2
            v += s
            np.sqrt(v, out=s)       # p <- p - lr_t m / (sqrt(v) + eps_t)
            s += eps * root_bias2
            np.divide(m, s, out=s)
            s *= -lr * root_bias2 / (1 - beta1 ** t)
            p += s
    return step
