"""Deployment assets built without Docker (Lambda packages).
"""
