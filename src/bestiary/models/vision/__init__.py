"""The vision family (see catalog.tsv)."""
