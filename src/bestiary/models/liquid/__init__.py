"""The liquid family (see catalog.tsv)."""
