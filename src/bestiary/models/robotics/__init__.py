"""The robotics family (see catalog.tsv)."""
