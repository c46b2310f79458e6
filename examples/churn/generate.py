"""Generate the churn example's data: a seeded, realistic customer table.

Customers with demographics (gender, ethnicity, age), a contract, usage and support history,
missing values, PII (name, e-mail, phone) and a rare positive class (churned, about 9%). The
churn rate differs by segment, and the second export (a month later) drifts: more customers,
higher charges, a new region. Nothing is downloaded.

    python examples/churn/generate.py OUT_DIR [--rows 12000] [--seed 7]

writes OUT_DIR/customers.csv (the November export), OUT_DIR/customers_2026-12.csv and
OUT_DIR/customers_2027-01.csv (January: north's prices up by 40, as the demo's drifted traffic
has them; the demo retrains on it when its drift alert fires).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

FIRST = [
    "Ana",
    "Ben",
    "Chloé",
    "Dmitri",
    "Emeka",
    "Fatima",
    "Grace",
    "Hiro",
    "Inés",
    "Jamal",
    "Kai",
    "Lena",
    "Mateo",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Viktor",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoe",
]
LAST = [
    "Adeyemi",
    "Becker",
    "Chen",
    "Dubois",
    "Eriksen",
    "Fernández",
    "García",
    "Haddad",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Müller",
    "Nakamura",
    "Okafor",
    "Patel",
    "Rossi",
    "Singh",
    "Tanaka",
    "Usman",
    "Virtanen",
    "Wang",
    "Yilmaz",
    "Zhang",
]
REGIONS = ["north", "south", "east", "west", "central"]


def customers(rows: int, seed: int, *, drift: float = 0.0, first_id: int = 100_000) -> pa.Table:
    """One export of the customer table; ``drift`` in [0, 1] shifts it as a later month would."""
    rng = np.random.default_rng(seed)
    ids = np.arange(first_id, first_id + rows)
    gender = rng.choice(["female", "male", "nonbinary"], rows, p=[0.49, 0.49, 0.02])
    ethnicity = rng.choice(
        ["group_a", "group_b", "group_c", "group_d"], rows, p=[0.55, 0.2, 0.15, 0.1]
    )
    age = np.clip(rng.normal(42, 14, rows), 18, 90).round().astype(int)
    regions = REGIONS + (["islands"] if drift > 0 else [])
    weights = np.array([0.25, 0.2, 0.2, 0.2, 0.15] + ([0.08] if drift > 0 else []))
    region = rng.choice(regions, rows, p=weights / weights.sum())
    contract = rng.choice(["monthly", "one_year", "two_year"], rows, p=[0.55, 0.27, 0.18])
    tenure = np.clip(rng.exponential(28, rows), 0, 120).round().astype(int)
    charges = np.round(rng.normal(65 + 8 * drift, 22, rows).clip(15, 160), 2)
    support_calls = rng.poisson(1.2 + (contract == "monthly") * 0.8, rows)
    data_gb = np.round(rng.gamma(2.0, 6.0, rows), 1)
    signup = np.datetime64("2026-11-01") - tenure.astype("timedelta64[M]").astype("timedelta64[D]")

    logit = (
        -3.2
        + 1.3 * (contract == "monthly")
        - 0.9 * (contract == "two_year")
        + 0.35 * support_calls
        - 0.02 * tenure
        + 0.012 * (charges - 65)
        + 0.35 * (ethnicity == "group_c")
        + 0.25 * (age < 25)
        + 0.3 * drift
    )
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)

    first = rng.choice(FIRST, rows)
    last = rng.choice(LAST, rows)
    name = np.char.add(np.char.add(first.astype(str), " "), last.astype(str))
    email = np.char.add(
        np.char.add(np.char.lower(first.astype(str)), "."),
        np.char.add(np.char.lower(last.astype(str)), np.char.add(ids.astype(str), "@example.com")),
    )
    phone = np.char.add("+1-555-", rng.integers(1_000_000, 9_999_999, rows).astype(str))

    def with_missing(values: np.ndarray, share: float) -> pa.Array:
        return pa.array(values, mask=rng.random(rows) < share)

    return pa.table(
        {
            "customer_id": pa.array(ids),
            "name": pa.array(name),
            "email": pa.array(email),
            "phone": with_missing(phone, 0.1),
            "gender": with_missing(gender, 0.03),
            "ethnicity": with_missing(ethnicity, 0.05),
            "age": pa.array(age),
            "region": pa.array(region),
            "signup_date": pa.array(signup.astype("datetime64[D]")),
            "contract": pa.array(contract),
            "tenure_months": pa.array(tenure),
            "monthly_charges": with_missing(charges, 0.02),
            "support_calls": pa.array(support_calls),
            "data_gb": with_missing(data_gb, 0.04),
            "churned": pa.array(churned),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=12_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    november = customers(args.rows, args.seed)
    december = customers(int(args.rows * 1.1), args.seed + 1, drift=1.0)
    january = customers(int(args.rows * 1.15), args.seed + 2, drift=1.0)
    north = pc.equal(january.column("region"), "north")
    charges = january.column("monthly_charges")
    raised = pc.if_else(north, pc.add(charges, 40.0), charges)
    january = january.set_column(
        january.schema.get_field_index("monthly_charges"), "monthly_charges", raised
    )
    pcsv.write_csv(november, args.out / "customers.csv")
    pcsv.write_csv(december, args.out / "customers_2026-12.csv")
    pcsv.write_csv(january, args.out / "customers_2027-01.csv")
    rate = float(np.mean(november.column("churned").to_numpy()))
    print(
        f"wrote {args.out}/customers.csv ({november.num_rows:,} rows, churn {rate:.1%}), "
        f"{args.out}/customers_2026-12.csv ({december.num_rows:,} rows) and "
        f"{args.out}/customers_2027-01.csv ({january.num_rows:,} rows)"
    )


if __name__ == "__main__":
    main()
