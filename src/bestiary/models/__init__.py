"""Architectures, one per file, in family folders that follow catalog.tsv."""
