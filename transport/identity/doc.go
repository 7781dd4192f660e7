// Package identity is who a node is and whom it trusts, on every link of the
// chain: the WAN between the proxies (QUIC, package transport) and the LAN
// push legs (TLS over TCP, package transport/push). aimsrc and aimdst use it
// without depending on the QUIC transport.
//
// Glossary:
//
//   - Identity: a node's key pair and self-signed certificate, made by
//     `aimwan keygen` and kept in a directory (cert.pem, key.pem, mode 0600).
//     A key file that group or others may read is refused (ErrKeyMode).
//   - Fingerprint: SHA-256 of an identity's certificate (DER). Peers are
//     pinned by fingerprint, as Syncthing pins device IDs: no CA is involved,
//     a certificate is trusted exactly when its fingerprint is configured
//     and it is within its validity dates. Printed as base32 in
//     dash-separated groups of four characters.
//   - Pins: the fingerprints a node trusts on one kind of link (--peer-fp;
//     a proxy has WAN pins and LAN pins).
//   - Pinned: the mutual TLS of one kind of link: identity, pins and the
//     ALPN, which names the protocol and its version. A peer offering
//     another ALPN is refused during the handshake.
//   - Refusal: a peer refused during the handshake. It is logged with its
//     fingerprint and counted (Refusals), with a bounded set of labels so
//     that a peer making endless keys cannot grow the metric or flood the
//     log.
package identity
