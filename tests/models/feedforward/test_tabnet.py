"""TabNet: masks on the simplex, the paper's prior and step weights, shared GLU layers, ghost batch
norm, and the informative feature picked on a small task."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ff_helpers import accuracy, fit
from torch import nn

import bestiary
from bestiary.models.feedforward.tabnet import GhostBatchNorm, TabNetOutput, tabnet_loss


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
    torch.testing.assert_close(out.step_weights, torch.stack(eta, dim=1))  # (B, n_steps): eta_b per step
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
    fit(model, X, y, steps=60, lr=0.02, loss_fn=lambda out, y: tabnet_loss(out, y, 1e-3))
    out = model.eval()(X)
    assert accuracy(out.logits, y) > 0.9
    importance = out.feature_importance.mean(0)
    assert importance.argmax() == 0 and importance[0] > 0.5, importance


def test_tabnet_rejects_bad_configs():
    with pytest.raises(ValueError, match="gamma"):
        bestiary.build("tabnet", gamma=0.5)
    with pytest.raises(ValueError, match="GLU"):
        bestiary.build("tabnet", n_shared=0, n_independent=0)
