"""Shared by the xLSTM tests: build the reference package's xLSTMLMModel (`xlstm`, backend="vanilla")
for one of our xLSTM-family models and copy its weights into ours.

The reference stores LayerNorm scales as 1 + w (a "residual weight"), the sLSTM's recurrent
matrices and biases in a kernel layout, and fuses the MLP's gate and up projections; its sLSTM
layer feeds the tensor named `fgate` into the input-gate slot and `igate` into the forget-gate slot.
The copy undoes each of these."""

import pytest
import torch


def reference_lm(d_model, n_layers, n_heads, slstm_at, vocab_size=64, kernel_size=4, qkv_block_size=4):
    """The reference xLSTMLMModel (float64, eval, random weights) for our config."""
    pytest.importorskip("xlstm")
    from xlstm import (
        FeedForwardConfig,
        mLSTMBlockConfig,
        mLSTMLayerConfig,
        sLSTMBlockConfig,
        sLSTMLayerConfig,
        xLSTMLMModel,
        xLSTMLMModelConfig,
    )

    has_mlstm = len(slstm_at) < n_layers
    config = xLSTMLMModelConfig(
        mlstm_block=mLSTMBlockConfig(
            mlstm=mLSTMLayerConfig(
                conv1d_kernel_size=kernel_size, qkv_proj_blocksize=qkv_block_size, num_heads=n_heads
            )
        )
        if has_mlstm
        else None,
        slstm_block=sLSTMBlockConfig(
            slstm=sLSTMLayerConfig(backend="vanilla", num_heads=n_heads, conv1d_kernel_size=kernel_size),
            feedforward=FeedForwardConfig(proj_factor=1.3, act_fn="gelu"),
        ),
        context_length=64,
        num_blocks=n_layers,
        embedding_dim=d_model,
        slstm_at=list(slstm_at),
        vocab_size=vocab_size,
    )
    torch.manual_seed(0)
    model = xLSTMLMModel(config).double().eval()
    with torch.no_grad():  # random everything, recurrent matrices included (they start at zero)
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return model


def copy_reference_weights(ours, theirs):
    """Load the reference LM's weights into our mlstm / slstm / xlstm model."""
    mine = {}
    for i, block in enumerate(theirs.xlstm_block_stack.blocks):
        ref, ours_prefix = block.xlstm, f"blocks.{i}."
        mine[ours_prefix + "mixer_norm.weight"] = 1 + block.xlstm_norm.weight
        if hasattr(ref, "mlstm_cell"):
            cell = ref.mlstm_cell
            names = {
                "up.weight": ref.proj_up.weight,
                "conv.conv.weight": ref.conv1d.conv.weight,
                "conv.conv.bias": ref.conv1d.conv.bias,
                "q_proj.weight": ref.q_proj.weight,
                "k_proj.weight": ref.k_proj.weight,
                "v_proj.weight": ref.v_proj.weight,
                "input_gate.weight": cell.igate.weight,
                "input_gate.bias": cell.igate.bias,
                "forget_gate.weight": cell.fgate.weight,
                "forget_gate.bias": cell.fgate.bias,
                "norm_weight": 1 + cell.outnorm.weight,
                "skip": ref.learnable_skip,
                "down.weight": ref.proj_down.weight,
            }
        else:
            cell = ref.slstm_cell
            kernel = cell._recurrent_kernel_int2ext(cell._recurrent_kernel_)  # (H, in, gate, out)
            bias = cell._bias_int2ext(cell._bias_)  # (H, gate, Dh)
            names = {
                "conv.conv.weight": ref.conv1d.conv.weight,
                "conv.conv.bias": ref.conv1d.conv.bias,
                "input_gate.weight": ref.fgate.weight,  # sic: the reference's fgate feeds the input gate
                "forget_gate.weight": ref.igate.weight,
                "cell_input.weight": ref.zgate.weight,
                "output_gate.weight": ref.ogate.weight,
                "recurrent": kernel.permute(2, 0, 1, 3),  # (gate, H, in, out)
                "bias": bias.permute(1, 0, 2).reshape(4, -1),
                "norm_weight": 1 + ref.group_norm.weight,
            }
            gate, up = block.ffn.proj_up.weight.chunk(2, dim=0)
            mine[ours_prefix + "mlp_norm.weight"] = 1 + block.ffn_norm.weight
            mine[ours_prefix + "mlp.gate.weight"] = gate
            mine[ours_prefix + "mlp.up.weight"] = up
            mine[ours_prefix + "mlp.down.weight"] = block.ffn.proj_down.weight
        mine.update({ours_prefix + "mixer." + k: v for k, v in names.items()})
    mine["tok_embed.weight"] = theirs.token_embedding.weight
    mine["norm.weight"] = 1 + theirs.xlstm_block_stack.post_blocks_norm.weight
    mine["norm.bias"] = torch.zeros_like(mine["norm.weight"])  # the reference's final norm has none
    mine["lm_head.weight"] = theirs.lm_head.weight
    state = ours.state_dict()
    assert set(mine) == set(state), set(mine) ^ set(state)
    ours.load_state_dict({k: v.detach().clone() for k, v in mine.items()})


def reference_step_logits(theirs, tokens):
    """The reference's token-by-token path (its recurrent step; its mLSTM starts from m = 0 as ours)."""
    state, steps = None, []
    with torch.no_grad():
        for t in range(tokens.shape[1]):
            logits, state = theirs.step(tokens[:, t : t + 1], state=state)
            steps.append(logits)
    return torch.cat(steps, dim=1)
