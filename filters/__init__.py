"""Filters for export (dedup, decontamination, difficulty, validity); see docs/status.md."""
