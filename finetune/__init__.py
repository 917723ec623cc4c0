"""Fine-tuning stage (TRL SFT with LoRA) and evaluation; see docs/status.md."""
