"""The environment both runners give every run, besides the script's own variables.

A home directory inside the run, writable and removed with it: tools keep per-user state under
`~` (`~/.cache`, `~/.ansible`, `~/.terraform.d`). The container user (`nobody`) has no usable
home (`/nonexistent`), and the OpsCraft user's own home is not the run's to write to.

Ansible needs more than `HOME` (see `remote_tmp`, `local_tmp` and `interpreter_python` in the
Ansible configuration reference):
- with `-c local` it expands its remote temporary directory `~/.ansible/tmp` as `~USER`, the home
  in the password database, so both temporary directories are set to absolute paths;
- it runs modules with the Python it discovers on the target, which with `-c local` may be a
  broken shim or another installation; the Python running `ansible-playbook` itself is used
  instead, as Ansible does for its implicit `localhost`.
"""

from __future__ import annotations

# A constant Ansible templates itself; no user-supplied value is involved.
CONTROLLER_PYTHON = "{{ ansible_playbook_python }}"


def run_env(home: str) -> dict[str, str]:
    """`HOME` = `home` (an absolute path inside the run), Ansible's directories under it, a UTF-8 locale."""
    ansible_tmp = f"{home}/.ansible/tmp"
    return {
        "HOME": home,
        "LANG": "C.UTF-8",
        "ANSIBLE_LOCAL_TEMP": ansible_tmp,
        "ANSIBLE_REMOTE_TEMP": ansible_tmp,
        "ANSIBLE_PYTHON_INTERPRETER": CONTROLLER_PYTHON,
    }
