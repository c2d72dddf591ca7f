"""The scientific family (see catalog.tsv)."""
