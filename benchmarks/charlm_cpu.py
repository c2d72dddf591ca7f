"""Character-level Shakespeare on CPU: validation loss at equal training time, nanoGPT's baby GPT vs ours.

Reference: nanoGPT's GPT (Karpathy's model.py), written out below in plain PyTorch, at the CPU
settings its README gives for `train_shakespeare_char` (n_layer 4, n_head 4, n_embd 128, block 64,
batch 12, dropout 0, bias False; AdamW lr 1e-3, betas (0.9, 0.99), weight decay 0.1, 100 warm-up
steps then cosine to 1e-4 at 2000 iterations, gradient clipping at 1.0).

Ours: `bestiary.build("decoder_only", ...)` (RoPE, RMSNorm, SwiGLU, SDPA attention, tied embeddings),
smaller (d_model 96, 2 layers: more steps per second), a 5x higher learning rate on a cosine schedule
fitted to the *time budget* (its minimum comes exactly when the budget ends), batches from
`bestiary.data.get_lm_batch`, `bestiary.train.adamw` (decay on matrices only, as nanoGPT, but
PyTorch's fused AdamW kernel, which nanoGPT only enables on CUDA).

Both train on the same ~1.1M characters (`bestiary.data.tiny_shakespeare()`, 90/10 split) for the same
training time and are scored on the same validation windows. The two runs are *interleaved* step by
step, each charged only for its own steps, so both see the same machine load. A first, shorter race
compares raw training throughput at the reference's exact configuration (learned positions, LayerNorm
without bias, GELU MLP, fused q|k|v, no dropout): our model inside the reference's own loop and
optimizer, then inside ours.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/charlm_cpu.py --budget 120 --threads 2

A script, not a test: timings depend on the machine and its load. Latest results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time

import torch
import torch.nn.functional as F
from torch import nn

import bestiary
from bestiary.data import get_lm_batch, tiny_shakespeare
from bestiary.train import adamw, warmup_cosine

BLOCK, BATCH = 64, 12


# ------------------------------------------------------------------------------------------------
# The reference: nanoGPT's GPT, written out in plain PyTorch
# ------------------------------------------------------------------------------------------------
class RefAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (
            t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v)
        )  # (B, H, T, D)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class RefBlock(nn.Module):
    def __init__(self, n_embd: int, n_head: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=False)
        self.attn = RefAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd, bias=False), nn.GELU(), nn.Linear(4 * n_embd, n_embd, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class RefGPT(nn.Module):
    def __init__(
        self, vocab_size: int, n_layer: int = 4, n_head: int = 4, n_embd: int = 128, block: int = BLOCK
    ):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block, n_embd)
        self.h = nn.ModuleList(RefBlock(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=False)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init)
        for name, p in self.named_parameters():  # scaled init of residual projections (GPT-2)
            if name.endswith("c_proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)  # (B, T, C)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))  # (B, T, vocab)


def nanogpt_optimizer(model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float]):
    """AdamW with weight decay on matrices only (nanoGPT's configure_optimizers)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


def nanogpt_lr(
    it: int, lr: float = 1e-3, min_lr: float = 1e-4, warmup: int = 100, decay_iters: int = 2000
) -> float:
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay_iters:
        return min_lr
    ratio = (it - warmup) / (decay_iters - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


# ------------------------------------------------------------------------------------------------
# Training runs, advanced one step at a time so that two runs can be interleaved
# ------------------------------------------------------------------------------------------------
class Run:
    """One training run. `step()` does one optimizer step and adds its duration to `seconds`, so
    two runs stepped alternately share the machine's (noisy, shared) load fairly."""

    def __init__(
        self, model: nn.Module, opt: torch.optim.Optimizer, lr_at, train: torch.Tensor, block: int, batch: int
    ):
        self.model, self.opt, self.lr_at = model, opt, lr_at
        self.train, self.block, self.batch = train, block, batch
        self.gen = torch.Generator().manual_seed(1)
        self.iters, self.seconds = 0, 0.0

    def step(self) -> None:
        start = time.perf_counter()
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self)
        x, y = get_lm_batch(self.train, self.block, self.batch, generator=self.gen)
        loss = F.cross_entropy(self.model(x).flatten(0, 1), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.iters += 1
        self.seconds += time.perf_counter() - start

    @property
    def tokens_per_s(self) -> float:
        return self.iters * self.block * self.batch / max(self.seconds, 1e-9)


def reference_run(train: torch.Tensor, vocab: int) -> Run:
    """nanoGPT's loop and schedule (by iteration: warm-up 100, cosine to 1e-4 at 2000)."""
    torch.manual_seed(0)
    model = RefGPT(vocab)
    opt = nanogpt_optimizer(model, 1e-3, 0.1, (0.9, 0.99))
    return Run(model, opt, lambda run: nanogpt_lr(run.iters), train, BLOCK, BATCH)


def our_run(
    train: torch.Tensor, vocab: int, *, config: dict, lr: float, batch: int, block: int, budget_s: float,
    warmup_s: float, weight_decay: float = 0.1, betas: tuple[float, float] = (0.9, 0.95),
    reference_optimizer: bool = False,
) -> Run:  # fmt: skip
    """Our model; the LR follows warm-up + cosine over *elapsed training time / budget*.
    `reference_optimizer=True` swaps our fused AdamW for nanoGPT's (to time the model alone)."""
    torch.manual_seed(0)
    model = bestiary.build("decoder_only", vocab_size=vocab, max_seq_len=block, **config)
    if reference_optimizer:
        opt = nanogpt_optimizer(model, lr, weight_decay, betas)
    else:
        opt = adamw(model, lr=lr, weight_decay=weight_decay, betas=betas)
    resolution = 10_000  # warmup_cosine takes a step index: map elapsed time onto 10k "steps"
    warmup = int(resolution * min(warmup_s / budget_s, 1.0))

    def lr_at(run: Run) -> float:
        progress = min(int(resolution * run.seconds / budget_s), resolution)
        return lr * warmup_cosine(progress, warmup=warmup, total=resolution, min_ratio=0.05)

    return Run(model, opt, lr_at, train, block, batch)


def race(runs: list[Run], budget_s: float | None = None, iters: int | None = None) -> None:
    """Step the runs alternately until each has used `budget_s` seconds (or done `iters` steps)."""

    def active(r: Run) -> bool:
        return (budget_s is None or r.seconds < budget_s) and (iters is None or r.iters < iters)

    while any(active(r) for r in runs):
        for r in runs:
            if active(r):
                r.step()


@torch.no_grad()
def val_loss(model: nn.Module, val: torch.Tensor, n_windows: int = 400) -> float:
    """Mean next-character loss over fixed, evenly spaced validation windows of length 64."""
    model.eval()
    starts = torch.linspace(0, len(val) - BLOCK - 2, n_windows).long()
    idx = starts[:, None] + torch.arange(BLOCK)[None]  # (N, 64)
    losses = []
    for chunk in idx.split(100):
        logits = model(val[chunk].long())
        losses.append(F.cross_entropy(logits.flatten(0, 1), val[chunk + 1].long().flatten(), reduction="sum"))
    model.train()
    return float(sum(losses) / idx.numel())


# RoPE + RMSNorm + SwiGLU, and smaller than the reference: within a few minutes of CPU, a model that
# takes 2.5x more steps beats a bigger one (tuned by racing variants for 40 s and 80 s on this machine:
# d96/L2 beat d96/L3, d128/L2, d128/L4 and larger batches).
OUR_RECIPE = dict(d_model=96, n_layers=2, n_heads=4, n_kv_heads=4, d_ff=256)
REF_CONFIG_IN_OURS = dict(
    d_model=128,
    n_layers=4,
    n_heads=4,
    n_kv_heads=None,
    d_ff=512,
    position="learned",
    norm="layernorm",
    mlp="gelu",
    bias=False,
    fused_qkv=True,  # nanoGPT's c_attn
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", type=float, default=120.0, help="wall-clock seconds of training per run")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS)")
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--block", type=int, default=64)
    parser.add_argument("--throughput-iters", type=int, default=200)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    text = tiny_shakespeare()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.uint8)
    n_train = int(0.9 * len(data))
    train, val = data[:n_train], data[n_train:]
    vocab = len(chars)
    info = {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
    print(json.dumps({**info, "chars": len(text), "vocab": vocab, "budget_s": args.budget}), flush=True)

    # raw throughput at the reference's exact configuration (interleaved steps, same batches)
    ref_tp = reference_run(train, vocab)
    same = dict(config=REF_CONFIG_IN_OURS, lr=1e-3, batch=BATCH, block=BLOCK, budget_s=1e9, warmup_s=0.0,
                betas=(0.9, 0.99))  # fmt: skip
    model_tp = our_run(train, vocab, **same, reference_optimizer=True)  # our model, nanoGPT's loop
    loop_tp = our_run(train, vocab, **same)  # our model and our optimizer
    runs = [ref_tp, model_tp, loop_tp]
    race(runs, iters=10)  # warm-up steps, not timed below
    for r in runs:
        r.iters, r.seconds = 0, 0.0
    race(runs, iters=args.throughput_iters)
    throughput = {
        "run": "throughput_at_reference_config",
        "reference_tokens_per_s": round(ref_tp.tokens_per_s),
        "our_model_in_reference_loop_tokens_per_s": round(model_tp.tokens_per_s),
        "our_loop_tokens_per_s": round(loop_tp.tokens_per_s),
        "ratio_model_only": round(model_tp.tokens_per_s / ref_tp.tokens_per_s, 3),
        "ratio_our_loop": round(loop_tp.tokens_per_s / ref_tp.tokens_per_s, 3),
        "target_ratio": 1.0,
    }
    print(json.dumps(throughput), flush=True)

    # equal wall-clock budget, the two runs interleaved step by step
    ref = reference_run(train, vocab)
    ours = our_run(
        train, vocab, config=OUR_RECIPE, lr=args.lr, batch=args.batch, block=args.block, budget_s=args.budget,
        warmup_s=0.05 * args.budget,
    )  # fmt: skip
    race([ref, ours], budget_s=args.budget)
    ref_val, ours_val = val_loss(ref.model, val), val_loss(ours.model, val)
    print(
        json.dumps(
            {"run": "reference_nanogpt", "iters": ref.iters, "train_s": round(ref.seconds, 1),
             "tokens_per_s": round(ref.tokens_per_s), "val_loss": round(ref_val, 4)}
        ),
        flush=True,
    )  # fmt: skip
    print(
        json.dumps(
            {"run": "bestiary_recipe", "iters": ours.iters, "train_s": round(ours.seconds, 1),
             "tokens_per_s": round(ours.tokens_per_s), "val_loss": round(ours_val, 4),
             "recipe": {**OUR_RECIPE, "lr": args.lr, "batch": args.batch, "block": args.block,
                        "schedule": "warmup+cosine over the time budget"}}
        ),
        flush=True,
    )  # fmt: skip
    print(
        json.dumps(
            {
                "benchmark": "charlm_cpu",
                "budget_s": args.budget,
                "val_loss_reference": round(ref_val, 4),
                "val_loss_ours": round(ours_val, 4),
                "val_loss_gain_nats": round(ref_val - ours_val, 4),
                "target_gain_nats": 0.15,
                "throughput_ratio_at_reference_config": throughput["ratio_our_loop"],
                "throughput_ratio_model_only": throughput["ratio_model_only"],
                "target_throughput_ratio": 1.0,
                **info,
            }
        )
    )


if __name__ == "__main__":
    main()
