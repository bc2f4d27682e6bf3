"""Exceptions raised by mlship, each carrying a message that names the problem."""

from __future__ import annotations

from dataclasses import dataclass


class MlshipError(Exception):
    """Base class: every mlship error has a human-readable message and a machine kind."""

    kind = "error"


class BundleError(MlshipError):
    """A bundle cannot be read (missing file, unreadable manifest, bad URI)."""

    kind = "bundle"


class BundleNotFound(BundleError):
    """Nothing is stored where the bundle should be (no such key, prefix or bucket): retrying will not help."""

    kind = "bundle_not_found"


class TransientDownloadError(BundleError):
    """A download failed in a way that may pass (throttling, a 5xx answer, a lost connection): retry later."""

    kind = "transient_download"


class VerificationError(BundleError):
    """A bundle's hashes or signature do not match; ``problems`` names each file or field."""

    kind = "verification"

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("bundle verification failed: " + "; ".join(problems))


class GoldenCheckError(BundleError):
    """The model does not reproduce its golden examples: it must not serve."""

    kind = "golden"


class ModelOutputError(MlshipError):
    """The model produced an output no answer can carry (NaN or infinity): a model-side failure.

    HTTP paths answer 5xx with ``kind`` ``model_error`` (counted as a model failure, never as a
    client's mistake); batch paths quarantine the rows with reason ``non_finite_output``.
    """

    kind = "model_error"

    def __init__(self, rows: list[int]):
        self.rows = rows
        shown = ", ".join(str(r) for r in rows[:10]) + (" ..." if len(rows) > 10 else "")
        super().__init__(f"the model produced a non-finite output (NaN or infinity) for row(s) {shown}")


class ExportError(MlshipError):
    """An estimator cannot be exported (unsupported, parity failure, bad holdout)."""

    kind = "export"


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of one input row (``row`` is 0-based, None for the whole input)."""

    row: int | None
    field: str | None
    kind: str
    message: str

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message

    def to_dict(self) -> dict:
        return {"row": self.row, "field": self.field, "kind": self.kind, "message": self.message}


class ValidationError(MlshipError):
    """Input does not match the model's schema; ``errors`` lists every field-level problem."""

    kind = "validation"
    max_listed = 20

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        shown = "; ".join(str(e) for e in errors[: self.max_listed])
        more = f" (and {len(errors) - self.max_listed} more)" if len(errors) > self.max_listed else ""
        super().__init__(f"invalid input: {shown}{more}")

    @property
    def kinds(self) -> set[str]:
        return {e.kind for e in self.errors}

    def to_dict(self) -> dict:
        return {"error": "invalid input", "errors": [e.to_dict() for e in self.errors[:100]],
                "error_count": len(self.errors)}
