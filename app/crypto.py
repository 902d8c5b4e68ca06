"""Personal-data protection: AES-256-GCM encryption and keyed blind indexes.

All personal data (phone numbers, provider subjects, partner account references) goes through
this one module, so SM4/SM3 can replace AES/SHA here if a 密评 assessment requires it.
Keys come from the environment (config), never from the database or the repository.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app

_NONCE_BYTES = 12


def _key(name: str) -> bytes:
    key = bytes.fromhex(current_app.config[name])
    if len(key) != 32:
        raise RuntimeError(f"{name} must be 32 bytes (64 hex characters)")
    return key


def encrypt(plaintext: str, aad: str) -> bytes:
    """Encrypt with AES-256-GCM; `aad` binds the ciphertext to its row (e.g. "citizen:42:phone")."""
    version = current_app.config["DATA_KEY_VERSION"]
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(_key("DATA_ENC_KEY")).encrypt(nonce, plaintext.encode(), aad.encode())
    return bytes([version]) + nonce + sealed


def decrypt(blob: bytes, aad: str) -> str:
    nonce = blob[1 : 1 + _NONCE_BYTES]
    return AESGCM(_key("DATA_ENC_KEY")).decrypt(nonce, blob[1 + _NONCE_BYTES :], aad.encode()).decode()


def blind_index(domain: str, value: str) -> bytes:
    """Keyed HMAC-SHA256 for equality lookup; an unkeyed hash of a phone number is brute-forced in minutes."""
    return hmac.new(_key("DATA_IDX_KEY"), f"{domain}\x00{value}".encode(), hashlib.sha256).digest()


def blind_indexer(domain: str) -> Callable[[str], bytes]:
    """blind_index(domain, value) for many values: the key schedule is done once, not per value.

    A 5,000-event partner batch indexes thousands of account references; re-keying HMAC for each
    was ~15% of the request's CPU.
    """
    keyed = hmac.new(_key("DATA_IDX_KEY"), f"{domain}\x00".encode(), hashlib.sha256)

    def index(value: str) -> bytes:
        digest = keyed.copy()
        digest.update(value.encode())
        return digest.digest()

    return index


def token_hash(token: str) -> bytes:
    """Hash of a high-entropy secret (refresh token, binding code) for storage: no key needed."""
    return hashlib.sha256(token.encode()).digest()


def mask_phone(phone: str) -> str:
    """138****1234 — how a phone number is shown to anyone but its owner."""
    digits = phone[-11:]
    return f"{digits[:3]}****{digits[-4:]}"
