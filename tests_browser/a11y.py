"""axe-core (static/vendor/axe) in the browser tests: no serious or critical violations."""

from __future__ import annotations

from pathlib import Path

AXE = Path(__file__).resolve().parent.parent / "static" / "vendor" / "axe" / "axe.min.js"
BLOCKING = ("serious", "critical")


def axe_results(page) -> list[dict]:
    """Run axe on the page (WCAG 2.x A/AA rules and best practices); return every violation,
    each with its impact and the first few offending elements. The context must be created
    with bypass_csp=True: the chat page's CSP forbids injected scripts."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    return page.evaluate(
        "() => axe.run(document, {resultTypes: ['violations']})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' :: ' + n.failureSummary)})))"
    )


def axe_violations(page) -> list[dict]:
    """The serious and critical violations axe finds on the page (see axe_results)."""
    return [v for v in axe_results(page) if v["impact"] in BLOCKING]


def format_violations(violations: list[dict]) -> str:
    return "\n".join(
        f"{v['impact']}: {v['id']} ({v['help']})\n    " + "\n    ".join(v["nodes"])
        for v in violations
    )
