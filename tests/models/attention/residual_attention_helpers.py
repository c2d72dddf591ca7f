"""Shared by test_rla.py and test_rdn.py: the residual-linear-attention recurrences as NumPy float64
loops, written from the equations (one head, outer products spelled out)."""

import numpy as np


def np_residual_attention(q, k, v, alpha, beta, gamma, delta, clip):
    """q, k (H, T, Dk), v (H, T, Dv), gates (H, T) -> outputs (H, T, Dv), final (S, R)."""
    H, T, d_k = k.shape
    out = np.zeros((H, T, v.shape[-1]))
    finals = []
    for h in range(H):
        S = np.zeros((v.shape[-1], d_k))
        R = np.zeros_like(S)
        for t in range(T):
            a, b, g, kt = alpha[h, t], beta[h, t], gamma[h, t], k[h, t]
            r = np.clip(v[h, t] - a * S @ kt, -clip, clip)  # the base's error on k_t, before writing
            history = a * S @ q[h, t]  # o_t = α S_{t-1} q_t + R_t q_t
            if delta:
                S = a * S @ (np.eye(d_k) - b * np.outer(kt, kt)) + b * np.outer(v[h, t], kt)
                R = a * R @ (np.eye(d_k) - g * np.outer(kt, kt)) + g * np.outer(r, kt)
            else:
                S = a * S + b * np.outer(v[h, t], kt)
                R = a * R + g * np.outer(r, kt)
            out[h, t] = history + R @ q[h, t]
        finals.append((S, R))
    return out, finals


def random_inputs(rng, H=2, T=6, d=3):
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    q, k = unit(rng.normal(size=(H, T, d))), unit(rng.normal(size=(H, T, d)))
    v = rng.normal(size=(H, T, d)) * 2  # large enough that some residuals are clipped
    gates = [rng.uniform(0.3, 0.95, size=(H, T)) for _ in range(3)]
    return [q, k, v, *gates]
