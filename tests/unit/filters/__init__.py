"""Tests of filters/."""
