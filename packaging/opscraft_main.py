"""Entry point of the packaged binary: the `opscraft` CLI (desktop window by default on a desktop)."""

import multiprocessing

if __name__ == "__main__":
    # The desktop window runs in a spawned process: in a frozen binary the child re-enters here
    # and freeze_support() turns it into that process instead of a second CLI.
    multiprocessing.freeze_support()
    from opscraft.cli import main

    main()
