"""Real-time serving: the request protocol shared by the Lambda handler and ``mlship serve``.

``mlship.serve.protocol`` is import-light (numpy + the mlship core) and is shipped in the
Lambda asset; ``mlship.serve.app`` / ``mlship.serve.server`` are the SageMaker container.
"""
