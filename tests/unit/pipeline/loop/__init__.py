"""Tests of pipeline/loop/."""
