"""The neuromorphic family (see catalog.tsv)."""
