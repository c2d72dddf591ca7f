"""The multimodal family (see catalog.tsv)."""
