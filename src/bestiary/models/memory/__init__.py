"""The memory family (see catalog.tsv)."""
