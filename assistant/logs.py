"""Python logging for the commands and the app: the `log_level` setting, and the keys masked in every record.

The openai client and httpx are careful not to log keys; the mask is the second line of defence, for whatever a
library or a server's error message (a 401 that echoes the key it got) puts in a log line.
"""

from __future__ import annotations

import logging

from assistant.config import Settings

MASK = "***"
OUR_HANDLER = "ragtune-stderr"


class MaskSecrets(logging.Filter):
    def __init__(self, secrets: set[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = message
        for secret in self.secrets:
            masked = masked.replace(secret, MASK)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure_logging(settings: Settings) -> None:
    """Once per process and again when the settings change: stderr at `log_level`, secrets masked."""
    root = logging.getLogger()
    level = settings.log_level.upper()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        root.handlers[0].name = OUR_HANDLER
    for handler in root.handlers:
        if handler.name == OUR_HANDLER:  # also for libraries that set their own loggers' levels (bm25s: DEBUG)
            handler.setLevel(level)
    root.setLevel(level)
    secrets = {key.get_secret_value() for key in [settings.openai_api_key, *settings.api_keys] if key}
    for handler in root.handlers:
        mask = next((f for f in handler.filters if isinstance(f, MaskSecrets)), None)
        if mask is None:
            handler.addFilter(mask := MaskSecrets(set()))
        mask.secrets |= {secret for secret in secrets if len(secret) >= 8}  # a 3-letter "key" would mask words
