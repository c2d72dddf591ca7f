# %% [markdown]
# # A04 · Sequence modeling: Mamba, GatedSSM and GRU on real-valued series
#
# Three ways to carry the past forward in a fixed-size state: the **GRU** (Cho et al., 2014,
# arXiv:1406.1078), a gated non-linear recurrence; **Mamba** (Gu & Dao, 2023, arXiv:2312.00752), a
# *linear* state-space recurrence whose step size $\Delta_t$ is chosen by the input ("selective");
# and **GatedSSM** (from the Edifice library, no paper), a simplification of Mamba where a sigmoid gate
# plays the role of the decay. The library's Mamba and GatedSSM are language models over tokens; here
# we put their *mixers* in a small regression model and predict real numbers: noisy sine waves, then
# 309 years of sunspot counts. Every model has to beat two baselines that need no training at all.
#
# ## What you'll learn
# - the discretised selective-SSM step $h_t = e^{\Delta_t A} h_{t-1} + \Delta_t B_t u_t$,
#   $y_t = C_t h_t + D u_t$, written for one channel and checked against the library's Mamba mixer;
# - how to wrap a token mixer into a regression model (input projection → residual blocks → head);
# - two baselines every forecaster must beat: persistence ($\hat x_{t+1} = x_t$) and a linear
#   AR($p$) model fitted in closed form (least squares);
# - next-step prediction vs autoregressive rollout, and why rollout error grows with the horizon;
# - cost per step of the three recurrences, and what Mamba's input-dependent $\Delta_t$ looks like.

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from statsmodels.datasets import sunspots
from torch import nn
from tqdm.auto import tqdm

import bestiary
from bestiary.data.synthetic import make_sine_waves
from bestiary.layers.block import Block
from bestiary.layers.mamba import MambaMixer, causal_conv, selective_scan
from bestiary.models.ssm.gated_ssm import GatedSSMMixer

QUICK = bestiary.quick()
DEVICE = bestiary.device()  # small sequential models: the CPU is used throughout
torch.set_num_threads(1)  # tiny models: one thread is faster than two fighting on a shared CPU
bestiary.seed_everything(0)

# %% [markdown]
# ## 1. The selective SSM step, in the open
#
# Mamba's mixer projects the input $x_t$ (width `d_model`) to two branches $u_t, z_t$ of width
# $d_\text{inner}$; $u$ goes through a short causal convolution and a SiLU. Then, **for each channel
# $c$ separately**, a state $h \in \mathbb{R}^N$ follows a linear recurrence whose coefficients depend
# on the input:
#
# $$\Delta_t = \operatorname{softplus}(W_\Delta u_t)_c,\qquad
# h_t = \underbrace{e^{\Delta_t A_c}}_{\text{decay in }(0,1)} \odot h_{t-1} + \Delta_t\, B_t\, u_{t,c},\qquad
# y_{t,c} = C_t \cdot h_t + D_c\, u_{t,c},$$
#
# with $A_c = -e^{A_\text{log}} < 0$ (one rate per state index) and $B_t, C_t \in \mathbb{R}^N$
# projected from $u_t$. This is the continuous system $h' = A h + B u$ discretised with step
# $\Delta_t$ (zero-order hold for $A$, Euler for $B$). A large $\Delta_t$ forgets the past and writes
# the present; a small one keeps the state and nearly ignores the input. The output is
# $\text{out\_proj}(y \odot \operatorname{SiLU}(z))$. We write the recurrence as a loop for one channel,
# compare it with the library's `selective_scan`, then rebuild the whole mixer's output from our loop.

# %%
torch.manual_seed(0)
mixer = MambaMixer(8, d_state=4, scan="sequential").double()
x = torch.randn(2, 12, 8, dtype=torch.float64)
with torch.no_grad():
    u, z = mixer.in_proj(x).chunk(2, dim=-1)
    u = F.silu(causal_conv(u, mixer.conv1d, None)[0])  # (B, T, d_inner)
    dt_low, Bt, Ct = mixer.x_proj(u).split([mixer.dt_rank, mixer.d_state, mixer.d_state], dim=-1)
    dt = F.softplus(mixer.dt_proj(dt_low))  # (B, T, d_inner): one step size per position and channel
    A = -torch.exp(mixer.A_log)  # (d_inner, N)


