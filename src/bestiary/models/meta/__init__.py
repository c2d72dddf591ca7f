"""The meta family (see catalog.tsv)."""
