"""The audio family (see catalog.tsv)."""
