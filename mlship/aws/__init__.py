"""The AWS tier: the one boto3 client factory, S3 transfers and URI resolution.
"""
