"""Real-time serving: the request protocol shared by the Lambda handler and ``mlship serve``.

``mlship.runtime.protocol`` is import-light (numpy + the mlship core) and is shipped in the
Lambda asset; ``mlship.serving.app`` / ``mlship.serving.server`` are the SageMaker container.
"""
