"""KAN: a chain of spline layers that fits a 1-D function, classifies clusters and refines its grid."""

import torch
import torch.nn.functional as F
from ff_helpers import accuracy, clusters, fit

import bestiary
from bestiary.layers.kan import KANLinear


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
    fit(model, x, y, steps=300, lr=0.05, loss_fn=F.mse_loss)
    assert F.mse_loss(model(x), y).item() < 1e-3


def test_kan_classifies_clusters():
    torch.manual_seed(0)
    X, y = clusters()
    model = fit(bestiary.build("kan"), X, y, steps=100, lr=0.02)
    assert accuracy(model(X), y) > 0.9


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
