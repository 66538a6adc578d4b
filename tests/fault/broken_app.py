"""A module that fails to import, for ``sqsx worker broken_app:queue --processes N``."""

raise RuntimeError("broken on purpose: this module cannot be imported")
