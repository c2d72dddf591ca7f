"""The feedforward family beyond the registry sweep: KAN, KAT, TabNet, BitNet.

Layer-level oracles (B-splines, rational units, sparsemax, quantisers) are in tests/layers/; here we
check how the models put them together, and that each one learns a small task.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bestiary
from bestiary.data import make_clusters
from bestiary.layers.bitlinear import BitLinear, absmean_quantize
from bestiary.layers.kan import KANLinear
from bestiary.models.feedforward.kat import GRKANMLP
from bestiary.models.feedforward.tabnet import GhostBatchNorm, TabNetOutput, tabnet_loss


def _clusters(n=300, dim=2, seed=0):
    X, y = make_clusters(n, n_classes=3, dim=dim, std=0.5, seed=seed)
    return torch.from_numpy(X), torch.from_numpy(y)


def _fit(model, X, y, steps, lr, loss_fn=None):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        out = model(X)
        loss = loss_fn(out, y) if loss_fn else F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def _accuracy(logits, y):
    return (logits.argmax(-1) == y).float().mean().item()


# ------------------------------------------------------------------------------------------- KAN


def test_kan_is_a_chain_of_kan_layers_without_activations():
    model = bestiary.build("kan", in_dim=3, d_model=5, n_layers=2, num_classes=2)
    assert [type(m) for m in model.layers] == [KANLinear] * 3
    assert [(m.in_dim, m.out_dim) for m in model.layers] == [(3, 5), (5, 5), (5, 2)]
    x = torch.randn(4, 3)
    torch.testing.assert_close(model(x), model.layers[2](model.layers[1](model.layers[0](x))))


def test_kan_fits_a_1d_function_with_its_spline():
    # a single edge (1 -> 1, no hidden layer) must represent sin(pi x) on the grid: only the spline can
    torch.manual_seed(0)
    model = bestiary.build("kan", in_dim=1, n_layers=0, num_classes=1, grid_size=8, grid_range=(-1.0, 1.0))
    x = torch.linspace(-1, 1, 200).unsqueeze(1)
    y = torch.sin(torch.pi * x)
    _fit(model, x, y, steps=300, lr=0.05, loss_fn=F.mse_loss)
    assert F.mse_loss(model(x), y).item() < 1e-3


def test_kan_classifies_clusters():
    torch.manual_seed(0)
    X, y = _clusters()
    model = _fit(bestiary.build("kan"), X, y, steps=100, lr=0.02)
    assert _accuracy(model(X), y) > 0.9


# ------------------------------------------------------------------------------------------- KAT


def test_kat_mlp_starts_as_a_vit_mlp():
    """GR-KAN #1 starts as the identity and #2 as GELU, so the block is Linear -> GELU -> Linear."""
    torch.manual_seed(0)
    mlp = GRKANMLP(d_model=16, d_ff=32, n_groups=4)
    x = torch.randn(2, 5, 16)
    fc1, fc2 = mlp.fc1.linear, mlp.fc2.linear
    reference = fc2(F.gelu(fc1(x)))  # the ViT MLP with the same weights
    hidden = fc1(x)
    assert hidden.abs().max() < 3  # inside the range the GELU fit was made on
    torch.testing.assert_close(mlp(x), reference, rtol=0, atol=2e-3)


def test_kat_patch_embedding_is_patchify_then_linear():
    torch.manual_seed(0)
    model = bestiary.build("kat", tiny=True)
    c = model.config
    x = torch.randn(2, c.in_channels, c.image_size, c.image_size)
    p = c.patch_size
    # cut into p x p patches by hand, row by row: (B, N, C*p*p) with (C, py, px) ordering like the conv weight
    patches = x.unfold(2, p, p).unfold(3, p, p)  # (B, C, H/p, W/p, p, p)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(2, -1, c.in_channels * p * p)  # (B, N, C*p*p)
    weight = model.patch_embed.proj.weight.reshape(c.d_model, -1)  # (d_model, C*p*p)
    by_hand = patches @ weight.T + model.patch_embed.proj.bias  # (B, N, d_model)
    by_conv = model.patch_embed(x)  # (B, N, d_model)
    torch.testing.assert_close(by_conv, by_hand, rtol=1e-5, atol=1e-5)


