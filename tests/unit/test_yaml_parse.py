"""``agentmesh._yaml.parse``: libyaml's speed, the pure-Python parser's data and errors."""

from __future__ import annotations

import pytest
import yaml

from agentmesh import _yaml

TEXT = "name: g\nnodes:\n  a: {kind: executor, n: 1.5, on: yes}\nedges: [a -> b]\n"


def test_parse_gives_the_safe_loader_s_data_and_node_tree() -> None:
    data, root = _yaml.parse(TEXT)
    assert data == yaml.safe_load(TEXT)
    assert isinstance(root, yaml.MappingNode)
    assert [k.start_mark.line for k, _ in root.value] == [0, 1, 3]
    assert _yaml.parse("") == (None, None)
    assert yaml.__with_libyaml__ is False or _yaml.LOADER is not yaml.SafeLoader


def test_an_error_is_the_pure_python_parser_s() -> None:
    bad = "description: d\ninputs: [unclosed\n"
    with pytest.raises(yaml.YAMLError) as pure:
        yaml.load(bad, Loader=yaml.SafeLoader)
    with pytest.raises(yaml.YAMLError) as failed:
        _yaml.parse(bad)
    assert type(failed.value) is type(pure.value)
    assert str(failed.value) == str(pure.value)  # same problem text, same mark
