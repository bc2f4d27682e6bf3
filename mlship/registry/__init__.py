"""The model registry: immutable versions, aliases by compare-and-swap, the audit log.
"""