def test_kat_rejects_bad_configs():
    with pytest.raises(ValueError, match="multiple of patch_size"):
        bestiary.build("kat", image_size=10, patch_size=4)
    with pytest.raises(ValueError, match="n_groups"):
        bestiary.build("kat", d_model=20, n_groups=8)


def test_kat_learns_to_tell_bright_from_dark_quadrants():
    torch.manual_seed(0)
    model = bestiary.build("kat", tiny=True, num_classes=2)
    x = torch.randn(64, 3, 8, 8) * 0.5
    y = torch.randint(0, 2, (64,))
    x[y == 1, :, :4, :4] += 1.0  # class 1: top-left patch is brighter — needs the patch embedding
    _fit(model, x, y, steps=60, lr=3e-3)
    assert _accuracy(model(x), y) > 0.95
    # the rational coefficients are trained too
    assert model.blocks[0].mlp.fc2.act.numerator.grad is not None


# ---------------------------------------------------------------------------------------- TabNet


def test_tabnet_masks_are_sparse_distributions_and_the_loss_is_their_entropy():
    torch.manual_seed(0)
    model = bestiary.build("tabnet", in_dim=6, n_steps=3).eval()
    out = model(3 * torch.randn(32, 6))
    assert isinstance(out, TabNetOutput)
    assert out.logits.shape == (32, 3) and out.masks.shape == (32, 3, 6)
    assert (out.masks >= 0).all()
    torch.testing.assert_close(out.masks.sum(-1), torch.ones(32, 3))
    torch.testing.assert_close(out.feature_importance.sum(-1), torch.ones(32))
    m = out.masks.detach().double().numpy()
    entropy = -(m * np.log(m + 1e-15)).sum(-1).mean()  # mean over batch and steps
    np.testing.assert_allclose(out.sparsity_loss.item(), entropy, rtol=1e-5)
    y = torch.randint(0, 3, (32,))
    torch.testing.assert_close(
        tabnet_loss(out, y, lambda_sparse=0.1), F.cross_entropy(out.logits, y) + 0.1 * out.sparsity_loss
    )


def test_tabnet_prior_and_step_weights_follow_the_paper():
    """Replay the forward with the model's own sub-modules and the paper's equations, written out here."""
    torch.manual_seed(0)
    model = bestiary.build("tabnet", in_dim=5, n_steps=3, gamma=1.5).eval()
    x = torch.randn(8, 5)
    out = model(x)
    c = model.config
    xn = model.input_bn(x)
    prior = torch.ones(8, 5)
    a = model.feature_transformers[0](xn)[:, c.d_model :]
    eta, decision = [], 0
    for i in range(c.n_steps):
        at = model.attentive_transformers[i]
        logits = at.bn(at.fc(a)) * prior
        mask = out.masks[:, i]
        torch.testing.assert_close(mask, bestiary.layers.sparsemax.sparsemax(logits))
        prior = prior * (1.5 - mask)  # P[i] = prod_j (gamma - M[j])
        h = model.feature_transformers[i + 1](mask * xn)
        d = h[:, : c.d_model].relu()
        decision = decision + d
        eta.append(d.sum(1))
        a = h[:, c.d_model :]
    torch.testing.assert_close(out.logits, model.head(decision))
    agg = sum(e[:, None] * out.masks[:, i] for i, e in enumerate(eta))
    torch.testing.assert_close(out.feature_importance, agg / agg.sum(1, keepdim=True))


def test_tabnet_shares_the_first_glu_layers_across_steps():
    model = bestiary.build("tabnet", n_shared=2, n_independent=1, n_steps=3)
    transformers = model.feature_transformers
    for layer in range(2):  # the shared Linear layers are the same objects in every step
        assert all(t.layers[layer].fc is model.shared_fcs[layer] for t in transformers)
    assert transformers[0].layers[2].fc is not transformers[1].layers[2].fc
    assert transformers[0].layers[0].bn is not transformers[1].layers[0].bn  # batch norms are per step


