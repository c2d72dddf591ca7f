"""The transformer family (see catalog.tsv)."""
