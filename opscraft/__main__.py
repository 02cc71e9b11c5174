"""`python3 -m opscraft`: the CLI, after setting up `.venv` when run from a fresh source checkout."""

from __future__ import annotations

import os
import sys

from opscraft import bootstrap

if __name__ == "__main__":
    if bootstrap.in_checkout() and not bootstrap.in_venv() and not os.environ.get("OPSCRAFT_NO_BOOTSTRAP"):
        python = bootstrap.ensure_venv(bootstrap.extras_for(sys.argv[1:]))
        os.execv(python, [str(python), "-m", "opscraft", *sys.argv[1:]])
    from opscraft.cli import main

    main()
