"""Online experiments: A/B test analysis (:mod:`mlship.experiments`) and shadow agreement reports."""
