"""A documented, seeded generator of synthetic consumer-loan applicants for the `consumer_pd`
model and for load tests (`python -m engine.models.synthetic --rows 1000000 --out apps.parquet`).

Columns are the consumer_loan policy's input paths (applicant.age, applicant.income_monthly, ...,
bureau.score, loan.amount, ...) plus the target `default_12m` (1 = default within 12 months).
Applicants are drawn from a latent credit-quality factor z ~ N(0, 1) that shapes the bureau data;
the default flag is then drawn from a stated logistic ground truth on the *observed* columns:

    logit P(default) = -2.95
        - 0.20 * (age - 40) / 10
        - 0.45 * ln(income_monthly / 8000)
        + {salaried: 0.00, civil_servant: -0.50, self_employed: 0.35, unemployed: 1.00,
           retired: 0.10}[employment_type]
        - 0.005 * min(employment_months, 120)
        + {own: -0.30, mortgage: -0.15, rent: 0.15, family: 0.00}[residence_type]
        + 1.20 * min(dti, 1.5)                  # dti = debt.monthly_payments / applicant.income_monthly
        - 0.012 * (bureau_score - 650)
        + 0.40 * delinquencies_24m
        + 0.12 * inquiries_6m
        + 0.70 * utilisation
        - 0.004 * min(months_on_file, 120)
        + 0.15 * ln(loan_amount / 20000)
        + 0.010 * (term_months - 36)

Protected (applicant.gender, applicant.marital_status) and PII (applicant.name, applicant.id_number)
columns are generated independently of the outcome, so a model cannot learn from them.
The same (rows, seed) always gives the same frame: rows are drawn in fixed-size chunks, each from
its own `numpy.random.SeedSequence(seed).spawn` child, so large files stream with bounded memory.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

INTERCEPT = -2.95
EMPLOYMENT = {
    "salaried": 0.00,
    "civil_servant": -0.50,
    "self_employed": 0.35,
    "unemployed": 1.00,
    "retired": 0.10,
}
RESIDENCE = {"own": -0.30, "mortgage": -0.15, "rent": 0.15, "family": 0.00}
EMPLOYMENT_SHARE = {
    "salaried": 0.55,
    "civil_servant": 0.12,
    "self_employed": 0.18,
    "unemployed": 0.07,
    "retired": 0.08,
}
TERMS = (12, 24, 36, 48, 60)
PURPOSES = ("car", "home_improvement", "education", "medical", "debt_consolidation", "travel", "other")
CHUNK = 100_000
TARGET = "default_12m"
# `--applications`: the purposes the consumer_loan policy accepts; any other is sent as "other"
APPLICATION_PURPOSES = frozenset(
    {"consumption", "education", "travel", "medical", "home_improvement", "wedding", "car", "other"}
)


# The ground truth of the module docstring, as data (the model card records it verbatim).
COEFFICIENTS = {
    "(age - 40) / 10": -0.20,
    "ln(income_monthly / 8000)": -0.45,
    "min(employment_months, 120)": -0.005,
    "min(dti, 1.5)": 1.20,
    "bureau_score - 650": -0.012,
    "delinquencies_24m": 0.40,
    "inquiries_6m": 0.12,
    "utilisation": 0.70,
    "min(months_on_file, 120)": -0.004,
    "ln(loan_amount / 20000)": 0.15,
    "term_months - 36": 0.010,
}


def ground_truth() -> dict[str, object]:
    """The logistic ground truth as a JSON-ready record for the model card."""
    return {
        "model": "logit P(default_12m = 1) = intercept + sum(coefficient * term) + employment + residence",
        "intercept": INTERCEPT,
        "coefficients": COEFFICIENTS,
        "employment_type": EMPLOYMENT,
        "residence_type": RESIDENCE,
    }


def ground_truth_logit(frame: pd.DataFrame) -> np.ndarray:
    """The stated logistic ground truth (see module docstring) on a generated frame."""

    def col(name: str) -> np.ndarray:
        return frame[name].to_numpy(dtype=float)

    income = col("applicant.income_monthly")
    terms = {
        "(age - 40) / 10": (col("applicant.age") - 40) / 10,
        "ln(income_monthly / 8000)": np.log(income / 8000),
        "min(employment_months, 120)": np.minimum(col("applicant.employment_months"), 120),
        "min(dti, 1.5)": np.minimum(col("debt.monthly_payments") / income, 1.5),
        "bureau_score - 650": col("bureau.score") - 650,
        "delinquencies_24m": col("bureau.delinquencies_24m"),
        "inquiries_6m": col("bureau.inquiries_6m"),
        "utilisation": col("bureau.utilisation"),
        "min(months_on_file, 120)": np.minimum(col("bureau.months_on_file"), 120),
        "ln(loan_amount / 20000)": np.log(col("loan.amount") / 20000),
        "term_months - 36": col("loan.term_months") - 36,
    }
    logit = INTERCEPT + sum(COEFFICIENTS[name] * values for name, values in terms.items())
    logit = logit + frame["applicant.employment_type"].map(EMPLOYMENT).to_numpy(dtype=float)
    return np.asarray(logit + frame["applicant.residence_type"].map(RESIDENCE).to_numpy(dtype=float))


def _chunk(rng: np.random.Generator, n: int, start: int) -> pd.DataFrame:
    z = rng.standard_normal(n)  # latent credit quality: higher is better
    age = np.clip(np.round(rng.gamma(3.0, 7.0, n) + 19), 18, 85).astype(np.int64)
    kinds = np.array(list(EMPLOYMENT_SHARE))
    employment = rng.choice(kinds, size=n, p=list(EMPLOYMENT_SHARE.values()))
    employment = np.where((age >= 60) & (rng.random(n) < 0.6), "retired", employment)
    employment = np.where((age < 50) & (employment == "retired"), "salaried", employment)
    base_income = {
        "salaried": 9000,
        "civil_servant": 10000,
        "self_employed": 11000,
        "unemployed": 2500,
        "retired": 5000,
    }
    median = np.array([base_income[e] for e in employment]) * (1 + 0.01 * np.clip(age - 22, 0, 30))
    income = np.clip(np.round(median * np.exp(0.5 * rng.standard_normal(n) + 0.1 * z), 0), 800, 500_000)
    max_months = np.maximum((age - 17) * 12, 0)
    employment_months = np.where(
        np.isin(employment, ["unemployed", "retired"]),
        0,
        np.minimum(np.floor(rng.exponential(60, n)), max_months),
    ).astype(np.int64)
    p_own = np.clip((age - 25) / 60, 0.02, 0.6)
    u = rng.random(n)
    residence = np.select(
        [u < p_own, u < p_own + 0.25, u < p_own + 0.25 + 0.3], ["own", "mortgage", "rent"], "family"
    )
    dti = np.clip(rng.beta(2.0, 6.0, n) - 0.05 * z, 0.0, 1.5)
    payments = np.round(income * dti, 2)
    score = np.clip(np.round(650 + 70 * z + 20 * rng.standard_normal(n)), 300, 900).astype(np.int64)
    delinquencies = rng.poisson(np.exp(-1.6 - 0.8 * z)).astype(np.int64)
    inquiries = rng.poisson(np.exp(0.0 - 0.3 * z)).astype(np.int64)
    utilisation = np.round(np.clip(rng.beta(2.0, 3.0, n) * (1.0 - 0.25 * z), 0.0, 2.0), 4)
    months_on_file = np.minimum(np.floor(rng.uniform(0, 1, n) * np.maximum((age - 18) * 12, 1)), 600)
    amount = np.clip(np.round(np.exp(rng.normal(np.log(income * 3), 0.6)), -2), 1000, 200_000)
    term = rng.choice(np.array(TERMS), size=n, p=[0.15, 0.3, 0.3, 0.15, 0.1])
    frame = pd.DataFrame(
        {
            "applicant.id_number": [f"SYN{start + i:010d}" for i in range(n)],
            "applicant.name": [f"Applicant {start + i}" for i in range(n)],
            "applicant.age": age,
            "applicant.income_monthly": income,
            "applicant.employment_type": employment,
            "applicant.employment_months": employment_months,
            "applicant.residence_type": residence,
            "applicant.gender": rng.choice(
                np.array(["female", "male", "other"]), size=n, p=[0.49, 0.49, 0.02]
            ),
            "applicant.marital_status": rng.choice(
                np.array(["single", "married", "divorced", "widowed"]), size=n, p=[0.4, 0.45, 0.1, 0.05]
            ),
            "debt.monthly_payments": payments,
            "bureau.score": score,
            "bureau.delinquencies_24m": delinquencies,
            "bureau.inquiries_6m": inquiries,
            "bureau.utilisation": utilisation,
            "bureau.months_on_file": months_on_file.astype(np.int64),
            "bureau.bankruptcy": rng.random(n) < 0.01 * np.exp(-z),
            "loan.amount": amount,
            "loan.term_months": term.astype(np.int64),
            "loan.purpose": rng.choice(np.array(PURPOSES), size=n),
            "flags.blacklisted": rng.random(n) < 0.002,
        }
    )
    probability = 1.0 / (1.0 + np.exp(-ground_truth_logit(frame)))
    frame[TARGET] = (rng.random(n) < probability).astype(np.int64)
    return frame


def iter_chunks(rows: int, seed: int, chunk: int = CHUNK) -> Iterator[pd.DataFrame]:
    """The population in chunks of `chunk` rows; concatenated they equal `generate(rows, seed)`."""
    count = (rows + CHUNK - 1) // CHUNK
    children = np.random.SeedSequence(seed).spawn(max(count, 1))
    for index in range(count):
        n = min(CHUNK, rows - index * CHUNK)
        yield _chunk(np.random.default_rng(children[index]), n, index * CHUNK)


def generate(rows: int, seed: int) -> pd.DataFrame:
    """`rows` applicants with their default flag; deterministic in (rows-prefix, seed)."""
    return pd.concat(list(iter_chunks(rows, seed)), ignore_index=True)


def as_applications(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as consumer_loan applications: a purpose the policy does not list becomes "other"
    (the target column stays: a simulation leaves columns the policy does not declare aside)."""
    purpose = frame["loan.purpose"]
    return frame.assign(**{"loan.purpose": purpose.where(purpose.isin(APPLICATION_PURPOSES), "other")})


