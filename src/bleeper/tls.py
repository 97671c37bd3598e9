"""TLS contexts for the server's listener and for clients, with errors that say what to fix."""

from __future__ import annotations

import ssl

from bleeper.config import ConfigError, ServeConfig


def server_context(config: ServeConfig) -> ssl.SSLContext | None:
    """The TLS listener's context (TLS 1.2 or newer), or None when no certificate is configured."""
    if not config.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key or None)
    except FileNotFoundError as exc:
        raise ConfigError(f"TLS: {exc.filename} does not exist; check --tls-cert and --tls-key") from None
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"TLS: cannot use certificate {config.tls_cert} with key {config.tls_key} ({exc}); both must be PEM, "
            "the key unencrypted and matching the certificate"
        ) from None
    return context


def client_context(ca_file: str | None = None) -> ssl.SSLContext:
    """Checks the server's certificate and name against the system's CAs, or only *ca_file*'s."""
    return ssl.create_default_context(cafile=ca_file)
