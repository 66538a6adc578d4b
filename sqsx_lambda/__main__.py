"""``python -m sqsx_lambda invoke EVENT --handler module:attr``: see ``sqsx_lambda.invoke``."""

from sqsx_lambda.invoke import main

raise SystemExit(main())
