"""The home directory every run gets: writable, inside the run, removed with it.

Tools keep per-user state under the home directory (`~/.cache`, `~/.ansible`, `~/.terraform.d`).
The run user of a container has no usable home (`nobody`: `/nonexistent`), and the OpsCraft
user's own home is not the run's to write to, so each runner points `HOME` into the run.

Ansible does not rely on `HOME` alone: with `-c local` it expands its remote temporary directory
(`~/.ansible/tmp`) as `~USER`, the home in the password database (see "remote_tmp" and
"local_tmp" in the Ansible configuration reference), so both are set explicitly.
"""

from __future__ import annotations


def home_env(home: str) -> dict[str, str]:
    """Environment variables that put a run's per-user state under `home` (an absolute path)."""
    ansible_tmp = f"{home}/.ansible/tmp"
    return {"HOME": home, "ANSIBLE_LOCAL_TEMP": ansible_tmp, "ANSIBLE_REMOTE_TEMP": ansible_tmp}
