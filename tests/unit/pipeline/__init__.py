"""Tests of pipeline/ (its top-level modules here, its parts below)."""
