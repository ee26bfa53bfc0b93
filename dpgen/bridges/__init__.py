"""Bridges to deep-learning frameworks; each imports its framework only when used."""
