"""Synthetic graph classification, PyG-style batching, karate club."""

from __future__ import annotations

import pytest
import torch

from bestiary.data import graphs as G


def _dense_adjacency(g: G.Graph) -> torch.Tensor:
    a = torch.zeros(g.num_nodes, g.num_nodes)
    a[g.edge_index[0], g.edge_index[1]] = 1.0
    return a


def test_graphs_are_valid_undirected_and_labelled():
    data = G.make_graph_classification(40, min_nodes=6, max_nodes=12, seed=0)
    assert [int(g.y) for g in data[:4]] == [0, 1, 0, 1]
    for g in data:
        assert 6 <= g.num_nodes <= 12
        assert g.x.shape == (g.num_nodes, 8) and g.x.dtype == torch.float32
        assert g.edge_index.dtype == torch.long and g.edge_index.shape[0] == 2
        assert g.y.dtype == torch.long and g.y.dim() == 0
        a = _dense_adjacency(g)
        assert torch.equal(a, a.T) and a.diagonal().sum() == 0  # undirected, no self-loops
        assert a.sum() == g.num_edges  # no duplicate edges
        degree = a.sum(1)
        # "degree" features are the one-hot degree (clipped at 7).
        assert torch.equal(g.x.argmax(1), degree.clamp(max=7).long())
        if int(g.y) == 0:
            assert degree.min() >= 2  # a ring with chords: every node has both ring neighbours


def test_classes_differ_in_density_not_size():
    data = G.make_graph_classification(400, seed=0)
    mean_degree = {c: [] for c in (0, 1)}
    sizes = {c: [] for c in (0, 1)}
    for g in data:
        mean_degree[int(g.y)].append(g.num_edges / g.num_nodes)
        sizes[int(g.y)].append(g.num_nodes)
    m0, m1 = (torch.tensor(mean_degree[c]).mean() for c in (0, 1))
    assert 2.0 <= m0 < 2.4 and 3.3 < m1 < 4.7
    s0, s1 = (torch.tensor(sizes[c], dtype=torch.float).mean() for c in (0, 1))
    assert abs(s0 - s1) < 1.0


def test_seeding_and_feature_options():
    a = G.make_graph_classification(10, seed=3)
    b = G.make_graph_classification(10, seed=3)
    c = G.make_graph_classification(10, seed=4)
    assert all(torch.equal(x.edge_index, y.edge_index) and torch.equal(x.x, y.x) for x, y in zip(a, b))
    assert any(
        x.edge_index.shape != y.edge_index.shape or not torch.equal(x.edge_index, y.edge_index)
        for x, y in zip(a, c)
    )
    const = G.make_graph_classification(4, node_features="constant", num_features=3, seed=0)
    assert all(torch.equal(g.x, torch.ones(g.num_nodes, 3)) for g in const)
    rand = G.make_graph_classification(4, node_features="random", num_features=5, seed=0)
    assert rand[0].x.shape[1] == 5 and rand[0].x.std() > 0.5
    with pytest.raises(ValueError, match="node_features"):
        G.make_graph_classification(4, node_features="pagerank")
    with pytest.raises(ValueError, match="min_nodes"):
        G.make_graph_classification(4, min_nodes=2)


def test_collate_matches_block_diagonal_adjacency():
    data = G.make_graph_classification(5, min_nodes=4, max_nodes=9, seed=1)
    batch = G.collate_graphs(data)
    n = sum(g.num_nodes for g in data)
    assert batch.x.shape == (n, 8) and batch.num_graphs == 5
    assert torch.equal(batch.x, torch.cat([g.x for g in data]))
    # Oracle: the batched graph is the block-diagonal union of the graphs.
    big = torch.zeros(n, n)
    big[batch.edge_index[0], batch.edge_index[1]] = 1.0
    assert torch.equal(big, torch.block_diag(*[_dense_adjacency(g) for g in data]))
    expected_batch = torch.cat([torch.full((g.num_nodes,), i) for i, g in enumerate(data)])
    assert torch.equal(batch.batch, expected_batch)
    assert batch.ptr.tolist() == [0, *torch.tensor([g.num_nodes for g in data]).cumsum(0).tolist()]
    assert torch.equal(batch.y, torch.stack([g.y for g in data]))


def test_collate_rejects_inconsistent_graphs():
    good = G.make_graph_classification(2, seed=0)
    other_width = G.make_graph_classification(1, num_features=3, seed=0)
    with pytest.raises(ValueError, match="x must be"):
        G.collate_graphs([good[0], other_width[0]])
    broken = G.Graph(x=torch.ones(3, 8), edge_index=torch.tensor([[0], [5]]), y=torch.tensor(0))
    with pytest.raises(ValueError, match="outside"):
        G.collate_graphs([broken])
    with pytest.raises(ValueError, match="at least one"):
        G.collate_graphs([])


def test_iter_graph_batches_covers_all_graphs_once():
    data = G.make_graph_classification(23, seed=0)
    batches = list(G.iter_graph_batches(data, 5, seed=0))
    assert [b.num_graphs for b in batches] == [5, 5, 5, 5, 3]
    seen = torch.cat([b.x for b in batches]).shape[0]
    assert seen == sum(g.num_nodes for g in data)


@pytest.mark.parametrize("message_passing", [True, False])
def test_a_sum_aggregation_gnn_learns_the_task_from_structure_alone(message_passing):
    """Constant features: a GIN-style layer learns the task; without message passing it cannot."""
    torch.manual_seed(0)
    data = G.make_graph_classification(200, node_features="constant", num_features=1, seed=0)
    train, test = G.collate_graphs(data[:150]), G.collate_graphs(data[150:])
    lin1, lin2 = torch.nn.Linear(1, 8), torch.nn.Linear(8, 2)

    def forward(b: G.GraphBatch) -> torch.Tensor:
        src, dst = b.edge_index
        h = b.x.clone()
        if message_passing:
            h = h.index_add_(0, dst, b.x[src])  # x_i + sum over neighbours (GIN-style)
        h = torch.relu(lin1(h))
        pooled = torch.zeros(b.num_graphs, 8).index_add_(0, b.batch, h)
        pooled = pooled / torch.bincount(b.batch).unsqueeze(1)  # mean pooling
        return lin2(pooled)

    opt = torch.optim.Adam([*lin1.parameters(), *lin2.parameters()], lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(forward(train), train.y).backward()
        opt.step()
    acc = (forward(test).argmax(1) == test.y).float().mean()
    if message_passing:
        assert acc > 0.9
    else:
        assert acc < 0.7  # every node looks the same: no better than chance


def test_karate_club():
    pytest.importorskip("networkx")
    g = G.load_karate_club()
    # Zachary (1977): 34 members, 78 friendships, the club split 17 / 17 (networkx's labels).
    assert g.num_nodes == 34 and g.num_edges == 2 * 78
    assert g.y.shape == (34,) and torch.bincount(g.y).tolist() == [17, 17]
    assert int(g.y[0]) == 0 and int(g.y[33]) == 1  # node 0 is Mr. Hi, node 33 the officer
