"""Comparing strategies on held-out questions: the eval set, the runner, metrics and the report."""
