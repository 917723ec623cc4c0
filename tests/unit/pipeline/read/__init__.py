"""Tests of pipeline/read/."""
