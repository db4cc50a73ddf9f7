"""PyTorch and transformers integrations for vTPU (see the compute and Qwen3 issues)."""
