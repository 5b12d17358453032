#pragma once
/// Signing of outgoing HTTP calls per Standard Webhooks 1.0: a shared secret
/// "whsec_<base64>", and the header `webhook-signature: v1,<base64 HMAC-SHA256>`
/// over "<webhook-id>.<webhook-timestamp>.<body>". libsodium only.

#include <cstdint>
#include <string>

namespace custodian::webhook {

/// A fresh secret: "whsec_" + base64 of 32 random bytes.
std::string new_secret();

/// Decodes "whsec_<base64>" (trailing whitespace ignored) into the raw key
/// bytes `key`. Returns "" or a sentence saying what is wrong (never the secret).
std::string parse_secret(const std::string& text, std::string& key);

/// "v1,<base64 HMAC-SHA256(key, msg_id + "." + timestamp_s + "." + body)>", the
/// value of the webhook-signature header. `key` is the raw key of parse_secret.
std::string sign(const std::string& key, const std::string& msg_id, int64_t timestamp_s,
                 const std::string& body);

/// Reads the secret file `path` into `key`, creating it first (new_secret(),
/// mode 0600, parent directories too) if it does not exist. Returns "" or a
/// sentence naming the path and the problem (unreadable, not a valid secret,
/// accessible by group or others).
std::string load_or_create_secret(const std::string& path, std::string& key);

}  // namespace custodian::webhook
