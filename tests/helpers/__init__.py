"""Shared test helpers: scripted runs, fake OpenAI servers, figures, golden digests."""
