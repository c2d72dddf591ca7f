"""Block-sparse attention (MoBA-style selection, 1/8 of the key blocks) against PyTorch's fused causal
SDPA on CPU: forward + backward time at growing sequence lengths.

    .venv/bin/python benchmarks/block_sparse_attention.py            # T = 512, 2048, 8192
    .venv/bin/python benchmarks/block_sparse_attention.py --quick    # a smoke run, small T

Shapes: batch 1, 4 heads, head_dim 64, float32, causal, key blocks of 64. Each query block picks
top_k = n_blocks / 8 key blocks (its own block forced, the rest by the gate mean(q_block) ·
mean(k_block), never the future) and attends to them with `block_sparse_attention`, which gathers
the selected key/value blocks and runs the fused SDPA kernel on each query block against them:
O(T · T/8) work against causal SDPA's O(T²/2), so the ideal speed-up is 4x; gathering (and
scattering the gradients back), the block mask and many small attentions eat part of it.
The selection (a top-k without gradient) is included in the timing.

Time: median of `--repeats` forward+backward passes after one warm-up round, the two methods taking
turns, one thread (`--threads`).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from bestiary.layers.sparse_attention import (
    block_sparse_attention,
    causal_block_candidates,
    mean_pool_blocks,
    select_blocks,
)

HEADS, HEAD_DIM, BLOCK, DENSITY = 4, 64, 64, 1 / 8


def select_query_blocks(q: torch.Tensor, k: torch.Tensor, top_k: int) -> torch.Tensor:
    """One selection per query block: (B, H, n_blocks, top_k) key-block indices, -1 where unused."""
    with torch.no_grad():
        n = q.shape[-2] // BLOCK
        gate = mean_pool_blocks(q, BLOCK) @ mean_pool_blocks(k, BLOCK).transpose(-2, -1)  # (B, H, n, n)
        selectable, forced = causal_block_candidates(torch.arange(n) * BLOCK, n, BLOCK)
        selected = select_blocks(gate, top_k, selectable, forced)  # (B, H, n, n) bool
        order = selected.to(torch.int8).argsort(dim=-1, descending=True, stable=True)[..., :top_k]
        return torch.where(selected.gather(-1, order), order, -1)


def sparse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    top_k = max(1, round(q.shape[-2] // BLOCK * DENSITY))
    return block_sparse_attention(q, k, v, select_query_blocks(q, k, top_k), BLOCK)


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def time_forward_backward(methods: dict, T: int, repeats: int) -> dict[str, float]:
    """Median forward+backward seconds of each method; the methods take turns within each repeat, so
    a load change on a shared machine hits them alike."""
    q, k, v = (torch.randn(1, HEADS, T, HEAD_DIM, requires_grad=True) for _ in range(3))
    times: dict[str, list[float]] = {name: [] for name in methods}
    for i in range(repeats + 1):
        for name, method in methods.items():
            start = time.perf_counter()
            method(q, k, v).sum().backward()
            if i:  # the first round is a warm-up
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small T, one repeat: a smoke run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lengths, repeats = ((256, 512), 1) if args.quick else ((512, 2048, 8192), args.repeats)
    print(f"forward+backward, batch 1, {HEADS} heads, head_dim {HEAD_DIM}, blocks of {BLOCK}, density 1/8")
    print("| T | causal SDPA (s) | block-sparse (s) | speed-up |")
    print("|---|---|---|---|")
    for T in lengths:
        t = time_forward_backward({"sdpa": sdpa, "sparse": sparse}, T, repeats)
        print(f"| {T} | {t['sdpa']:.4f} | {t['sparse']:.4f} | {t['sdpa'] / t['sparse']:.2f}x |")


if __name__ == "__main__":
    main()
