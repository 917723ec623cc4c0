"""The read side: summaries of a run directory (`sparq inspect`), its report and the explorer.
Nothing here writes to a run."""
