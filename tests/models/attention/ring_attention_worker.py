"""Run under torchrun with 2 processes: each rank holds half of a sequence's q, k, v; ring
attention over the two halves must equal full causal attention computed in one piece."""

import sys

import torch
import torch.distributed as dist

from bestiary.layers.ring_attention import ring_attention


def main(causal: bool) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)  # every rank draws the same whole sequence
    q, k, v = (torch.randn(2, 3, 8 * world, 16, dtype=torch.float64) for _ in range(3))
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    local = slice(8 * rank, 8 * (rank + 1))  # this rank's block of positions
    out = ring_attention(q[..., local, :], k[..., local, :], v[..., local, :], causal=causal)
    torch.testing.assert_close(out, expected[..., local, :], atol=1e-12, rtol=1e-12)
    gathered = [torch.empty_like(out) for _ in range(world)]
    dist.all_gather(gathered, out)
    torch.testing.assert_close(torch.cat(gathered, dim=-2), expected, atol=1e-12, rtol=1e-12)
    if rank == 0:
        print(f"ring attention over {world} processes equals full attention (causal={causal})")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1] == "causal")
