"""The package's layout: no import cycle between its folders and top-level modules."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'stkd_ros'


def _unit(module: str) -> str:
    """Return the folder (``stkd_ros.bag``) or top-level module (``stkd_ros.cli``) of a module."""
    return '.'.join(module.split('.')[:2])


def import_graph() -> dict:
    """Map each unit to the other units it imports (every import statement, lazy ones too)."""
    graph = {}
    for path in PACKAGE.rglob('*.py'):
        parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
        module = '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)
        targets = graph.setdefault(_unit(module), set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                # 'from stkd_ros import temporal' imports the module stkd_ros.temporal
                names = [f'{node.module}.{a.name}' for a in node.names]
            else:
                names = []
            targets.update(_unit(n) for n in names if n.startswith('stkd_ros.'))
        targets.discard(_unit(module))
    return graph


def find_cycle(graph: dict):
    """Return one cycle as a list of units, or None."""
    state = {}

    def visit(unit, path):
        state[unit] = 'open'
        for nxt in sorted(graph.get(unit, ())):
            if state.get(nxt) == 'open':
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[unit] = 'done'
        return None

    for unit in sorted(graph):
        if unit not in state:
            found = visit(unit, [unit])
            if found:
                return found
    return None


def test_find_cycle_finds_one():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': set()}) is None


def test_no_import_cycle_between_folders():
    graph = import_graph()
    assert 'stkd_ros.nodes' in graph and 'stkd_ros.bag' in graph
    assert find_cycle(graph) is None, ' -> '.join(find_cycle(graph))
