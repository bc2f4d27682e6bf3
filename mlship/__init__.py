"""mlship: one signed ONNX bundle, every AWS target."""

__version__ = "0.1.0"