def test_ghost_batch_norm_normalises_each_chunk_separately():
    torch.manual_seed(0)
    gbn = GhostBatchNorm(3, virtual_batch_size=4).train()
    x = torch.randn(10, 3) * 2 + 1  # 10 // 4 = 2 chunks of 5 rows
    out = gbn(x)
    for chunk_in, chunk_out in zip((x[:5], x[5:]), (out[:5], out[5:])):
        mean, var = chunk_in.mean(0), chunk_in.var(0, unbiased=False)
        torch.testing.assert_close(chunk_out, (chunk_in - mean) / torch.sqrt(var + 1e-5))
    # batches smaller than virtual_batch_size are one chunk; eval uses the running statistics
    small = torch.randn(3, 3)
    torch.testing.assert_close(gbn(small), F.batch_norm(small, None, None, training=True))
    gbn.eval()
    torch.testing.assert_close(
        gbn(x[:1]), nn.functional.batch_norm(x[:1], gbn.bn.running_mean, gbn.bn.running_var)
    )


def test_tabnet_picks_the_informative_feature():
    """Only feature 0 decides the class; after training the masks should mostly select it."""
    torch.manual_seed(0)
    X = torch.randn(256, 5)
    y = (X[:, 0] > 0).long()
    model = bestiary.build("tabnet", in_dim=5, num_classes=2, n_steps=2, d_model=8, d_attention=8)
    _fit(model, X, y, steps=60, lr=0.02, loss_fn=lambda out, y: tabnet_loss(out, y, 1e-3))
    out = model.eval()(X)
    assert _accuracy(out.logits, y) > 0.9
    importance = out.feature_importance.mean(0)
    assert importance.argmax() == 0 and importance[0] > 0.5, importance


def test_tabnet_rejects_bad_configs():
    with pytest.raises(ValueError, match="gamma"):
        bestiary.build("tabnet", gamma=0.5)
    with pytest.raises(ValueError, match="GLU"):
        bestiary.build("tabnet", n_shared=0, n_independent=0)


# ---------------------------------------------------------------------------------------- BitNet


def test_bitnet_uses_bitlinear_inside_and_full_precision_at_the_ends():
    model = bestiary.build("bitnet", n_layers=2)
    bitlinears = [m for m in model.modules() if isinstance(m, BitLinear)]
    assert len(bitlinears) == 4
    assert type(model.embed) is nn.Linear and type(model.head) is nn.Linear


def test_bitnet_classifies_clusters_with_ternary_weights():
    torch.manual_seed(0)
    X, y = _clusters()
    model = _fit(bestiary.build("bitnet"), X, y, steps=100, lr=0.01)
    assert _accuracy(model(X), y) > 0.9
    for m in model.modules():
        if isinstance(m, BitLinear):
            w_q, _ = m.quantized_weight()
            assert set(w_q.unique().tolist()) == {-1, 0, 1}


def test_bitnet_forward_sees_only_the_ternary_pattern_and_the_scale():
    """Replace every latent weight by sign-pattern x constant, keeping mean|W| (the scale): the output
    must not change, because the forward pass only ever saw round-clip(W / mean|W|) and mean|W|."""
    torch.manual_seed(0)
    model = bestiary.build("bitnet").eval()
    x = torch.randn(16, 2)
    before = model(x)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, BitLinear):
                w_q, _ = absmean_quantize(m.weight)
                nonzero = w_q.abs().mean()  # fraction of non-zero ternary weights
                m.weight.copy_(w_q * m.weight.abs().mean() / nonzero)  # same pattern, same mean|W|
    torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # and the check can fail: a weight that crosses a rounding boundary matters
        block = model.blocks[0].up
        block.weight[0, 0] = -block.weight[0, 0] * 5
    assert not torch.allclose(model(x), before, rtol=1e-5, atol=1e-5)


def test_kan_refine_grid_then_train_on():
    torch.manual_seed(0)
    model = bestiary.build("kan", in_dim=2, grid_size=3, grid_range=(-1.0, 1.0))
    x = torch.rand(20, 2) * 2 - 1
    before = model(x)
    model.refine_grid(6)
    assert model.config.grid_size == 6 and all(layer.grid_size == 6 for layer in model.layers)
    # the first layer's inputs are inside the grid: exact; later layers may see values outside
    # [-1, 1], where the old and new splines are both extrapolations, so compare loosely
    torch.testing.assert_close(model(x), before, rtol=1e-2, atol=1e-2)
