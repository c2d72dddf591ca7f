"""The contrastive family (see catalog.tsv)."""
