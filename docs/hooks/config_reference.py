"""MkDocs hook: the configuration reference page is generated from the config model at
build time (signing_proxy.config.describe), so it cannot drift from the code."""

from __future__ import annotations

from typing import Any

from signing_proxy.config.describe import reference_markdown

MARKER = "<!-- generated: configuration reference -->"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the marker on docs/configuration.md with the generated reference."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, reference_markdown())
