"""The attention family (see catalog.tsv)."""
