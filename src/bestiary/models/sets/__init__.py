"""The sets family (see catalog.tsv)."""
