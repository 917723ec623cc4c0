"""Tests of pipeline/domains/."""
