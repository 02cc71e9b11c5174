"""Entry point of the packaged binary: the `opscraft` CLI (desktop window by default on a desktop)."""

import multiprocessing
import sys

from opscraft.execution import supervisor  # standard library only: cheap before the CLI

if __name__ == "__main__":
    # The local runner's fork server (opscraft/execution/fork_server.py): there is no Python
    # in the bundle to start supervisor.py with, so the binary itself becomes it.
    if sys.argv[1:2] == [supervisor.FROZEN_FLAG]:
        sys.exit(supervisor.main(sys.argv[2:]))
    # The desktop window runs in a spawned process: in a frozen binary the child re-enters here
    # and freeze_support() turns it into that process instead of a second CLI.
    multiprocessing.freeze_support()
    from opscraft.cli import main

    main()
