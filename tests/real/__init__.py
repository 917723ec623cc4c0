"""The embedded model end to end, on vLLM's CPU build and transformers."""
