"""Local stand-ins and demo material: the local AWS (moto server), synthetic datasets and
reference training pipelines.
"""
