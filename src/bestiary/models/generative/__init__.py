"""The generative family (see catalog.tsv)."""
