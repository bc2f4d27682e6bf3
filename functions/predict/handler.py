"""Prediction Lambda (placeholder until the real-time serving issue lands)."""


def handler(event, context):  # noqa: ARG001
    return {"statusCode": 503, "body": '{"error": "not implemented yet"}'}
