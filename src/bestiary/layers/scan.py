"""The linear recurrence h_t = a_t * h_{t-1} + b_t, in four equivalent forms.

Mamba's selective SSM, minGRU/minLSTM, HGRN, Griffin's RG-LRU, S5 and LRU all reduce, after their
input-dependent projections, to this one elementwise recurrence over time (a_t: how much of the
past to keep, b_t: what to write). A loop over t is the definition; it is also slow on parallel
hardware, because step t waits for step t-1. The recurrence is *associative*: two steps compose
into one, (a2, b2) o (a1, b1) = (a2 a1, a2 b1 + b2), so it can be computed in parallel:

    scan_sequential    the loop: T dependent steps (the reference; what decoding does one token at a time)
    scan_cumsum        closed form: h_t = A_t (h_0 + sum_{s<=t} b_s / A_s), A_t = a_1 ... a_t, with
                       cumulative products and sums (one cumsum each, fully parallel). 1/A_t grows
                       without bound, so it runs chunk by chunk (`chunk_size`), carrying h between chunks
    scan_hillis_steele log2(T) rounds; round k combines each step with the one 2^k before it
                       (Hillis & Steele, "Data parallel algorithms", 1986): O(T log T) work, log depth
    scan_log_space     for positive a and b (minGRU, minLSTM): the cumsum form in log space, with
                       logcumsumexp, which never overflows (Heinsen, 2023, arXiv:2311.06281)

All take a, b of shape (B, T, ...) (any trailing shape, real or complex for the first three), an
optional initial state h0 (B, ...), and return every h_t, (B, T, ...). Their agreement is tested in
tests/layers/test_scan.py; the speed of each is measured in benchmarks/selective_scan.py.
"""

from __future__ import annotations

import torch


def _with_h0(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None) -> torch.Tensor:
    """Fold the initial state into the first input: h_1 = a_1 h0 + b_1."""
    if h0 is None:
        return b
    b = b.clone()
    b[:, 0] = a[:, 0] * h0 + b[:, 0]
    return b


def scan_sequential(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """h_t = a_t * h_{t-1} + b_t, one step at a time. a, b (B, T, ...) -> h (B, T, ...)."""
    h = torch.zeros_like(b[:, 0]) if h0 is None else h0
    outputs = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        outputs.append(h)
    return torch.stack(outputs, dim=1)


def scan_cumsum(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None, chunk_size: int | None = 64
) -> torch.Tensor:
    """The closed form with cumulative products, chunk by chunk (chunk_size=None: one chunk).

    Within a chunk, A_t = prod_{s<=t} a_s and h_t = A_t * (h_start + cumsum(b / A)_t). Dividing by
    A_t is where it breaks: A_t decays geometrically, so b / A_t overflows for long chunks. Short
    chunks keep A_t away from 0; the state h_start is handed from chunk to chunk (T / chunk_size
    sequential steps instead of T)."""
    T = a.shape[1]
    size = T if chunk_size is None else chunk_size
    h = torch.zeros_like(b[:, 0]) if h0 is None else h0
    outputs = []
    for start in range(0, T, size):
        a_chunk, b_chunk = a[:, start : start + size], b[:, start : start + size]  # (B, L, ...)
        A = torch.cumprod(a_chunk, dim=1)  # (B, L, ...): a_1 a_2 ... a_t within the chunk
        h_chunk = A * (h.unsqueeze(1) + torch.cumsum(b_chunk / A, dim=1))
        outputs.append(h_chunk)
        h = h_chunk[:, -1]
    return torch.cat(outputs, dim=1)


def scan_hillis_steele(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """Inclusive scan in ceil(log2 T) rounds. After round k, (a_t, b_t) is the composition of the
    2^(k+1) steps ending at t, so b_t = h_t once the window covers the whole prefix."""
    b = _with_h0(a, b, h0)
    T, offset = a.shape[1], 1
    while offset < T:
        # step t absorbs step t - offset: (a_t, b_t) o (a_{t-d}, b_{t-d})
        b = torch.cat([b[:, :offset], a[:, offset:] * b[:, :-offset] + b[:, offset:]], dim=1)
        a = torch.cat([a[:, :offset], a[:, offset:] * a[:, :-offset]], dim=1)
        offset *= 2
    return b


def scan_log_space(
    log_a: torch.Tensor, log_b: torch.Tensor, log_h0: torch.Tensor | None = None
) -> torch.Tensor:
    """For positive a, b given as logs: log h_t = log A_t + logcumsumexp(log b - log A)_t.

    Returns log h (B, T, ...). Every term is a log, so nothing over- or underflows (minGRU's
    parallel mode, Feng et al., 2024, arXiv:2410.01201)."""
    log_A = torch.cumsum(log_a, dim=1)  # (B, T, ...)
    terms = log_b - log_A
    if log_h0 is not None:  # h0 enters as a step at t = 0 with A_0 = 1
        terms = torch.cat([log_h0.unsqueeze(1), terms], dim=1)
        return log_A + torch.logcumsumexp(terms, dim=1)[:, 1:]
    return log_A + torch.logcumsumexp(terms, dim=1)
