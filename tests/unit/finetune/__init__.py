"""Tests of finetune/."""
