"""Reference numbers as reviewed YAML, one file per reference model (installed as package data)."""
