"""The mlship device agent: installs signed edge packages safely and serves them locally.

Importable with only onnxruntime, numpy, cryptography, the standard library and the mlship
core modules (no boto3, pandas, scikit-learn or pydantic). The optional AWS IoT Jobs channel
(:mod:`edge.agent.iot`) imports botocore lazily, only when a thing name is configured.
"""

from mlship.edge.agent.device import Device, InstallResult, UpdateRejected

__all__ = ["Device", "InstallResult", "UpdateRejected"]
