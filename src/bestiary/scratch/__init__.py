"""NumPy-only foundations: autograd engines, layers, optimizers (no torch import).

- `Value` / `micrograd_nn`: a scalar autograd engine and an MLP on it (micrograd style).
- `Tensor`: vectorised reverse-mode autograd over float64 NumPy arrays.
- `nn`: Linear, MLP, Embedding, RNN, LSTM, attention, losses on `Tensor`.
- `ElmanRNN`: F07's tanh RNN with BPTT written out by hand (fast; returns dL/dh_t per step).
- `optim`: SGD, RMSprop, Adam, AdamW and learning-rate schedules with torch's semantics.
"""

from bestiary.scratch.elman import ElmanRNN
from bestiary.scratch.micrograd_nn import MLP as MicroMLP
from bestiary.scratch.micrograd_nn import Layer as MicroLayer
from bestiary.scratch.micrograd_nn import MicroModule, Neuron
from bestiary.scratch.nn import (
    LSTM,
    MLP,
    RNN,
    Embedding,
    Linear,
    LSTMCell,
    Module,
    MultiHeadAttention,
    RNNCell,
    SingleHeadAttention,
    causal_mask,
    cross_entropy,
    lstm_cell,
    mse_loss,
    rnn_cell,
    scaled_dot_product_attention,
)
from bestiary.scratch.optim import (
    SGD,
    Adam,
    AdamW,
    Optimizer,
    Param,
    RMSprop,
    cosine_lr,
    step_lr,
    warmup_cosine_lr,
)
from bestiary.scratch.tensor import Tensor, concatenate, matmul, no_grad, stack, tensor, where
from bestiary.scratch.value import Value

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "Optimizer",
    "Param",
    "RMSprop",
    "cosine_lr",
    "step_lr",
    "warmup_cosine_lr",
    "LSTM",
    "MLP",
    "RNN",
    "ElmanRNN",
    "Embedding",
    "LSTMCell",
    "Linear",
    "Module",
    "MultiHeadAttention",
    "RNNCell",
    "SingleHeadAttention",
    "causal_mask",
    "cross_entropy",
    "lstm_cell",
    "mse_loss",
    "rnn_cell",
    "scaled_dot_product_attention",
    "MicroLayer",
    "MicroMLP",
    "MicroModule",
    "Neuron",
    "Tensor",
    "Value",
    "concatenate",
    "matmul",
    "no_grad",
    "stack",
    "tensor",
    "where",
]
