"""Errors of A/B test analysis: bad input is refused with a message, never turned into a verdict."""

from __future__ import annotations

from mlship.errors import MlshipError


class ExperimentInputError(MlshipError):
    """The experiment's data cannot be analysed as asked (the CLI exits 2 with this message)."""

    kind = "experiment_input"


class MissingColumnError(ExperimentInputError):
    """The table lacks a named column."""

    kind = "missing_column"


class UnknownVariantError(ExperimentInputError):
    """The control or treatment variant does not occur in the data."""

    kind = "unknown_variant"


class NoLabelsError(ExperimentInputError):
    """No inference record of the window has a label."""

    kind = "no_labels"


class TooFewUnitsError(ExperimentInputError):
    """A variant has fewer units than the minimum the statistics need."""

    kind = "too_few_units"


class BadOutcomeError(ExperimentInputError):
    """Outcomes that the metric cannot read (a binary metric with values other than 0/1, NaN, text)."""

    kind = "bad_outcome"
