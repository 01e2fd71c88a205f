"""Every secret the inventories' vault examples hold is tagged `!unsafe`: Ansible never templates a password."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT

EXAMPLES = sorted(ROOT.glob("inventories/*/group_vars/*/vault.yml.example"))


class _Tagged(yaml.SafeLoader):
    pass


_Tagged.add_constructor("!unsafe", lambda loader, node: ("unsafe", loader.construct_scalar(node)))


def test_there_are_vault_examples():
    assert EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_vault_example_value_is_unsafe(path):
    values = yaml.load(path.read_text(), Loader=_Tagged)
    assert values and all(isinstance(v, tuple) and v[0] == "unsafe" for v in values.values()), values
