"""Spark batch scoring entry point (placeholder until the batch issue lands)."""
