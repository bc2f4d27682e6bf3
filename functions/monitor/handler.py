"""Monitor Lambda (placeholder until the monitoring issue lands)."""


def handler(event, context):  # noqa: ARG001
    return {"statusCode": 503, "body": '{"error": "not implemented yet"}'}
