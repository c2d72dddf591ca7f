"""The probabilistic family (see catalog.tsv)."""
