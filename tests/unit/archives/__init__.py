"""Tests of archives/."""
