"""The self-contained HTML report: one file, no network, rendered from the profile's JSON dict.

Jinja autoescape is on for every value, so names from the model (node names, input names, producer)
are text, never markup. The page carries a Content-Security-Policy that allows no network at all and
only the one inline script whose hash it states: even a name that slipped through escaping could not
run code or fetch anything. No timestamps: the same model and options give a byte-identical file.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import jinja2
from markupsafe import Markup

from hawkeye_onnx import __version__
from hawkeye_onnx.network import DEFAULT_NETWORKS, Network, human_seconds
from hawkeye_onnx.report_data import build_view, exact, human_bytes, templates_dir


@lru_cache(maxsize=1)
def html_env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=False, lstrip_blocks=False)
    env.filters["hb"] = human_bytes
    env.filters["ex"] = exact
    env.filters["hs"] = human_seconds
    env.filters["short"] = short_name
    return env


def short_name(name: str) -> str:
    """A node's name without the module path the tree already shows: `/layer1/conv1/Conv` -> `Conv`."""
    tail = name.rsplit("/", 1)[-1]
    return tail or name


def _asset(name: str) -> str:
    return (templates_dir() / "partials" / name).read_text(encoding="utf-8")


def page_assets() -> dict[str, Any]:
    """Inline CSS and JS, and the CSP hash that allows exactly that script."""
    js = _asset("report.js")
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode("ascii")
    return {"css": Markup(_asset("report.css")), "js": Markup(js), "script_hash": f"sha256-{digest}",
            "version": __version__}


def render_html(data: Mapping[str, Any] | Any, nets: Sequence[Network] = DEFAULT_NETWORKS, depth: int = 1,
                top: int = 15, max_rows: int = 500, max_children: int = 40, tree_depth: int | None = None) -> str:
    """The report page for a profile (a `Profile` or its `to_dict()`).

    The module tree shows at most `max_rows` rows (breadth first), `max_children` per level and
    `tree_depth` levels (None: as deep as the row budget allows)."""
    d = data.to_dict() if hasattr(data, "to_dict") else data
    view = build_view(d, nets, depth=depth, top=top, max_rows=max_rows, max_children=max_children,
                      tree_depth=tree_depth)
    view["totals_on"] = [view["backends"][n]["total"]["online"]["bytes"] for n in view["names"]]
    view["any_unsupported"] = any(b.get("unsupported") for b in view["backends"].values())
    view["max_unsupported_nodes"] = 8
    return html_env().get_template("report.html.j2").render(**view, **page_assets())
