"""`layout.show_field_errors` puts a refusal's problems under their fields, and leaves to the
caller's toast a problem whose field the form hides: one under a hidden field (the Ansible
fields of a script whose type was changed to Bash) was shown where nobody could see it, and
Save seemed to do nothing."""

from __future__ import annotations

from nicegui import Client, ui
from nicegui.page import page

from opscraft.services.errors import Invalid
from opscraft.ui.layout import show_field_errors


def _refusal(*fields: str) -> Invalid:
    return Invalid("refused", details=[{"field": f, "message": f"{f} is wrong"} for f in fields])


def test_a_problem_goes_under_its_visible_field() -> None:
    with Client(page("/field-errors")):
        name = ui.input("Name")
        assert show_field_errors({"name": name}, _refusal("name")) is True
        assert name.error == "Name is wrong"


def test_a_problem_of_a_field_in_a_hidden_section_is_left_to_the_toast() -> None:
    with Client(page("/field-errors")):
        name = ui.input("Name")
        with ui.column() as ansible_section:
            inventory = ui.input("Inventory")
        ansible_section.visible = False
        fields = {"name": name, "inventory": inventory}
        assert show_field_errors(fields, _refusal("name", "inventory")) is False
        assert name.error == "Name is wrong"
        assert inventory.error is None


def test_a_problem_of_a_hidden_field_is_left_to_the_toast() -> None:
    with Client(page("/field-errors")):
        key = ui.input("SSH key")
        key.visible = False
        assert show_field_errors({"ssh_key_secret": key}, _refusal("ssh_key_secret")) is False
        assert key.error is None
