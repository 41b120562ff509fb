// Package cache derives response-cache keys from chat requests, encodes cached
// answers, and serves them through an in-process tier (L1) and a shared Redis
// tier (L2), coalescing identical misses into one upstream call.
//
// # Key
//
// A Key is the 128-bit xxh3 hash of an unambiguous canonical encoding of
// everything that can change the answer: the cache namespace, the provider
// and the upstream model (after alias resolution), then every top-level field
// of the request body except model (replaced by the upstream model), stream,
// stream_options, user, metadata and store. Fields the gateway does not know
// are part of the key, so a new provider parameter can never be answered from
// an entry made without it.
//
// Canonical means: object keys are sorted (by their decoded bytes), whitespace
// between tokens is ignored, strings are compared by decoded value ("\u0041"
// equals "A") while whitespace inside them matters, and numbers are compared
// by exact decimal value (1, 1.0, 1e0 and 10e-1 are equal; -0 equals 0; there
// is no float rounding, so large integers such as seeds stay exact). Every
// token carries a type tag and every string a length, so "1" and 1 differ and
// no two different documents share an encoding. Duplicate object keys are
// kept, in order: a strict key is safer than one that guesses which duplicate
// the upstream parser honours. Invalid UTF-8 and lone surrogate escapes are
// hashed as they are, never replaced.
//
// xxh3-128 rather than SHA-256: it hashes a 1 KB request in well under a
// microsecond, and with 128 bits an accidental collision among even 10^12
// live entries has probability around 10^-15. It is not a cryptographic hash:
// it resists accidents, not adversaries. A client who deliberately crafts two
// bodies with the same key could make a request it predicts another client
// will send return the crafted answer, but only inside the same namespace,
// because the namespace is part of the hashed input. Tenants that do not
// trust each other must therefore get separate namespaces (per API key);
// within one namespace the cache is as trusted as its clients. The canonical
// encoding is versioned (its first bytes), so switching to SHA-256 later is a
// new key space, not a migration.
//
// # What is cached
//
// Only complete, successful answers: never an error and never a stream that
// was cut off. Cacheable tells which finish reasons may be stored: "stop",
// "tool_calls" (and the legacy "function_call"), and "length", which is as
// reproducible as any other answer because max_tokens is part of the key.
// "content_filter" is not stored: filtering decisions change with provider
// policy and a refusal should not outlive it.
package cache
