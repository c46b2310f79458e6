from __future__ import annotations

from mlplan.cli import main

if __name__ == "__main__":
    main()
