"""The interpretability family (see catalog.tsv)."""
