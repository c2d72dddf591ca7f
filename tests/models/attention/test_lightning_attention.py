"""lightning_attention: the paper's block algorithm (intra-block masked attention + inter-block KV
recurrence) written out naively in float64 gives both contributions; the decays follow
TransNormerLLM's per-layer schedule; the forms agree and decoding keeps a fixed state."""

import torch
import torch.nn.functional as F
from linear_attention_helpers import assert_cached_pieces_equal_the_whole, assert_modes_agree, build_float64

from bestiary.layers.positions import alibi_slopes


def test_intra_and_inter_block_parts_follow_the_papers_algorithm():
    mixer = build_float64("lightning_attention").blocks[0].mixer
    mixer.chunk_size = 3
    B, T, H, Dh, block = 2, 8, 2, 8, 3
    x = torch.randn(B, T, 16, dtype=torch.float64)
    q, k, v = F.silu(mixer.qkv_proj(x)).view(B, T, 3, H, Dh).permute(2, 0, 3, 1, 4)  # (B, H, T, Dh) each
    lam = mixer.log_decay().exp()[:, None, None]  # (H, 1, 1)
    KV = torch.zeros(B, H, Dh, Dh, dtype=torch.float64)
    intra, inter = (
        torch.zeros(B, H, T, Dh, dtype=torch.float64),
        torch.zeros(B, H, T, Dh, dtype=torch.float64),
    )
    for start in range(0, T, block):
        n = min(block, T - start)
        Qb, Kb, Vb = (t[:, :, start : start + n] for t in (q, k, v))
        i = torch.arange(n, dtype=torch.float64)
        M = torch.where(i[:, None] >= i[None, :], lam ** (i[:, None] - i[None, :]), 0.0)  # (H, n, n)
        intra[:, :, start : start + n] = ((Qb @ Kb.transpose(-1, -2)) * M) @ Vb
        inter[:, :, start : start + n] = (lam ** (i[:, None] + 1)) * Qb @ KV  # Lambda = diag(lambda^(t+1))
        KV = lam**n * KV + (lam ** (n - 1 - i[:, None]) * Kb).transpose(-1, -2) @ Vb
    got_intra, got_inter = mixer.contributions(x)
    torch.testing.assert_close(got_intra, intra)
    torch.testing.assert_close(got_inter, inter)
    assert got_inter[:, :, :block].abs().max() == 0 and got_inter[:, :, block:].abs().max() > 0
    out = (intra + inter).transpose(1, 2).reshape(B, T, 16)
    expected = mixer.out_proj(
        F.silu(mixer.gate_proj(x)) * out * torch.rsqrt(out.pow(2).mean(-1, keepdim=True) + 1e-6)
    )
    torch.testing.assert_close(mixer(x), expected)


def test_decay_rises_with_depth():
    model = build_float64("lightning_attention", n_layers=3, n_heads=4, d_model=16)
    decays = [block.mixer.log_decay().exp() for block in model.blocks]
    torch.testing.assert_close(decays[0], torch.exp(-alibi_slopes(4).double() * (1 + 1e-5)))
    assert (
        torch.all(decays[0] < decays[1])
        and torch.all(decays[1] < decays[2])
        and torch.all(decays[2] > 0.9999)
    )


def test_the_three_forms_agree_outputs_and_gradients():
    assert_modes_agree(build_float64("lightning_attention"))


def test_cached_decoding_equals_the_whole():
    before, after = assert_cached_pieces_equal_the_whole(build_float64("lightning_attention"))
    assert before == after
