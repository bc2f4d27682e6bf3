"""The runtime tier: the bundle contract and the one prediction path.

Bundle reading and verification, signing, hashing, the input schema and validation, the
predictor and the HTTP request protocol. Imports the standard library, numpy, onnxruntime,
cryptography and packaging only: Lambda, ``mlship serve``, Spark workers and devices import it.
"""
