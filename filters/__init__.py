"""Filters for export (dedup, decontamination, difficulty, validity); see README status."""
