"""Files encrypted as a whole with Ansible Vault (`ansible-vault encrypt playbook.yml`), which a
playbook or an inventory may not be.

OpsCraft reads a playbook and an inventory when they are saved, without any vault password: the
syntax check and the dangerous-pattern lint read the playbook, `ansible-inventory --list` the
inventory (its hosts, which of them need the network, an address that ssh would read as an
option: services/inventories.py), and the versions page shows and compares both. A whole-file
ciphertext hides all of that, and was refused with a reason that named something else ("a
playbook must be a non-empty YAML list of plays", "Attempting to decrypt but no vault secrets
found"). What Ansible Vault is for here is the values: `ansible-vault encrypt_string` gives
`name: !vault |` lines, which the runs decrypt with the `ANSIBLE_VAULT_PASSWORD_FILE` secret.
"""

from __future__ import annotations

# ansible-core's parsing/vault `b_HEADER`: its `is_encrypted` reads a file that starts with it as
# vault ciphertext (`$ANSIBLE_VAULT;1.1;AES256` or `;1.2;AES256;<vault id>`).
HEADER = "$ANSIBLE_VAULT"


def whole_file(text: str) -> bool:
    """Whether `text` (a playbook or an inventory, byte order mark already dropped) is one Ansible
    Vault ciphertext; leading blank lines, as a paste may add, do not hide it."""
    return text.lstrip().startswith(HEADER)


def problem(what: str) -> str:
    """The refusal of a `what` ("playbook", "inventory") encrypted as a whole."""
    return (
        f"the {what} is encrypted as a whole with Ansible Vault ({HEADER};...), which OpsCraft cannot "
        "check or show without the vault password: encrypt only the values that need it "
        "(ansible-vault encrypt_string writes them as 'name: !vault |') and attach the password "
        "as the file secret ANSIBLE_VAULT_PASSWORD_FILE"
    )
