"""The sunspots sequence project's data: yearly sunspot activity 1700-2008, as shipped by
statsmodels (nothing is downloaded).

    python generate.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from statsmodels.datasets import sunspots


def main(out: Path) -> None:
    frame = sunspots.load_pandas().data.rename(columns={"YEAR": "year", "SUNACTIVITY": "activity"})
    frame["year"] = frame["year"].astype(int)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "sunspots.csv", index=False)
    print(f"wrote {len(frame)} years ({frame.year.min()}-{frame.year.max()}) to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
