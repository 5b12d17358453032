#pragma once
/// Cryptographic primitives, all from libsodium: sealing with
/// XChaCha20-Poly1305 (random nonce per call), key derivation, keyed hashes,
/// and the node master key file.

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace custodian::crypto {

using key32 = std::array<unsigned char, 32>;

/// Loads the node master key from `path`, creating it (32 random bytes, mode
/// 0600) if the file does not exist. Returns "" or a sentence saying what is wrong
/// (unreadable, wrong size, readable by group or others).
std::string load_or_create_master_key(const std::string& path, key32& out);

/// A subkey of `master` for one purpose (crypto_kdf; `context` is 8 characters).
key32 derive(const key32& master, uint64_t id, const char (&context)[9]);

/// nonce || XChaCha20-Poly1305(key, plaintext, associated data `ad`).
std::string seal(const key32& key, std::string_view plaintext, std::string_view ad);

/// The plaintext, or nullopt if `sealed` was not sealed with `key` and `ad`.
std::optional<std::string> open(const key32& key, std::string_view sealed, std::string_view ad);

/// Hex BLAKE2b-256 of `data` keyed with `key` (lookups that must not hold plaintext).
std::string keyed_hash_hex(const key32& key, std::string_view data);

/// A fresh random key.
key32 random_key();

}  // namespace custodian::crypto
