"""The personal-data inventory covers every table about a citizen, and names only real columns."""
from __future__ import annotations

from flask import Flask

from app.extensions import db
from app.privacy_rights.inventory import BY_TABLE, INVENTORY


def test_every_table_about_a_citizen_is_inventoried(app: Flask) -> None:
    about_a_citizen = {name for name, table in db.metadata.tables.items() if "citizen_id" in table.c}
    assert about_a_citizen | {"citizens"} == set(BY_TABLE), (
        "a table with a citizen_id column: say in app/privacy_rights/inventory.py how export and deletion treat it"
    )


def test_the_inventory_names_real_columns_and_known_treatments(app: Flask) -> None:
    assert len(BY_TABLE) == len(INVENTORY)
    assert len({entry.section for entry in INVENTORY}) == len(INVENTORY), "one export section per table"
    for entry in INVENTORY:
        columns = set(db.metadata.tables[entry.table].c.keys())
        assert entry.owner in columns, entry.table
        assert set(entry.withheld) <= columns, entry.table
        assert set(entry.erase) <= columns, entry.table
        assert entry.on_delete in ("delete", "erase", "keep"), entry.table
        assert bool(entry.erase) == (entry.on_delete == "erase"), entry.table
        assert entry.why, entry.table
