"""The energy family (see catalog.tsv)."""
