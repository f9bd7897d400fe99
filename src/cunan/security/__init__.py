"""Encryption of face data at rest: AES-GCM field encryption and the key file."""

from cunan.security.cipher import DecryptionError, FieldCipher
from cunan.security.keys import KeyFileError, KeyFilePermissionError, KeyRing

__all__ = ["DecryptionError", "FieldCipher", "KeyFileError", "KeyFilePermissionError", "KeyRing"]
