"""Graphs in the PyTorch Geometric convention, a seeded graph-classification set, and batching.

A graph is `x` (N, F) float node features, `edge_index` (2, E) int64 with one column per directed
edge (source row 0, target row 1; an undirected edge appears in both directions), and a label `y`.
A batch of graphs is one big disconnected graph: node features stacked, each graph's edge indices
shifted by the number of nodes before it, and `batch` (N_total,) saying which graph a node belongs
to. Our GNNs take exactly this, so users can swap in `torch_geometric` datasets unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from bestiary.data._paths import DataSourceMissing

__all__ = [
    "Graph",
    "GraphBatch",
    "collate_graphs",
    "iter_graph_batches",
    "load_karate_club",
    "make_graph_classification",
]


@dataclass
class Graph:
    """One graph: x float32 (N, F), edge_index int64 (2, E), y int64 (a 0-dim graph label, or (N,) node labels)."""

    x: torch.Tensor
    edge_index: torch.Tensor
    y: torch.Tensor

    @property
    def num_nodes(self) -> int:
        return self.x.shape[0]

    @property
    def num_edges(self) -> int:
        return self.edge_index.shape[1]


@dataclass
class GraphBatch:
    """Several graphs as one disconnected graph (see the module docstring).

    x (N_total, F); edge_index (2, E_total) int64, already offset; batch (N_total,) int64 graph id
    of each node; ptr (G + 1,) int64 where graph g's nodes are ptr[g]:ptr[g+1]; y the stacked labels.
    """

    x: torch.Tensor
    edge_index: torch.Tensor
    batch: torch.Tensor
    ptr: torch.Tensor
    y: torch.Tensor

    @property
    def num_graphs(self) -> int:
        return self.ptr.numel() - 1

    def to(self, device: torch.device | str) -> GraphBatch:
        return GraphBatch(*(t.to(device) for t in (self.x, self.edge_index, self.batch, self.ptr, self.y)))


def collate_graphs(graphs: Sequence[Graph]) -> GraphBatch:
    """Batch graphs PyG-style: stack x, offset and concatenate edge_index, build batch and ptr.

    Graph labels (0-dim y) stack to (G,); node labels ((N_g,) y) concatenate to (N_total,).
    """
    if len(graphs) == 0:
        raise ValueError("collate_graphs needs at least one graph")
    n_features = graphs[0].x.shape[1]
    for i, g in enumerate(graphs):
        if g.x.dim() != 2 or g.x.shape[1] != n_features:
            raise ValueError(f"graph {i}: x must be (N, {n_features}), got {tuple(g.x.shape)}")
        if g.edge_index.dim() != 2 or g.edge_index.shape[0] != 2:
            raise ValueError(f"graph {i}: edge_index must be (2, E), got {tuple(g.edge_index.shape)}")
        if g.num_edges and (g.edge_index.min() < 0 or g.edge_index.max() >= g.num_nodes):
            raise ValueError(f"graph {i}: edge_index refers to nodes outside 0..{g.num_nodes - 1}")
    sizes = torch.tensor([g.num_nodes for g in graphs], dtype=torch.long)  # (G,)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])  # (G + 1,)
    # Shift graph g's node ids by the number of nodes in graphs 0..g-1, so ids stay unique.
    edge_index = torch.cat([g.edge_index + ptr[i] for i, g in enumerate(graphs)], dim=1)  # (2, E_total)
    batch = torch.repeat_interleave(torch.arange(len(graphs)), sizes)  # (N_total,)
    x = torch.cat([g.x for g in graphs], dim=0)  # (N_total, F)
    ys = [g.y for g in graphs]
    y = torch.stack(ys) if ys[0].dim() == 0 else torch.cat(ys)
    return GraphBatch(x=x, edge_index=edge_index, batch=batch, ptr=ptr, y=y)


def iter_graph_batches(
    graphs: Sequence[Graph], batch_size: int, *, shuffle: bool = True, seed: int = 0
) -> Iterator[GraphBatch]:
    """Yield `collate_graphs` batches of `batch_size` graphs (the last may be smaller), seeded order."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.random.default_rng(seed).permutation(len(graphs)) if shuffle else np.arange(len(graphs))
    for start in range(0, len(graphs), batch_size):
        yield collate_graphs([graphs[i] for i in order[start : start + batch_size]])


