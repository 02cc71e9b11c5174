"""A name with spaces or tabs around it is that name without them, in the API as in the
browser's forms: a script's name, version label, SSH user and key secret, a parameter's name, a
secret's and a shared inventory's name, an Ansible limit and tags. The forms stripped them before
sending, while the API refused ` deploy ` ("must be 1-128 characters: ASCII letters, digits...", which
named no space), so a name read from a file by a CI job was refused for a blank it could not see
(`names.trimmed`, as usernames were already). A line break stays refused."""

from __future__ import annotations

import httpx

from tests.conftest import LoggedIn


async def test_a_script_s_names_are_saved_without_surrounding_blanks(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    h = operator.headers
    key = {"name": " DEPLOY_KEY\t", "value": "not a key, never used", "kind": "file"}
    r = await client.post("/api/v1/secrets", json=key, headers=h)
    assert r.status_code == 201 and r.json()["name"] == "DEPLOY_KEY", r.text
    secret_id = r.json()["id"]
    body = {
        "name": "  deploy-web \t",
        "script_type": "ansible",
        "content": "- hosts: all\n  gather_facts: false\n  tasks: []\n",
        "version": " 2.0.1 ",
        "parameters": [{"name": " REGION ", "type": "string", "default": "eu"}],
        "inventory": "[web]\nweb1\n",
        "ssh_user": " deploy ",
    }
    r = await client.post("/api/v1/scripts", json=body, headers=h)
    assert r.status_code == 201, r.text
    script = r.json()
    assert (script["name"], script["version"], script["ssh_user"]) == ("deploy-web", "2.0.1", "deploy")
    assert list(script["parameters"]) == ["REGION"], r.text
    r = await client.post(f"/api/v1/scripts/{script['id']}/secrets/{secret_id}", headers=h)
    assert r.status_code == 201, r.text
    r = await client.put(
        f"/api/v1/scripts/{script['id']}", json={"ssh_key_secret": " DEPLOY_KEY "}, headers=h
    )
    assert r.status_code == 200 and r.json()["ssh_key_secret"] == "DEPLOY_KEY", r.text
    # the simple form's keys too; a blank inside is still refused, naming the field
    r = await client.put(f"/api/v1/scripts/{script['id']}", json={"parameters": {" ZONE ": "a"}}, headers=h)
    assert r.status_code == 200 and list(r.json()["parameters"]) == ["ZONE"], r.text
    for name in ("deploy web", "deploy\n"):
        r = await client.put(f"/api/v1/scripts/{script['id']}", json={"name": name}, headers=h)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "name", r.text


async def test_a_shared_inventory_s_name_is_saved_without_surrounding_blanks(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    body = {"name": " web-servers ", "content": "[web]\nweb1\n"}
    r = await client.post("/api/v1/inventories", json=body, headers=operator.headers)
    assert r.status_code == 201 and r.json()["name"] == "web-servers", r.text


async def test_ansible_run_options_are_saved_without_surrounding_blanks(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """The run form trims the limit and each tag; the API refused ` web ` ("no spaces")."""
    h = operator.headers
    body = {
        "name": "site",
        "script_type": "ansible",
        "content": "- hosts: all\n  gather_facts: false\n  tasks: []\n",
        "status": "active",
    }
    r = await client.post("/api/v1/scripts", json=body, headers=h)
    assert r.status_code == 201, r.text
    options = {"limit": " web\t", "tags": [" deploy ", "db"], "skip_tags": ["\tslow "]}
    schedule = {"name": "nightly", "cron": "0 3 * * *", "timezone": "UTC", "run_options": options}
    r = await client.post(f"/api/v1/scripts/{r.json()['id']}/schedules", json=schedule, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["run_options"] == {"limit": "web", "tags": ["deploy", "db"], "skip_tags": ["slow"]}


async def test_an_email_address_is_saved_without_surrounding_blanks(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """An address with a blank around it (pasted, read from a file, `a@x.com, b@x.com` split at
    the comma) was refused "invalid characters before the @-sign: SPACE" by the API, for an
    account and a notification channel alike, while the forms trimmed it. A line break inside
    or after it is still refused."""
    h = admin.headers
    body = {"username": "mailer", "email": " Mailer@Example.com\t", "password": "Mailer-Pass-123"}
    r = await client.post("/api/v1/users", json=body, headers=h)
    assert r.status_code == 201 and r.json()["email"] == "mailer@example.com", r.text
    user_id = r.json()["id"]
    r = await client.put(f"/api/v1/users/{user_id}", json={"email": "\tmail2@example.com "}, headers=h)
    assert r.status_code == 200 and r.json()["email"] == "mail2@example.com", r.text
    r = await client.put("/api/v1/auth/me", json={"email": " root@example.com "}, headers=h)
    assert r.status_code == 200 and r.json()["email"] == "root@example.com", r.text
    for refused in ("root@example.com\n", "ro ot@example.com"):
        r = await client.put("/api/v1/auth/me", json={"email": refused}, headers=h)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "email", r.text
    to = [" ops@example.com", "dev@example.com "]
    config = {"to": to, "from": " bot@example.com ", "host": "smtp.example.com"}
    channel = {"name": "mail", "kind": "email", "config": config}
    r = await client.post("/api/v1/notifications/channels", json=channel, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["config"]["to"] == ["ops@example.com", "dev@example.com"], r.text
    assert r.json()["config"]["from"] == "bot@example.com", r.text
