"""TTT-E2E. Oracle: the inner step is SGD on the language-modelling loss, so a plain re-computation
is the reference: the second mini-batch's logits equal those of the same network whose fast MLP
holds W_1 = W_0 - lr * autograd's gradient of the first mini-batch's loss. The outer gradient
goes through the inner step (checked against finite differences, float64); the cache continues the
sequence; batch rows have their own fast weights."""

import torch
import torch.nn.functional as F

import bestiary

B_SIZE = 4  # mini_batch_size


def _model(**overrides):
    torch.manual_seed(0)
    options = dict(
        vocab_size=32,
        d_model=16,
        n_layers=2,
        n_heads=2,
        d_ff=24,
        sliding_window=3,
        mini_batch_size=B_SIZE,
        inner_lr=0.5,
        norm="layernorm",
        **overrides,
    )  # LayerNorm: float64 throughout
    model = bestiary.build("ttt_e2e", **options).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4)  # std 0.08: logits that depend visibly on the weights
    return model


def _plain_logits(model, tokens, fast):
    """The network as an ordinary transformer whose last MLP has the given (unbatched) weights."""
    cache = model.init_cache(tokens.shape[0])
    x = model.tok_embed(tokens)
    for block, layer_cache in zip(model.blocks, cache.layers):
        if hasattr(block.mlp, "initial"):
            x = x + block.mixer(block.mixer_norm(x), cache=layer_cache)
            gate, up, down = fast
            h = block.mlp_norm(x)
            x = x + F.linear(F.silu(F.linear(h, gate)) * F.linear(h, up), down)
        else:
            x = block(x, cache=layer_cache)
    return model.lm_head(model.norm(x))


def test_second_mini_batch_is_read_by_the_mlp_after_one_sgd_step():
    model = _model(ttt_layers=1)  # only the last MLP learns: mini-batch 1's keys never depend on it
    tokens = torch.randint(0, 32, (1, 2 * B_SIZE))
    W0 = [
        w.detach().clone().requires_grad_()
        for w in (model.blocks[1].mlp.gate, model.blocks[1].mlp.up, model.blocks[1].mlp.down)
    ]
    first = _plain_logits(model, tokens[:, :B_SIZE], W0)
    loss = F.cross_entropy(first[0, :-1], tokens[0, 1:B_SIZE])
    W1 = [w - 0.5 * g for w, g in zip(W0, torch.autograd.grad(loss, W0))]
    expected = _plain_logits(model, tokens, W1)[:, B_SIZE:]
    with torch.no_grad():
        logits = model(tokens)
    torch.testing.assert_close(logits[:, :B_SIZE], first.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(logits[:, B_SIZE:], expected.detach(), rtol=1e-10, atol=1e-12)


def test_outer_gradient_differentiates_through_the_inner_step():
    """d(loss on mini-batch 2)/dW_0 includes the path through W_1 = W_0 - lr grad(W_0): compare
    with a central finite difference along a random direction."""
    model = _model(ttt_layers=2)
    tokens = torch.randint(0, 32, (1, 2 * B_SIZE))
    W0 = model.blocks[1].mlp.up

    def outer_loss():
        logits = model(tokens)
        return F.cross_entropy(logits[0, B_SIZE:-1], tokens[0, B_SIZE + 1 :])

    (grad,) = torch.autograd.grad(outer_loss(), W0)
    direction, h = torch.randn_like(W0), 1e-4
    with torch.no_grad():
        W0 += h * direction
        plus = outer_loss()
        W0 -= 2 * h * direction
        minus = outer_loss()
        W0 += h * direction
    # rtol 2e-5: the shared RoPE rotates in float32 even for float64 inputs, which limits the finite
    # difference; dropping the second-order term (create_graph=False) changes this derivative ~20x
    torch.testing.assert_close((grad * direction).sum(), (plus - minus) / (2 * h), rtol=2e-5, atol=0)


def test_cache_steps_equal_the_full_sequence():
    model = _model(ttt_layers=2)
    tokens = torch.randint(0, 32, (2, 11))
    with torch.no_grad():
        full = model(tokens)
        cache = model.init_cache(2)
        pieces = [model(tokens[:, :3], cache=cache), model(tokens[:, 3:9], cache=cache)]
        pieces += [model(tokens[:, t : t + 1], cache=cache) for t in range(9, 11)]
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=1e-10, atol=1e-12)
    assert cache.length == 11


def test_each_sequence_learns_only_from_itself():
    model = _model()
    tokens = torch.randint(0, 32, (3, 9))
    with torch.no_grad():
        together = model(tokens)
        alone = model(tokens[1:2])
    torch.testing.assert_close(together[1:2], alone, rtol=1e-10, atol=1e-12)
