"""The detection family (see catalog.tsv)."""
