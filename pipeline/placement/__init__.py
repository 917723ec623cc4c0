"""Where a candidate goes in the archive: the archive kind in use, problem embeddings,
skill labels and niche targets."""
