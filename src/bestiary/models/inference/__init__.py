"""The inference family (see catalog.tsv)."""