def _undirected_edge_index(pairs: set[tuple[int, int]]) -> torch.Tensor:
    """(2, 2 * len(pairs)) int64: each undirected pair {u, v} as u->v and v->u, sorted for stability."""
    if not pairs:
        return torch.zeros(2, 0, dtype=torch.long)
    both = sorted(pairs | {(v, u) for u, v in pairs})
    return torch.tensor(both, dtype=torch.long).T.contiguous()


def _node_features(
    n_nodes: int, edge_index: torch.Tensor, kind: str, num_features: int, rng: np.random.Generator
) -> torch.Tensor:
    if kind == "degree":
        # One-hot degree, degrees >= num_features - 1 share the last slot (PyG's OneHotDegree).
        degree = torch.bincount(edge_index[0], minlength=n_nodes).clamp(max=num_features - 1)
        return torch.nn.functional.one_hot(degree, num_features).float()
    if kind == "constant":
        return torch.ones(n_nodes, num_features)
    return torch.from_numpy(rng.normal(size=(n_nodes, num_features)).astype(np.float32))


def make_graph_classification(
    n_graphs: int = 200,
    *,
    min_nodes: int = 10,
    max_nodes: int = 20,
    node_features: Literal["degree", "constant", "random"] = "degree",
    num_features: int = 8,
    seed: int = 0,
) -> list[Graph]:
    """Two classes of random graphs that differ only in structure: rings vs denser random graphs.

    - class 0, "ring": a cycle over the nodes in random order plus 0-2 random chords (degree ~2).
    - class 1, "random": an Erdos-Renyi graph with edge probability 4 / (N - 1) (mean degree ~4).
    Both classes draw N uniformly from min_nodes..max_nodes, so size alone tells nothing.

    Node features (N, num_features): "degree" one-hot degree (the usual choice for graphs without
    features; any GNN can learn the task), "constant" all ones (only the structure informs: sum
    aggregation can still count neighbours, but mean aggregation / GCN normalisation sees nearly
    the same thing everywhere, an expressivity lesson), or "random" N(0, 1) noise.

    Returns:
        A list of `Graph` with y an int64 0-dim tensor; classes alternate 0, 1, 0, 1, ...
    """
    if n_graphs < 1:
        raise ValueError(f"n_graphs must be >= 1, got {n_graphs}")
    if not 3 <= min_nodes <= max_nodes:
        raise ValueError(f"need 3 <= min_nodes <= max_nodes, got {min_nodes}, {max_nodes}")
    if node_features not in ("degree", "constant", "random"):
        raise ValueError(f"node_features must be 'degree', 'constant' or 'random', got {node_features!r}")
    if num_features < 1:
        raise ValueError(f"num_features must be >= 1, got {num_features}")
    rng = np.random.default_rng(seed)
    graphs = []
    for i in range(n_graphs):
        label = i % 2
        n = int(rng.integers(min_nodes, max_nodes + 1))
        pairs: set[tuple[int, int]] = set()
        if label == 0:
            ring = rng.permutation(n)
            pairs |= {tuple(sorted((int(ring[k]), int(ring[(k + 1) % n])))) for k in range(n)}
            for _ in range(int(rng.integers(0, 3))):
                u, v = rng.choice(n, size=2, replace=False)
                pairs.add((int(min(u, v)), int(max(u, v))))
        else:
            upper = np.triu(rng.random((n, n)) < 4.0 / (n - 1), k=1)  # (n, n), each pair once
            pairs |= {(int(u), int(v)) for u, v in zip(*np.nonzero(upper))}
        edge_index = _undirected_edge_index(pairs)
        x = _node_features(n, edge_index, node_features, num_features, rng)
        graphs.append(Graph(x=x, edge_index=edge_index, y=torch.tensor(label, dtype=torch.long)))
    return graphs


def load_karate_club() -> Graph:
    """Zachary's karate club (34 members, 78 friendships), from networkx's built-in copy.

    Node classification: y (34,) int64 is the club each member joined after the split (0 = Mr. Hi,
    1 = Officer); x is the identity matrix (34, 34) float32, the usual featureless input.
    """
    try:
        import networkx as nx
    except ImportError as e:
        raise DataSourceMissing("networkx (karate club graph)", "pip install networkx") from e
    g = nx.karate_club_graph()
    pairs = {(min(u, v), max(u, v)) for u, v in g.edges()}
    y = torch.tensor([0 if g.nodes[v]["club"] == "Mr. Hi" else 1 for v in range(g.number_of_nodes())])
    return Graph(x=torch.eye(g.number_of_nodes()), edge_index=_undirected_edge_index(pairs), y=y)
