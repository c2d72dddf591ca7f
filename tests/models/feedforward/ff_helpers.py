"""Helpers shared by the feedforward model tests: a small classification task and a training loop.
(Imported by module name: pytest puts this folder on sys.path.)"""

import torch
import torch.nn.functional as F

from bestiary.data import make_clusters


def clusters(n=300, dim=2, seed=0):
    X, y = make_clusters(n, n_classes=3, dim=dim, std=0.5, seed=seed)
    return torch.from_numpy(X), torch.from_numpy(y)


def fit(model, X, y, steps, lr, loss_fn=None):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        out = model(X)
        loss = loss_fn(out, y) if loss_fn else F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def accuracy(logits, y):
    return (logits.argmax(-1) == y).float().mean().item()
