"""Prefect flows: thin wrappers that orchestrate the library (which never imports Prefect)."""