def ssm_channel(c, b=0):
    """The selective SSM for channel c of batch row b, one step at a time."""
    h = torch.zeros(mixer.d_state, dtype=torch.float64)
    ys = []
    for t in range(u.shape[1]):
        h = torch.exp(dt[b, t, c] * A[c]) * h + dt[b, t, c] * Bt[b, t] * u[b, t, c]
        ys.append(Ct[b, t] @ h + mixer.D[c] * u[b, t, c])
    return torch.stack(ys)  # (T,)


with torch.no_grad():
    y_lib, _ = selective_scan(u, dt, A, Bt, Ct, mixer.D, scan="sequential")
    err_channel = (ssm_channel(3) - y_lib[0, :, 3]).abs().max().item()
    y_ours = torch.stack(
        [torch.stack([ssm_channel(c, b) for c in range(mixer.d_inner)], -1) for b in range(2)]
    )
    out_ours = mixer.out_proj(y_ours * F.silu(z))
    err_mixer = (out_ours - mixer(x)).abs().max().item()
print(f"channel 3: max |ours - selective_scan| = {err_channel:.1e}")
print(f"whole mixer rebuilt from our loop: max |ours - MambaMixer| = {err_mixer:.1e}")
assert err_channel < 1e-12 and err_mixer < 1e-12

# %% [markdown]
# From here on we use the library's mixers: `MambaMixer` (with its faster "cumsum" form of the same
# recurrence), `GatedSSMMixer` (whose state update is $h_t = g_t \odot h_{t-1} + (1-g_t)\odot v_t B_t^\top$
# with a sigmoid gate $g_t$ in place of $e^{\Delta_t A}$) and the registry's GRU.
#
# ## 2. A regression wrapper
#
# The mixers map $(B, T, d)$ to $(B, T, d)$. For a real-valued series we add a linear input projection
# ($1 \to d$), residual pre-norm `Block`s of the mixer (no MLP, as in Mamba), a final norm and a linear
# head ($d \to 1$). The GRU from the registry (`bestiary.build("gru", in_dim=1, ...)`) already reads
# $(B, T, 1)$; it only needs the head. Both keep a per-layer cache, so a rollout feeds one value at a
# time through a constant-size state.


# %%
class SeqRegressor(nn.Module):
    """(B, T, 1) -> (B, T, 1): input projection -> residual blocks of a token mixer -> norm -> head."""

    def __init__(self, make_mixer, d_model, n_layers):
        super().__init__()
        self.inp = nn.Linear(1, d_model)
        self.blocks = nn.ModuleList(
            Block(d_model, make_mixer(d_model), None, norm="rmsnorm") for _ in range(n_layers)
        )
        self.norm, self.head = nn.RMSNorm(d_model), nn.Linear(d_model, 1)

    def init_cache(self, batch):
        return [block.init_cache(batch) for block in self.blocks]

    def forward(self, x, cache=None):
        h = self.inp(x)
        for i, block in enumerate(self.blocks):
            h = block(h, cache=None if cache is None else cache[i])
        return self.head(self.norm(h))


class GRURegressor(nn.Module):
    """The registry's GRU stack (B, T, 1) -> (B, T, d_model), then a linear head."""

    def __init__(self, d_model, n_layers):
        super().__init__()
        self.body = bestiary.build("gru", in_dim=1, d_model=d_model, n_layers=n_layers)
        self.head = nn.Linear(d_model, 1)

    def init_cache(self, batch):
        return self.body.init_cache(batch)

    def forward(self, x, cache=None):
        return self.head(self.body(x, cache=cache))


D_MODEL = 16
MAKERS = {  # name -> n_layers -> model; Mamba and GatedSSM with a state of N = 8 per channel
    "Mamba": lambda L: SeqRegressor(lambda d: MambaMixer(d, d_state=8, scan="cumsum"), D_MODEL, L),
    "GatedSSM": lambda L: SeqRegressor(lambda d: GatedSSMMixer(d, 8, 2, 4, "parallel"), D_MODEL, L),
    "GRU": lambda L: GRURegressor(D_MODEL, L),
}


