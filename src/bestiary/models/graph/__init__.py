"""The graph family (see catalog.tsv)."""
