"""Optional dependencies: a script that needs one says which extra of bicross installs it, in one line."""

from __future__ import annotations

import importlib


def require(module: str, extra: str, purpose: str, who: str) -> None:
    """Import `module`, or stop with one line naming it, what needs it and the install command of `extra`
    (an extra of pyproject.toml's `[project.optional-dependencies]`)."""
    try:
        importlib.import_module(module)
    except ImportError as e:
        raise SystemExit(
            f"{who} needs the {module!r} package ({purpose}), which bicross's {extra!r} extra installs: "
            f"pip install -e '.[{extra}]' in the bicross checkout (import failed: {e})"
        ) from None
