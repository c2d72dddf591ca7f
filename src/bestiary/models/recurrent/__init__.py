"""The recurrent family (see catalog.tsv)."""
