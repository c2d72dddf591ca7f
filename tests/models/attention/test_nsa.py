"""NSA: the whole mixer equals the paper's equations written per query in float64 (compress, select,
slide, gate); the selection branch with every block is full causal attention; the selection takes
the blocks with the largest group-summed compressed scores; cached decoding equals the full forward."""

import pytest
import torch
import torch.nn.functional as F
from attention_zoo_helpers import assert_cached_equals_full

import bestiary
from bestiary.models.attention.nsa import NSAAttention

D, H, HKV, BS = 16, 4, 2, 3


def _mixer(top_k=3, window=4):
    torch.manual_seed(0)
    mixer = NSAAttention(D, H, n_kv_heads=HKV, block_size=BS, top_k=top_k, window=window).double()
    with torch.no_grad():
        mixer.gate_proj.bias.normal_()  # distinct gates per branch
    return mixer


def _naive_nsa(mixer, x):
    """The paper's equations, one query and one head at a time."""
    B, T, _ = x.shape
    dh, groups = D // H, H // HKV
    q = mixer.q_proj(x).view(B, T, H, dh)
    k = mixer.k_proj(x).view(B, T, HKV, dh)
    v = mixer.v_proj(x).view(B, T, HKV, dh)
    gates = torch.sigmoid(mixer.gate_proj(x)).view(B, T, H, 3)
    out = torch.zeros(B, T, H, dh, dtype=x.dtype)

    def attend(query, keys, values):
        if len(keys) == 0:
            return torch.zeros(dh, dtype=x.dtype), torch.zeros(0, dtype=x.dtype)
        p = torch.softmax(torch.stack(keys) @ query / dh**0.5, dim=0)
        return p @ torch.stack(values), p

    for b in range(B):
        for t in range(T):
            n_complete = (t + 1) // BS  # blocks wholly at or before t
            for kv in range(HKV):
                cmp_k = [
                    mixer.compress_k((k[b, j * BS : (j + 1) * BS, kv] + mixer.block_pos).flatten())
                    for j in range(n_complete)
                ]
                cmp_v = [
                    mixer.compress_v((v[b, j * BS : (j + 1) * BS, kv] + mixer.block_pos).flatten())
                    for j in range(n_complete)
                ]
                heads = range(kv * groups, (kv + 1) * groups)
                results = {h: attend(q[b, t, h], cmp_k, cmp_v) for h in heads}
                importance = sum(results[h][1] for h in heads)  # shared by the group
                own = t // BS
                forced = {0, own, max(own - 1, 0)}
                ranked = sorted(range(n_complete), key=lambda j: -float(importance[j]))
                chosen = set(forced)
                for j in ranked:
                    if len(chosen) >= mixer.top_k:
                        break
                    if j < own - 1:
                        chosen.add(j)
                for h in heads:
                    o_cmp = results[h][0]
                    sel = [j for j in range(t + 1) if j // BS in chosen]
                    o_slc, _ = attend(q[b, t, h], [k[b, j, kv] for j in sel], [v[b, j, kv] for j in sel])
                    win = range(max(0, t - mixer.window + 1), t + 1)
                    o_win, _ = attend(q[b, t, h], [k[b, j, kv] for j in win], [v[b, j, kv] for j in win])
                    g = gates[b, t, h]
                    out[b, t, h] = g[0] * o_cmp + g[1] * o_slc + g[2] * o_win
    return mixer.out_proj(out.reshape(B, T, D))


def test_nsa_equals_the_papers_equations_per_query():
    mixer = _mixer(top_k=4, window=4)  # 20 positions, 7 blocks: 3 forced, 1 chosen from up to 4
    x = torch.randn(2, 20, D, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(mixer(x), _naive_nsa(mixer, x))


def _heads(mixer, x):
    B, T, _ = x.shape
    q = mixer.q_proj(x).view(B, T, H, D // H).transpose(1, 2)
    k = mixer.k_proj(x).view(B, T, HKV, D // H).transpose(1, 2)
    v = mixer.v_proj(x).view(B, T, HKV, D // H).transpose(1, 2)
    return q, k, v


def test_selection_branch_with_every_block_is_full_causal_attention():
    mixer = _mixer(top_k=5)  # 13 positions: 5 blocks of 3
    x = torch.randn(2, 13, D, dtype=torch.float64)
    q, k, v = _heads(mixer, x)
    _, o_slc, _ = mixer.branches(q, k, v, start=0)
    full = F.scaled_dot_product_attention(
        q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), is_causal=True
    )
    torch.testing.assert_close(o_slc, full)


def test_gates_mix_the_three_branches():
    mixer = _mixer()
    x = torch.randn(1, 10, D, dtype=torch.float64)
    q, k, v = _heads(mixer, x)
    o_cmp, o_slc, o_win = mixer.branches(q, k, v, start=0)
    with torch.no_grad():  # gates pinned to (1, 0, 0), (0, 1, 0), (0, 0, 1): each branch alone
        for branch, expected in enumerate((o_cmp, o_slc, o_win)):
            mixer.gate_proj.weight.zero_()
            mixer.gate_proj.bias.fill_(-1e3)
            mixer.gate_proj.bias.view(H, 3)[:, branch] = 1e3
            got = mixer(x)
            want = mixer.out_proj(expected.transpose(1, 2).reshape(1, 10, D))
            torch.testing.assert_close(got, want)


def test_selection_takes_the_largest_group_summed_compressed_scores():
    mixer = _mixer(top_k=4)
    probs = torch.zeros(1, H, 1, 6, dtype=torch.float64)
    # group 0 = heads 0, 1: block scores summed are [., 0.1+0, 0.5+0.4, 0.2+0, 0.3+0.3, .]
    probs[0, 0, 0] = torch.tensor([0.0, 0.1, 0.5, 0.2, 0.3, 0.0])
    probs[0, 1, 0] = torch.tensor([0.0, 0.0, 0.4, 0.0, 0.3, 0.0])
    selected = mixer.select(probs, t_key=21, positions=torch.tensor([20]))  # position 20: block 6 of 7
    # forced: block 0, own block 6, previous block 5; one more: block 2 (0.9) beats 4 (0.6)
    assert selected[0, 0, 0].nonzero().flatten().tolist() == [0, 2, 5, 6]
    assert torch.equal(selected[0, 0], selected[0, 1])  # one selection per GQA group


def test_cached_decoding_equals_the_full_forward():
    torch.manual_seed(0)
    model = bestiary.build("nsa", tiny=True).double().eval()
    tokens = torch.randint(0, 64, (2, 13))
    with torch.no_grad():
        assert_cached_equals_full(model, tokens, split=4)


def test_bad_head_counts_are_refused():
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        NSAAttention(16, 4, n_kv_heads=3, block_size=2, top_k=2, window=2)
    with pytest.raises(ValueError, match="divisible by n_heads"):
        NSAAttention(18, 4, block_size=2, top_k=2, window=2)
