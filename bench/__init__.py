"""Benchmarks, run on demand (`uv run python -m bench ...`): they record figures and assert nothing."""
