"""mlship's edge path: build optimized, signed ONNX packages, publish them through AWS IoT Jobs,
and install them safely on devices with the agent in :mod:`edge.agent`."""
