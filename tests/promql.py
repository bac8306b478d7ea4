"""Metric names in PromQL, read with a real PromQL parser (promql-parser from PyPI)."""

from __future__ import annotations

import re

import promql_parser

# Grafana's variables, replaced by values that parse the same way.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "${datasource}": "x",
                "$farm": ".*", "$job": ".*", "$instance": ".*"}


def substitute(expr: str) -> str:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    if "$" in re.sub(r"\{\{[^}]*\}\}", "", expr):
        raise ValueError(f"unknown Grafana variable in {expr!r}")
    return expr


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def walk(node) -> None:
        if type(node).__name__ == "VectorSelector" and node.name:
            names.add(node.name)
        for attr in ("lhs", "rhs", "expr", "args", "param", "vector_selector"):
            child = getattr(node, attr, None)
            for c in child if isinstance(child, list) else [child]:
                if c is not None and hasattr(c, "prettify"):
                    walk(c)

    walk(promql_parser.parse(substitute(expr)))
    return names


def served_family(name: str) -> str:
    """The family a sample name belongs to: histograms serve _bucket, _sum, _count."""
    return re.sub(r"_(bucket|sum|count)$", "", name)