def shifted(frame: pd.DataFrame, income_factor: float = 0.5, bureau_points: int = -80) -> pd.DataFrame:
    """The frame with incomes scaled by `income_factor` and bureau scores moved by `bureau_points`
    (kept in 300..900): a poorer, riskier population than the models were trained on, for drift
    tests and demonstrations (engine.monitor.drift)."""
    return frame.assign(
        **{
            "applicant.income_monthly": (frame["applicant.income_monthly"] * income_factor).round(),
            "bureau.score": (frame["bureau.score"] + bureau_points).clip(300, 900),
        }
    )


def write(rows: int, seed: int, out: Path, applications: bool = False) -> None:
    """Stream to CSV or Parquet (by suffix) chunk by chunk, so 10M+ rows fit in memory; each chunk is
    one Parquet row group, so readers can stream it back the same way."""
    out.parent.mkdir(parents=True, exist_ok=True)
    frames = (as_applications(f) if applications else f for f in iter_chunks(rows, seed))
    if out.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        writer: pq.ParquetWriter | None = None
        try:
            for frame in frames:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                writer = writer or pq.ParquetWriter(out, table.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()
    else:
        for index, frame in enumerate(frames):
            frame.to_csv(out, mode="w" if index == 0 else "a", header=index == 0, index=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write a synthetic consumer-loan population (CSV or Parquet)."
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--out", type=Path, required=True, help="*.csv or *.parquet")
    parser.add_argument(
        "--applications", action="store_true", help="valid consumer_loan applications (purposes mapped)"
    )
    args = parser.parse_args(argv)
    write(args.rows, args.seed, args.out, args.applications)
    print(f"wrote {args.rows} rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
