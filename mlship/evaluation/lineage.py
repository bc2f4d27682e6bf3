"""Fingerprints of the data a model was exported or evaluated on (lineage in manifests and reports)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlship.runtime.hashing import sha256_bytes


def dataframe_sha256(frame: Any) -> str:
    """sha256 of a pandas DataFrame's content (pandas row hashes, index ignored)."""
    return sha256_bytes(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
