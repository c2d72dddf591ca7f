"""The world_model family (see catalog.tsv)."""
