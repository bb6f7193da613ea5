//! Signing keys of the test issuer: real RSA-2048 and P-256 keys, their JWKs, and the encoders
//! `jsonwebtoken` signs with.

use std::sync::OnceLock;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::error::{Context, Error, Result};

/// One key the issuer signs with and publishes.
#[derive(Clone)]
pub(crate) struct SigningKey {
    /// The key id (`kid`) in token headers and the JWKS.
    pub(crate) kid: String,
    /// RS256 or ES256.
    pub(crate) alg: Algorithm,
    /// What `jsonwebtoken` signs with.
    pub(crate) encoding: EncodingKey,
    /// The public half as a JWK.
    pub(crate) jwk: Value,
    /// The public key's SubjectPublicKeyInfo DER, for forging "HS256 signed with the public key".
    pub(crate) public_der: Vec<u8>,
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh RSA-2048 key (aws-lc generates it in native code, so it is quick even in debug builds).
pub(crate) fn rsa(kid: &str) -> Result<SigningKey> {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).context("generating an RSA key")?;
    let pkcs8 = pair.as_der().context("encoding the RSA key")?;
    let body = STANDARD.encode(pkcs8.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).context("loading the RSA key")?;
    let public = pair.public_key();
    let n = public.modulus();
    let e = public.exponent();
    let public_der = public
        .as_der()
        .context("encoding the RSA public key")?
        .as_ref()
        .to_vec();
    Ok(SigningKey {
        kid: kid.to_owned(),
        alg: Algorithm::RS256,
        encoding,
        jwk: json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": b64url(n.big_endian_without_leading_zero()),
            "e": b64url(e.big_endian_without_leading_zero()),
        }),
        public_der,
    })
}

/// A fresh P-256 key for ES256.
pub(crate) fn ec(kid: &str) -> Result<SigningKey> {
    let alg = &ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new()).context("generating an EC key")?;
    let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).context("loading the EC key")?;
    // An uncompressed point: 0x04, then x and y of 32 bytes each.
    let point = pair.public_key().as_ref();
    if point.len() != 65 {
        return Err(Error::msg("unexpected P-256 public key length"));
    }
    let public_der = pair
        .public_key()
        .as_der()
        .context("encoding the EC public key")?
        .as_ref()
        .to_vec();
    Ok(SigningKey {
        kid: kid.to_owned(),
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({
            "kty": "EC", "use": "sig", "alg": "ES256", "crv": "P-256", "kid": kid,
            "x": b64url(&point[1..33]),
            "y": b64url(&point[33..]),
        }),
        public_der,
    })
}

/// The first RSA key of this process, shared by every issuer the process starts.
pub(crate) fn first_rsa() -> Result<SigningKey> {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    if let Some(k) = KEY.get() {
        return Ok(k.clone());
    }
    let key = rsa("rsa-1")?;
    Ok(KEY.get_or_init(|| key).clone())
}
