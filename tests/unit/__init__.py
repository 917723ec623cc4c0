"""Tests of each package, in folders that mirror the packages."""
