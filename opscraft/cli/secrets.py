"""`opscraft secrets generate-key|rotate-key`: master key commands (see docs/secrets.md)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from opscraft.cli.common import Factory, run_with_database, with_data_dir

if TYPE_CHECKING:
    from opscraft.config import Settings
    from opscraft.security.vault import MasterKey

NEW_KEY_ENV = "OPSCRAFT_NEW_MASTER_KEY"


def cmd_generate_key(_args: argparse.Namespace, _settings: Settings) -> None:
    """`opscraft secrets generate-key`: print a new random vault master key (base64 of KEY_BYTES random
    bytes), as OPSCRAFT_MASTER_KEY takes it.
    """
    from opscraft.security import vault  # here, as every command's imports: `--help` needs none

    print(vault.generate_key_text())


def _new_key(args: argparse.Namespace, settings: Settings) -> MasterKey:
    from opscraft.config import ConfigError
    from opscraft.security import vault

    if os.environ.get(NEW_KEY_ENV):
        return vault.parse_key(os.environ[NEW_KEY_ENV], NEW_KEY_ENV)
    if args.new_key_file:
        return vault.read_key_file(Path(args.new_key_file))
    if settings.master_key:
        raise ConfigError(
            f"{vault.ENV_NAME} is set, so give the new key: {NEW_KEY_ENV}=<key> or "
            f"--new-key-file PATH ({vault.GENERATE_HINT})"
        )
    return vault.parse_key(vault.generate_key_text(), "generated key")


def cmd_rotate_key(args: argparse.Namespace, settings: Settings) -> None:
    """Re-encrypt every secret under a new master key; the old key is the configured one."""
    from opscraft import runtime
    from opscraft.config import ConfigError
    from opscraft.security import vault
    from opscraft.services import keyring
    from opscraft.services.errors import ServiceError

    try:
        new_key = _new_key(args, settings)
    except ConfigError as exc:
        sys.exit(f"opscraft: {exc}")
    key_file = None if settings.master_key else settings.data_dir / vault.KEY_FILE

    async def body() -> None:
        staged = key_file.with_name(vault.STAGED_KEY_FILE) if key_file else None
        if staged:  # written before the commit, so the new key cannot be lost
            staged.unlink(missing_ok=True)
            vault.write_key_file(staged, new_key.encoded())
        try:
            async with runtime.current().db.session() as session:
                new, count = await keyring.rotate(session, keyring.current_vault(), new_key)
        except ServiceError as exc:
            if staged:
                staged.unlink(missing_ok=True)
            sys.exit(f"opscraft: {exc.message}")
        if staged and key_file:
            os.replace(staged, key_file)
            where = f"the new key replaced {key_file}"
        else:
            where = f"now set {vault.ENV_NAME} to the new key wherever OpsCraft runs"
        print(f"re-encrypted {count} secret(s) under key version {new.key_version}; {where}")
        print("restart every OpsCraft process: the old key no longer opens the vault")

    run_with_database(settings, body)


def register(sub: Factory) -> None:
    """Add the `secrets` command group to the CLI's subparsers (`sub` is its `add_parser`)."""
    group = sub("secrets", help="master key of the secrets vault").add_subparsers(
        dest="secrets_command", required=True
    )
    group.add_parser("generate-key", help="print a new random master key (base64 of 32 bytes)").set_defaults(
        func=cmd_generate_key
    )
    rotate = with_data_dir(
        group.add_parser(
            "rotate-key",
            help="re-encrypt every secret under a new master key (stop OpsCraft first)",
            description=(
                "The current key is the configured one (OPSCRAFT_MASTER_KEY or the data directory's "
                f"master.key). The new key comes from {NEW_KEY_ENV}, else --new-key-file, else (key "
                "file set-ups only) is generated and replaces master.key."
            ),
        )
    )
    rotate.add_argument("--new-key-file", help="file (mode 0600) holding the new key in base64")
    rotate.set_defaults(func=cmd_rotate_key)
