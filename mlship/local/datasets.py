"""Synthetic, deterministic tabular data for demos, tests and benchmarks (no downloads)."""

from __future__ import annotations

from typing import Any

import numpy as np

CHURN_LABEL = "churned"
CHURN_SENSITIVE = "gender"
CHURN_NUMERIC = ["tenure_months", "monthly_charges", "total_charges", "support_calls", "age"]
CHURN_CATEGORICAL = ["contract", "payment_method", "internet_service", "gender"]
CONTRACTS = ["month-to-month", "one-year", "two-year"]
PAYMENTS = ["electronic-check", "mailed-check", "bank-transfer", "credit-card"]
INTERNET = ["dsl", "fiber", "none"]
GENDERS = ["female", "male"]


def make_churn(n_rows: int = 6000, seed: int = 0, shift: bool | float = False) -> Any:
    """A churn-like DataFrame: numeric and categorical features, a sensitive attribute, a label.

    ``shift`` (True or a strength) produces drifted traffic: higher charges, more support calls
    and more month-to-month contracts; age and gender keep their distribution.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    s = float(shift) if shift else 0.0
    contract_p = np.array([0.55, 0.25, 0.20])
    if s:
        contract_p = np.array([0.55 + 0.25 * s, 0.25 - 0.15 * s, 0.20 - 0.10 * s])
    contract = rng.choice(CONTRACTS, size=n_rows, p=contract_p / contract_p.sum())
    payment = rng.choice(PAYMENTS, size=n_rows, p=[0.35, 0.2, 0.22, 0.23])
    internet = rng.choice(INTERNET, size=n_rows, p=[0.35, 0.45, 0.2])
    gender = rng.choice(GENDERS, size=n_rows)
    age = rng.integers(18, 86, size=n_rows)
    tenure = np.clip(rng.gamma(2.0, 14.0, size=n_rows), 0, 72).astype(np.int64)
    base = np.where(internet == "fiber", 80.0, np.where(internet == "dsl", 55.0, 25.0))
    # reflect at the floor instead of clipping: a mass of identical values sits exactly on a
    # quantile split threshold of tree models, where float32 (ONNX) and float64 disagree
    monthly = np.round(18.0 + np.abs(base + rng.normal(0, 12, n_rows) + 25 * s - 18.0), 2)
    total = np.round(monthly * tenure * (1 + rng.normal(0, 0.03, n_rows)), 2)
    total = np.where(tenure == 0, np.nan, total)  # new customers: not billed yet
    support = rng.poisson(1.2 + 2.0 * s + (contract == "month-to-month") * 0.8, n_rows).astype(np.int64)
    logit = (-1.6 + 1.3 * (contract == "month-to-month") - 0.9 * (contract == "two-year")
             - 0.035 * tenure + 0.018 * (monthly - 60) + 0.35 * support
             + 0.5 * (payment == "electronic-check") + 0.4 * (internet == "fiber")
             + 0.15 * (gender == "male") - 0.004 * (age - 45))
    churned = (rng.random(n_rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame({
        "tenure_months": tenure, "monthly_charges": monthly, "total_charges": total,
        "support_calls": support, "age": age, "contract": contract, "payment_method": payment,
        "internet_service": internet, "gender": gender, CHURN_LABEL: churned,
    })


def make_numeric(n_rows: int, n_features: int = 20, seed: int = 0, task: str = "classification") -> Any:
    """A purely numeric DataFrame (``f00``..) with a ``label`` column, for benchmarks."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_rows, n_features)).astype(np.float64)
    w = rng.normal(size=n_features)
    score = x @ w + 0.5 * np.sin(x[:, 0] * 2)
    df = pd.DataFrame(x, columns=[f"f{i:02d}" for i in range(n_features)])
    if task == "classification":
        df["label"] = (score + rng.normal(0, 1, n_rows) > 0).astype(np.int64)
    else:
        df["label"] = score * 10 + rng.normal(0, 1, n_rows)
    return df
