"""The rl family (see catalog.tsv)."""
