"""The system of record: the run directory, its typed tables and their schemas, seed sources."""
