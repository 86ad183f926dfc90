"""Which keys backups are encrypted to and restores decrypt with, from ``[encryption]``.

* :func:`policy_recipients`: the recipients a policy's new objects (backups and archived
  binlogs) are encrypted to, or None; the current ``recipients`` always, so rotating keys
  is editing that list.
* :func:`configured_identities`: the private keys of ``encryption.identity`` (None: none).
* :func:`unlock`: before a restore fetches anything, the identities that open every
  encrypted object it needs. Objects record their recipients (public keys), so a missing
  or wrong identity is refused here (exit 2) before an archive restore is requested or a
  byte downloaded; whether the objects really open is proven while staging them.
"""

from __future__ import annotations

from collections.abc import Iterable

from datatier.backup.manifest import ObjectRecord
from datatier.backup.policy import Policy
from datatier.config import Config
from datatier.errors import ConfigError, UsageError
from datatier.pipeline.encrypt import Identities, Recipients, parse_identities, parse_recipients

IDENTITY_HINT = "set encryption.identity_file (age identity file) or DATATIER_ENCRYPTION__IDENTITY"


def policy_recipients(config: Config, policy: Policy) -> Recipients | None:
    """The recipients ``policy`` encrypts to (None: it stores plaintext). ConfigError when
    the policy asks for encryption and ``[encryption]`` names no recipient."""
    keys = config.encryption.recipients
    wanted = policy.spec.encrypt
    if wanted is None:
        wanted = bool(keys)
    if not wanted:
        return None
    if not keys:
        raise ConfigError(
            str(policy.path),
            "encrypt",
            "encrypt = true, but [encryption] names no recipients",
            hint="add encryption.recipients = [age public keys] to the config",
        )
    try:
        return parse_recipients(keys)
    except ValueError as exc:  # load() validated them already; kept for direct callers
        raise ConfigError("config", "encryption.recipients", str(exc)) from None


def configured_identities(config: Config) -> Identities | None:
    """The identities of ``encryption.identity`` (None when it is not set); ConfigError
    saying what is wrong with it, never quoting it."""
    secret = config.encryption.identity
    if not secret.given:
        return None  # an empty identity file is set, and holds no identity (ConfigError)
    try:
        return parse_identities(secret.reveal())
    except ValueError as exc:
        raise ConfigError(
            "config",
            "encryption.identity",
            f"not an age identity file: {exc}",
            hint="age-keygen -o FILE writes one",
        ) from None


def unlock(config: Config, objects: Iterable[ObjectRecord], what: str) -> Identities | None:
    """The identities that open every encrypted object of ``objects`` (``what`` names them
    in messages, e.g. "backup 2026...-3f9c"); None when none is encrypted. UsageError (exit
    2) when no identity is configured, or when some object's recipients include none of
    ours: the message lists the public keys on both sides (never a private key)."""
    objects = list(objects)
    needed = sorted({o.recipients for o in objects if o.encrypted})
    if not needed:
        return None
    identities = configured_identities(config)
    if identities is None:
        raise UsageError(
            f"{what} is encrypted: restoring it needs its age identity", hint=IDENTITY_HINT
        )
    for recipients in needed:
        if not identities.opening(recipients):
            ours = ", ".join(short(k) for k in identities.public)
            first = next(o for o in objects if o.encrypted and o.recipients == recipients)
            named = what
            if first.kind == "binlog":  # a segment archived after a key rotation
                named = f"binlog segment {first.key} (replayed after {what})"
            raise UsageError(
                f"{named} is encrypted to {', '.join(short(k) for k in recipients)}; "
                f"no identity in encryption.identity opens it (its public keys: {ours})",
                hint="add its private key to the identity file (old keys open old backups)",
            )
    return identities


def short(public_key: str) -> str:
    """A public key as messages show it: ``age1abcdefgh...wxyz``."""
    return f"{public_key[:12]}...{public_key[-4:]}" if len(public_key) > 20 else public_key
