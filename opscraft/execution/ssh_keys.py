"""Why an Ansible run's SSH key secret cannot log in, told before ssh tries it.

ssh reads the key file itself and, in a run, has nobody to type a passphrase and no words for a
file in another format: a passphrase-protected key ended the run with `Permission denied
(publickey)` as if the host had refused it, a public key or a PuTTY file with `Load key ...:
error in libcrypto` (or the same `Permission denied`). `key_problem` names each of these from
the key's text, so the run ends in `error` saying what to store instead.
"""

from __future__ import annotations

import base64
import binascii
import re

OPENSSH_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----"
OPENSSH_END = "-----END OPENSSH PRIVATE KEY-----"
OPENSSH_MAGIC = b"openssh-key-v1\x00"
# The first word of a public key line (`ssh-keygen`'s .pub file, an authorized_keys line).
PUBLIC_KEY_RE = re.compile(r"(ssh-(rsa|dss|ed25519)|ecdsa-sha2-nistp\d+|sk-\S+@openssh\.com)\s+AAAA")
PASSPHRASE_ADVICE = (
    "a run has nobody to type it: store the key without one "
    "(`ssh-keygen -p -N '' -f KEYFILE` removes it from a copy)"
)


def key_problem(text: str) -> str | None:
    """What makes `text` (a `file` secret's content) a key ssh cannot use unattended, as words
    to end the run with, or None for a key that may log in (an unencrypted private key, or a
    text this module does not recognize: ssh then says what it finds). Recognized: a
    passphrase-protected key (OpenSSH format with a cipher other than `none`, PEM with
    `Proc-Type: 4,ENCRYPTED`, PKCS#8 `ENCRYPTED PRIVATE KEY`), a public key instead of the
    private one, and PuTTY's `.ppk` format."""
    stripped = text.strip().removeprefix("\ufeff").strip()
    if stripped.startswith("PuTTY-User-Key-File-"):
        return (
            "is in PuTTY's .ppk format, which ssh does not read: export it in PuTTYgen with "
            "Conversions > Export OpenSSH key and store that"
        )
    if PUBLIC_KEY_RE.match(stripped):
        return "is a public key: store the private key (the file without .pub) instead"
    if "-----BEGIN ENCRYPTED PRIVATE KEY-----" in stripped or re.search(
        r"^Proc-Type:\s*4,\s*ENCRYPTED", stripped, re.M
    ):
        return f"is protected by a passphrase: {PASSPHRASE_ADVICE}"
    if stripped.startswith(OPENSSH_BEGIN) and _openssh_cipher(stripped) not in (None, b"none"):
        return f"is protected by a passphrase: {PASSPHRASE_ADVICE}"
    return None


def _openssh_cipher(text: str) -> bytes | None:
    """The cipher name of an OpenSSH-format private key (PROTOCOL.key: the magic, then the
    cipher name as a uint32-length string), or None when the text does not decode as one."""
    body = text.removeprefix(OPENSSH_BEGIN).split(OPENSSH_END, 1)[0]
    try:
        data = base64.b64decode("".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    if not data.startswith(OPENSSH_MAGIC) or len(data) < len(OPENSSH_MAGIC) + 4:
        return None
    start = len(OPENSSH_MAGIC)
    length = int.from_bytes(data[start : start + 4], "big")
    name = data[start + 4 : start + 4 + length]
    return name if len(name) == length else None
