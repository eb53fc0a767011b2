"""Markdown for answers shown to customers, rendered safely.

Answers come from owners' FAQs and documents and from a language model, so both may contain
hostile HTML. Markdown is rendered first, then nh3 keeps an allowlist: no scripts or styles
(their content is dropped too), no event or style attributes, no images at all (an image from
another host is a tracking pixel), and links only to http(s)/mailto, opened in a new tab with
rel="nofollow noopener".
"""

from __future__ import annotations

import json

import markdown
import nh3

ALLOWED_TAGS = {
    "p",
    "br",
    "strong",
    "em",
    "b",
    "i",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "a",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "del",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
URL_SCHEMES = {"http", "https", "mailto"}


def render_markdown(text: str) -> str:
    html = markdown.markdown(
        text or "", extensions=["fenced_code", "tables", "sane_lists", "nl2br"]
    )
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        clean_content_tags={
            "script",
            "style",
            "iframe",
            "object",
            "embed",
            "svg",
            "math",
            "template",
        },
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="nofollow noopener",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )


def stream_json(data) -> str:
    """JSON for an event stream, with <, > and & as \\u escapes: whatever an answer says, the
    raw stream never carries markup a mis-sniffing client could run."""
    return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
