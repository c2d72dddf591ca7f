"""decoder_only: GPT-2 and Llama against `transformers` with copied weights, GPT-2's initialisation,
the readable attention path, padding, and a copy task it must learn."""

import math

import pytest
import torch
import torch.nn.functional as F
from transformer_helpers import ATOL, token_ids

import bestiary
from bestiary.llm import convert


@pytest.mark.parametrize("manual", [False, True])
def test_gpt2_matches_transformers(manual):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(vocab_size=97, n_positions=32, n_embd=32, n_layer=2, n_head=4)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    attn_impl = "manual" if manual else "sdpa"
    ours = bestiary.build("decoder_only", **convert.gpt2_config(cfg.to_dict()), attn_impl=attn_impl)
    convert.load_weights(ours, convert.gpt2_state_dict(hf.state_dict()))
    ids = token_ids(97)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(ids), hf(ids).logits, atol=ATOL, rtol=1e-4)


def test_gpt2_weights_map_one_tensor_to_one_tensor():
    """Every GPT-2 tensor becomes exactly one of ours, of the same size, and every one of ours is filled
    (the tied lm_head counts once); only Conv1D weights are transposed."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(vocab_size=97, n_positions=32, n_embd=32, n_layer=2, n_head=4)
    hf = {k: v for k, v in transformers.GPT2LMHeadModel(cfg).state_dict().items() if k != "lm_head.weight"}
    ours = convert.gpt2_state_dict(hf)
    assert len(ours) == len(hf)
    for (hf_name, hf_tensor), (name, tensor) in zip(hf.items(), ours.items(), strict=True):
        assert tensor.numel() == hf_tensor.numel(), (hf_name, name)
        transposed = ".c_" in hf_name and hf_name.endswith("weight")
        assert torch.equal(tensor, hf_tensor.t() if transposed else hf_tensor), (hf_name, name)
    model = bestiary.build("decoder_only", **convert.gpt2_config(cfg.to_dict()))
    assert set(ours) == {name for name, _ in model.named_parameters()}
    assert ours["blocks.0.mixer.qkv_proj.weight"].shape == (3 * 32, 32)


@pytest.mark.parametrize("tied", [True, False])
def test_llama_matches_transformers(tied):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(
        vocab_size=101,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=6,
        num_key_value_heads=2,  # GQA, as in SmolLM2
        max_position_embeddings=64,
        rope_theta=1000.0,
        tie_word_embeddings=tied,
    )
    hf = transformers.LlamaForCausalLM(cfg).eval()
    ours = bestiary.build("decoder_only", **convert.llama_config(cfg.to_dict()))
    assert ours.config.rope_theta == 1000.0 and ours.config.n_kv_heads == 2
    convert.load_weights(ours, convert.llama_state_dict(hf.state_dict()))
    ids = token_ids(101, T=12)
    with torch.no_grad():
        expected = hf(ids).logits
        torch.testing.assert_close(ours.eval()(ids), expected, atol=ATOL, rtol=1e-4)
        cache = ours.init_cache(ids.shape[0])  # and with the cache, token by token after a prompt
        steps = [ours(ids[:, :7], cache=cache)] + [ours(ids[:, t : t + 1], cache=cache) for t in range(7, 12)]
        torch.testing.assert_close(torch.cat(steps, 1), expected, atol=ATOL, rtol=1e-4)


# ------------------------------------------------------------------------------------ decoder_only
def test_manual_and_sdpa_paths_give_the_same_logits():
    model = bestiary.build("decoder_only", tiny=True).eval()
    readable = bestiary.build("decoder_only", tiny=True, attn_impl="manual").eval()
    readable.load_state_dict(model.state_dict())
    x = torch.randint(0, 64, (2, 10))
    torch.testing.assert_close(readable(x), model(x), atol=1e-5, rtol=1e-5)


def test_left_padded_batch_matches_unpadded_sequences():
    model = bestiary.build("decoder_only", tiny=True).eval()
    a, b = torch.randint(1, 64, (1, 8)), torch.randint(1, 64, (1, 5))
    batch = torch.cat([a, torch.cat([torch.zeros(1, 3, dtype=torch.long), b], 1)])  # pad b on the left
    keep = torch.ones(2, 8, dtype=torch.bool)
    keep[1, :3] = False
    with torch.no_grad():
        out = model(batch, padding_mask=keep)
        torch.testing.assert_close(out[0], model(a)[0], atol=1e-5, rtol=1e-5)
    # RoPE is relative, so b shifted right by 3 positions gives the same logits as b alone
    torch.testing.assert_close(out[1, 3:], model(b)[0], atol=1e-4, rtol=1e-4)


def test_a_small_decoder_learns_to_copy():
    torch.manual_seed(0)
    model = bestiary.build(
        "decoder_only", vocab_size=12, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=32
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(100):  # sequences "a b c d | a b c d": the second half is predictable
        half = torch.randint(2, 12, (16, 4))
        seq = torch.cat([half, torch.ones(16, 1, dtype=torch.long), half], 1)
        logits = model(seq[:, :-1])
        loss = F.cross_entropy(logits[:, 4:].reshape(-1, 12), seq[:, 5:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 1.0  # chance is log(10) = 2.3; an induction head gets it near 0


def test_gpt2_initialisation_scales_the_residual_projections():
    """GPT-2 (Sec. 2.3): residual-branch output projections start at std 0.02 / sqrt(2 * n_layers),
    every other matrix at 0.02, biases at zero. Measured on the real gpt2 preset (12 layers)."""
    torch.manual_seed(0)
    model = bestiary.build("gpt2", vocab_size=1000)  # the published sizes, a smaller vocabulary
    residual_std = 0.02 / math.sqrt(2 * 12)
    for name, param in model.named_parameters():
        if name.endswith("bias"):
            assert torch.count_nonzero(param) == 0, name
        elif name.endswith(("mixer.out_proj.weight", "mlp.down.weight")):
            assert abs(param.std().item() - residual_std) < 0.03 * residual_std, name
        elif name.endswith(("qkv_proj.weight", "mlp.up.weight", "tok_embed.weight")):
            assert abs(param.std().item() - 0.02) < 0.03 * 0.02, name