def train(model, windows_x, windows_y, steps, batch, lr=1e-2, skip=8, desc=""):
    """Adam on the next-step MSE (cosine schedule), ignoring the first `skip` positions of each window
    (too little context to judge anyone). Returns the CPU seconds per step."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    start = time.process_time()
    for step in tqdm(range(steps), desc=desc, leave=False):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(0, len(windows_x), (batch,), generator=gen)
        loss = F.mse_loss(model(windows_x[idx])[:, skip:], windows_y[idx][:, skip:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.process_time() - start) / steps


def fit_ar(x, y, p):
    """Least-squares AR(p): y[i, t] ~ w . x[i, t-p+1 .. t] + b. x, y (n, T). Returns (p + 1,)."""
    windows = x.unfold(1, p, 1).reshape(-1, p).double()  # every window of p past values
    design = torch.cat([windows, torch.ones(len(windows), 1, dtype=torch.float64)], 1)
    return torch.linalg.lstsq(design, y[:, p - 1 :].reshape(-1, 1).double()).solution[:, 0].float()


def ar_predict(w, x):
    """AR(p) next-step predictions for positions p-1 .. T-1 of x (n, T) -> (n, T - p + 1)."""
    p = len(w) - 1
    return x.unfold(1, p, 1) @ w[:p] + w[p]


# %% [markdown]
# ## 3. Noisy sine waves: next-step prediction
#
# `make_sine_waves` draws waves $a \sin(2\pi f k\,\Delta t + \varphi)$ with random amplitude
# (0.5–1.5), frequency (0.5–2 Hz, so periods of 5 to 20 steps) and phase. The models see the wave
# with Gaussian noise (std 0.1) added and must predict the *clean* next value. Persistence just
# repeats the last noisy value. AR(8) is the best *linear* predictor from the last 8 values, fitted in
# closed form on the training waves: one linear filter for all frequencies. The networks can do what
# no fixed filter can: infer this wave's frequency from the context and adapt to it.
#
# Quick mode trains 1-layer models (width 16) for 150 steps on windows of 32; full mode 2-layer
# models for 1500 steps on windows of 64. The test MSE counts positions 8 onwards (where AR(8) has
# its full window), on 256 fresh waves.

# %%
SEQ_LEN, STEPS, BATCH = (32, 150, 16) if QUICK else (64, 1500, 32)
P_SINE = 8
Xtr, Ytr = map(torch.tensor, make_sine_waves(512, SEQ_LEN, noise=0.1, seed=1))  # (n, T, 1) each
Xte, Yte = map(torch.tensor, make_sine_waves(256, SEQ_LEN, noise=0.1, seed=2))

w_ar = fit_ar(Xtr[..., 0], Ytr[..., 0], P_SINE)
mse_sine = {
    "persistence": F.mse_loss(Xte[:, P_SINE - 1 :, 0], Yte[:, P_SINE - 1 :, 0]).item(),
    f"AR({P_SINE})": F.mse_loss(ar_predict(w_ar, Xte[..., 0]), Yte[:, P_SINE - 1 :, 0]).item(),
}
models, cpu_per_step = {}, {}
for name, make in MAKERS.items():
    torch.manual_seed(0)
    models[name] = make(1 if QUICK else 2)
    cpu_per_step[name] = train(models[name], Xtr, Ytr, STEPS, BATCH, desc=name)
    with torch.no_grad():
        mse_sine[name] = F.mse_loss(models[name](Xte)[:, P_SINE - 1 :], Yte[:, P_SINE - 1 :]).item()
for name, mse in mse_sine.items():
    print(f"{name:12s} test MSE {mse:.4f}   ({mse / mse_sine[f'AR({P_SINE})']:.2f} x AR)")

# %% [markdown]
# **What to look for:** one test wave, its noisy observations (grey dots), the clean truth and each
# model's next-step prediction. Persistence (dotted) is the wave shifted one step right, behind it
# everywhere. In the first two or three steps the networks have almost no context and miss; after
# that their curves stay close to the clean truth, on time, and do not jump with each noisy dot.

# %%
k = 0
with torch.no_grad():
    preds = {name: m(Xte[k : k + 1])[0, :, 0] for name, m in models.items()}
steps_axis = np.arange(1, SEQ_LEN + 1)
fig, ax = plt.subplots(figsize=(9, 3.5))
ax.plot(steps_axis - 1, Xte[k, :, 0], ".", color="gray", label="noisy input x_t")
ax.plot(steps_axis, Yte[k, :, 0], "k-", lw=2, alpha=0.5, label="clean truth")
ax.plot(steps_axis, Xte[k, :, 0], ":", color="gray", label="persistence")
for name, p in preds.items():
    ax.plot(steps_axis, p, lw=1.2, label=name)
ax.set(xlabel="step", ylabel="value", title="Next-step prediction on a test wave")
ax.legend(fontsize=8, ncol=3)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Autoregressive rollout
#
# Next-step prediction always reads the true past. A forecast of many steps must read its *own*
# predictions: we give each model 24 noisy observations, then feed its prediction back as the next
# input for 40 steps, one value at a time through the cached state (a constant-size state per layer:
# no growing history). Each error now feeds the next prediction, so errors accumulate.

# %%
CTX, HORIZON = 24, 40
Xro, Yro = map(torch.tensor, make_sine_waves(128, CTX + HORIZON, noise=0.1, seed=3))
truth = Yro[:, CTX - 1 : CTX - 1 + HORIZON, 0]  # (n, H): the clean values after the context


@torch.no_grad()
def rollout(model, context, horizon):
    """Read the context, then feed back each prediction. context (n, CTX, 1) -> (n, horizon)."""
    cache = model.init_cache(len(context))
    nxt = model(context, cache=cache)[:, -1:]  # (n, 1, 1)
    out = [nxt]
    for _ in range(horizon - 1):
        nxt = model(nxt, cache=cache)
        out.append(nxt)
    return torch.cat(out, 1)[..., 0]


def ar_rollout(w, context, horizon):
    p = len(w) - 1
    hist = context[..., 0].clone()
    for _ in range(horizon):
        hist = torch.cat([hist, (hist[:, -p:] @ w[:p] + w[p])[:, None]], 1)
    return hist[:, -horizon:]


rolls = {name: rollout(m, Xro[:, :CTX], HORIZON) for name, m in models.items()}
rolls[f"AR({P_SINE})"] = ar_rollout(w_ar, Xro[:, :CTX], HORIZON)
roll_err = {name: ((r - truth) ** 2).mean(0) for name, r in rolls.items()}  # (H,) per horizon step
for name, e in roll_err.items():
    print(f"{name:10s} rollout MSE: steps 1-10 {e[:10].mean():.4f}   steps 31-40 {e[-10:].mean():.4f}")

# %% [markdown]
# **What to look for:** left, one wave forecast 40 steps ahead after the dashed line: every forecast
# starts near the truth and strays further from it as the steps go on (with the short quick-mode
# training, some lose the wave entirely within 40 steps: they damp towards zero or drift out of
# phase). Right, the squared error against the horizon, averaged over 128 waves (log scale): every
# curve rises from its first steps to its last. AR(8) reaches the waves' mean square (about 0.5, the
# error of always predicting zero) within about ten steps.

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
k = 1
t_ctx, t_fut = np.arange(CTX), np.arange(CTX, CTX + HORIZON)
axes[0].plot(t_ctx, Xro[k, :CTX, 0], ".", color="gray", label="context (noisy)")
axes[0].plot(t_fut, truth[k], "k-", lw=2, alpha=0.5, label="truth")
for name, r in rolls.items():
    axes[0].plot(t_fut, r[k], lw=1.2, label=name)
axes[0].axvline(CTX - 0.5, ls="--", color="gray")
axes[0].set(xlabel="step", ylabel="value", title="Rollout: each model feeds back its own predictions")
axes[0].legend(fontsize=8, ncol=2)
for name, e in roll_err.items():
    axes[1].semilogy(np.arange(1, HORIZON + 1), e, label=name)
axes[1].set(xlabel="steps ahead", ylabel="MSE over 128 waves", title="Rollout error against horizon")
axes[1].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 5. A real series: 309 years of sunspots
#
# `statsmodels.datasets.sunspots` (bundled, offline): yearly mean sunspot numbers, 1700–2008, a
# famous non-linear series with a cycle of about 11 years whose peaks vary in height. We train on
# 1700–1919 (220 years), normalise with the training mean and std, and test on 1920–2008. Training
# windows are 33 consecutive years; at test time each model reads the whole series from 1700 (it is
# causal) and we score its one-year-ahead predictions for the test years. The baselines: persistence
# and AR(9), fitted by least squares on the training years. (Yule invented the autoregressive model
# on this very series in 1927, with AR(2); AR(9) is the usual linear benchmark for it.) This section
# trains the same in quick and full mode: the data is small, and 150 steps already fit the training
# years far better than the test years (both errors are printed).

# %%
sun = sunspots.load_pandas().data
series = torch.tensor(sun["SUNACTIVITY"].values, dtype=torch.float32)
years = sun["YEAR"].values.astype(int)
N_TRAIN, P_SUN, WIN = 220, 9, 32
mu, sd = series[:N_TRAIN].mean(), series[:N_TRAIN].std()
zs = (series - mu) / sd
target = zs[N_TRAIN:]  # the test years, predicted one year ahead

w_sun = fit_ar(zs[None, : N_TRAIN - 1], zs[None, 1:N_TRAIN], P_SUN)
ar_sun = ar_predict(w_sun, zs[None, :-1])[0]  # predicts zs[P_SUN:]
# every model's one-year-ahead prediction of zs[P_SUN:], the years from 1709 on
full_sun = {"persistence": zs[P_SUN - 1 : -1], f"AR({P_SUN})": ar_sun}
windows = zs[:N_TRAIN].unfold(0, WIN + 1, 1)  # (n, WIN + 1) training windows
sun_models = {}
for name, make in MAKERS.items():
    torch.manual_seed(0)
    sun_models[name] = make(1)
    train(sun_models[name], windows[:, :-1, None], windows[:, 1:, None], 150, 16, desc=f"{name} (sunspots)")
    with torch.no_grad():
        full_sun[name] = sun_models[name](zs[None, :-1, None])[0, P_SUN - 1 :, 0]
pred_sun = {name: p[N_TRAIN - P_SUN :] for name, p in full_sun.items()}  # the test years only
mse_sun = {name: F.mse_loss(p, target).item() for name, p in pred_sun.items()}
for name, mse in mse_sun.items():
    train_mse = F.mse_loss(full_sun[name][: N_TRAIN - P_SUN], zs[P_SUN:N_TRAIN]).item()
    print(
        f"{name:12s} test MSE {mse:.3f}   ({mse / mse_sun[f'AR({P_SUN})']:.2f} x AR)   "
        f"train-years MSE {train_mse:.3f}"
    )

# %% [markdown]
# **What to look for:** the test years (after the dashed line), truth in thick grey. Persistence is the
# truth shifted one year right. AR(9) and the networks all follow the rise and fall of each cycle;
# none of them is right about every peak's height.

# %%
fig, ax = plt.subplots(figsize=(11, 3.8))
test_years = years[N_TRAIN:]
ax.plot(years, zs * sd + mu, "k-", lw=2, alpha=0.4, label="sunspots (truth)")
for name, p in pred_sun.items():
    style = ":" if name == "persistence" else "-"
    ax.plot(test_years, p * sd + mu, style, lw=1.2, label=f"{name} (MSE {mse_sun[name]:.2f})")
ax.axvline(years[N_TRAIN] - 0.5, ls="--", color="gray")
ax.set(xlim=(1880, years[-1] + 1), xlabel="year", ylabel="yearly mean sunspot number",
       title="One-year-ahead forecasts on the test years (normalised MSE in the legend)")  # fmt: skip
ax.legend(fontsize=8, ncol=3)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 6. Cost per step
#
# All three keep a state of fixed size, so a forecast costs the same at step 10 and at step 10,000
# (a transformer's cache would grow). The state per layer: the GRU keeps $d$ numbers; Mamba keeps
# $d_\text{inner} \times N$ plus its convolution window; GatedSSM $E \times N$ plus its pooling window.
# We time one cached step (batch 1) and print the training CPU time per step measured above. Timings
# depend on the machine and its load: read them as orders of magnitude.


# %%
@torch.no_grad()
def step_time(model, n=40):
    cache = model.init_cache(1)
    value = torch.zeros(1, 1, 1)
    model(value, cache=cache)  # warm-up
    start = time.process_time()
    for _ in range(n):
        value = model(value, cache=cache)
    return (time.process_time() - start) / n


def state_numbers(model):
    cache = model.init_cache(1)
    model(torch.zeros(1, 1, 1), cache=cache)
    layers = cache.layers if hasattr(cache, "layers") else cache
    return sum(t.numel() for layer in layers for _, t in layer.items() if t is not None)


for name, m in models.items():
    print(
        f"{name:9s} params {sum(p.numel() for p in m.parameters()):6,}  state {state_numbers(m):5,} numbers  "
        f"one rollout step {1e3 * step_time(m):.2f} ms  one training step {1e3 * cpu_per_step[name]:.0f} ms (CPU)"
    )

# %% [markdown]
# ## 7. Inside the trained Mamba: the step size $\Delta_t$
#
# Selectivity means $\Delta_t$ depends on the input. We record $\Delta_t$ of the trained sine model's
# first Mamba layer (all $d_\text{inner} = 32$ channels) on one test wave, and show the 4 channels whose
# $\Delta$ varies most along the sequence.
#
# **What to look for:** top, the input wave; bottom, $\Delta_t$ of the 4 most variable channels
# (log scale). $\Delta_t$ is not a constant: it moves up and down with the wave, rising and
# falling at the wave's own rhythm, so each channel keeps or overwrites its state depending on where the
# wave is in its cycle. A fixed (non-selective) SSM would show flat lines here.

# %%
mamba_mixer = models["Mamba"].blocks[0].mixer
recorded = {}
hook = mamba_mixer.dt_proj.register_forward_hook(lambda mod, inp, out: recorded.update(dt=F.softplus(out)))
k = 2
with torch.no_grad():
    models["Mamba"](Xte[k : k + 1])
hook.remove()
delta = recorded["dt"][0]  # (T, d_inner)
log_spread = delta.log().std(0)  # variation of each channel's step size along the sequence
top = log_spread.argsort(descending=True)[:4]
ratio = (delta[:, top[0]].max() / delta[:, top[0]].min()).item()
print(f"most selective channel {top[0].item()}: step size varies {ratio:.1f}-fold along this wave")
fig, axes = plt.subplots(2, 1, figsize=(9, 4.5), sharex=True)
axes[0].plot(Xte[k, :, 0], ".-", color="gray")
axes[0].set(ylabel="input x_t", title="Mamba's step size Δ_t follows the input (selectivity)")
for c in top:
    axes[1].semilogy(delta[:, c], label=f"channel {c.item()}")
axes[1].set(xlabel="step", ylabel="Δ_t")
axes[1].legend(fontsize=8, ncol=4)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Result
#
# Asserted below (quick mode: 1-layer models, 150 steps; full mode: 2-layer models, 1500 steps):
#
# - our one-channel loop equals the library's `selective_scan`, and the mixer rebuilt from it equals
#   `MambaMixer`, to 1e-12;
# - **sine waves**: every model's test MSE is below persistence's and below AR(8)'s — in quick mode
#   below AR(8), in full mode below 0.3 × AR(8);
# - **rollout**: for every model (and AR), the error on steps 31–40 exceeds the error on steps 1–10;
# - **sunspots** (the same training in both modes): every network beats persistence by a wide margin
#   (MSE below 0.6 × persistence), but *not* the linear AR(9) by much: no network's test MSE is below
#   0.8 × AR(9). On 220 training years, a 10-parameter linear model is as good as a network with
#   thousands of parameters; which network lands just above or below AR(9) is printed above and
#   depends on the seed;
# - **selectivity**: the most variable channel's $\Delta_t$ changes at least 1.5-fold along one wave.

# %%
AR_SINE = mse_sine[f"AR({P_SINE})"]
for name in MAKERS:
    assert mse_sine[name] < mse_sine["persistence"], (name, mse_sine)
    assert mse_sine[name] < (1.0 if QUICK else 0.3) * AR_SINE, (name, mse_sine)
for name, e in roll_err.items():
    assert e[-10:].mean() > e[:10].mean(), (name, e)
for name in MAKERS:
    assert mse_sun[name] < 0.6 * mse_sun["persistence"], (name, mse_sun)
assert min(mse_sun[name] for name in MAKERS) > 0.8 * mse_sun[f"AR({P_SUN})"], mse_sun
assert ratio > 1.5, ratio
print(
    f"OK: sine MSE {', '.join(f'{n} {mse_sine[n]:.3f}' for n in MAKERS)} vs AR({P_SINE}) {AR_SINE:.3f}; "
    f"sunspots best network {min(mse_sun[n] for n in MAKERS):.3f} vs AR({P_SUN}) {mse_sun[f'AR({P_SUN})']:.3f}"
)

# %% [markdown]
# ## Experiments to try
# - Raise the noise to 0.3, or shorten the windows to 16: when does AR(8) catch up with the networks?
# - Train the sine models on windows of 32 and roll them out for 200 steps. Which model's forecast
#   stays on a sine, and which one decays to zero or blows up?
# - Replace `MambaMixer` by `GatedSSMMixer` with `mode="sequential"`, or Mamba's scan by
#   `"hillis_steele"`: same numbers, different cost (see `benchmarks/selective_scan.py`).
# - Sunspots: add dropout or weight decay, or train on $\sqrt{x}$ (a classic transform for this series).
#   Can any network beat AR(9) by 20 %?
# - Try `statsmodels.datasets.co2` (weekly CO₂, with a trend): what does the trend do to a model
#   trained on normalised data from the first years only?
# - Plot the GatedSSM's gate $g_t$ (a hook on `gate_proj`) next to Mamba's $e^{\Delta_t A}$: do they
#   move together with the wave?
