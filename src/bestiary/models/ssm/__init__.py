"""The ssm family (see catalog.tsv)."""
