"""sparq-qd: open-ended synthetic math problem generation with quality-diversity search."""

__version__ = "0.1.0"
