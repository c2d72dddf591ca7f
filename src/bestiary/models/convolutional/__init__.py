"""The convolutional family (see catalog.tsv)."""
