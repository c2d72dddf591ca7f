"""The feedforward family (see catalog.tsv)."""
