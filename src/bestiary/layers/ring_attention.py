"""Exact attention computed one key block at a time: the online softmax, and the ring that passes
key/value blocks between processes.

Papers: "Self-attention Does Not Need O(n^2) Memory" (Rabe & Staats, 2021, arXiv:2112.05682) and
FlashAttention (Dao et al., 2022, arXiv:2205.14135) for the online softmax; "Ring Attention with
Blockwise Transformers for Near-Infinite Context" (Liu, Zaharia & Abbeel, 2023, arXiv:2310.01889)
for the ring.

softmax(s) v over all keys can be accumulated block by block. Keep, per query row, the largest
score seen so far m, the sum of exp(s - m) so far l, and the weighted sum of values so far o. A new
block of scores s_b with maximum m_b gives m' = max(m, m_b), and the old sums are rescaled by
exp(m - m'):

    o <- o exp(m - m') + exp(s_b - m') v_b        l <- l exp(m - m') + sum exp(s_b - m')

After the last block, o / l is exactly softmax attention: no (T x T) matrix ever exists.

The ring: with the sequence split over P processes (rank r holds queries, keys and values of
positions r*T/P .. (r+1)*T/P), each process attends to its own key block, then passes its keys and
values to rank r+1 and receives rank r-1's, P-1 times. Sending the next block overlaps with
computing the current one, and each process holds only 2 blocks of keys and values at a time, so
the longest context grows with the number of devices. Causal: a query block skips key blocks from
later ranks and masks the diagonal block.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


class OnlineSoftmax:
    """Running (o, l, m) for queries q (B, H, Tq, D); `add` one key/value block at a time."""

    def __init__(self, q: torch.Tensor, scale: float | None = None):
        self.q = q
        self.scale = q.shape[-1] ** -0.5 if scale is None else scale
        B, H, Tq, _ = q.shape
        self.out = torch.zeros_like(q)  # o: unnormalised weighted sum of values
        self.row_sum = q.new_zeros(B, H, Tq, 1)  # l
        self.row_max = q.new_full((B, H, Tq, 1), float("-inf"))  # m

    def add(self, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor | None = None) -> None:
        """Fold in a block of keys/values (B, H, Tk, D); keep (Tq, Tk) bool masks scores out."""
        scores = self.q @ k.transpose(-2, -1) * self.scale  # (B, H, Tq, Tk)
        if keep is not None:
            scores = scores.masked_fill(~keep, float("-inf"))
        new_max = torch.maximum(self.row_max, scores.amax(dim=-1, keepdim=True))
        # rows that have seen only masked scores keep max -inf: use 0 there so exp() gives 0, not NaN
        safe_max = torch.where(torch.isinf(new_max), torch.zeros_like(new_max), new_max)
        rescale = torch.exp(self.row_max - safe_max)  # exp(m - m'), 0 while nothing was seen
        weights = torch.exp(scores - safe_max)  # (B, H, Tq, Tk)
        self.out = self.out * rescale + weights @ v
        self.row_sum = self.row_sum * rescale + weights.sum(dim=-1, keepdim=True)
        self.row_max = new_max

    def result(self) -> torch.Tensor:
        """softmax attention output (B, H, Tq, D)."""
        return self.out / self.row_sum


def _causal_keep(n: int, device: torch.device) -> torch.Tensor:
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


def blockwise_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, block_size: int, causal: bool = True
) -> torch.Tensor:
    """Exact attention over key blocks of `block_size`, in one process: the ring's arithmetic
    without the communication. q, k, v (B, H, T, D) -> (B, H, T, D)."""
    T = q.shape[-2]
    outputs = []
    for q_start in range(0, T, block_size):
        q_block = q[..., q_start : q_start + block_size, :]
        state = OnlineSoftmax(q_block)
        for k_start in range(0, T, block_size):
            if causal and k_start > q_start:
                break  # every key in this block and after is in the future
            k_block, v_block = (
                k[..., k_start : k_start + block_size, :],
                v[..., k_start : k_start + block_size, :],
            )
            keep = None
            if causal and k_start == q_start:  # the diagonal block: causal inside
                keep = _causal_keep(q_block.shape[-2], q.device)[:, : k_block.shape[-2]]
            state.add(k_block, v_block, keep)
        outputs.append(state.result())
    return torch.cat(outputs, dim=-2)


def ring_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = True,
    group: dist.ProcessGroup | None = None,
) -> torch.Tensor:
    """This rank's block of exact attention over the whole sequence, split over the ranks of
    `group` in rank order. q, k, v (B, H, T_local, D), every rank the same T_local -> (B, H, T_local, D).

    Forward only: autograd does not flow through send/recv (a training version runs the ring again
    backwards, passing gradients of k and v; see the paper's Algorithm 1)."""
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    send_to, receive_from = (rank + 1) % world, (rank - 1) % world
    if group is not None:  # P2P ops address global ranks
        send_to, receive_from = (
            dist.get_global_rank(group, send_to),
            dist.get_global_rank(group, receive_from),
        )
    state = OnlineSoftmax(q)
    block_k, block_v = k.contiguous(), v.contiguous()
    for step in range(world):
        owner = (rank - step) % world  # whose keys we hold at this step
        pending = []
        if step < world - 1:  # start passing our current block on while we compute with it
            next_k, next_v = torch.empty_like(block_k), torch.empty_like(block_v)
            ops = [
                dist.P2POp(dist.isend, block_k, send_to, group),
                dist.P2POp(dist.isend, block_v, send_to, group),
                dist.P2POp(dist.irecv, next_k, receive_from, group),
                dist.P2POp(dist.irecv, next_v, receive_from, group),
            ]
            pending = dist.batch_isend_irecv(ops)
        if not causal or owner < rank:
            state.add(block_k, block_v)
        elif owner == rank:
            state.add(block_k, block_v, _causal_keep(q.shape[-2], q.device))
        # owner > rank: keys from the future of every local query, skipped
        for request in pending:
            request.wait()
        if pending:
            block_k, block_v = next_k, next_v
    return state.result()
