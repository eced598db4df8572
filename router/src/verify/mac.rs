//! HMAC over several parts, with the three digests providers use, compared in constant time.

use hmac::{Hmac, Mac as _};
use sha1::Sha1;
use sha2::{Sha256, Sha512};

use subtle::ConstantTimeEq;

use crate::config::HmacAlgorithm;

/// Most signatures one request may offer. Providers send one, or two or three while a
/// secret rotates; more is an attempt to make the router hash the body over and over.
pub const MAX_SIGNATURES: usize = 8;

fn compute<M: hmac::Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> M {
    let mut mac = <M as hmac::Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac
}

/// The HMAC of the concatenated `parts`.
pub fn sign(algorithm: HmacAlgorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    match algorithm {
        HmacAlgorithm::Sha1 => compute::<Hmac<Sha1>>(key, parts)
            .finalize()
            .into_bytes()
            .to_vec(),
        HmacAlgorithm::Sha256 => compute::<Hmac<Sha256>>(key, parts)
            .finalize()
            .into_bytes()
            .to_vec(),
        HmacAlgorithm::Sha512 => compute::<Hmac<Sha512>>(key, parts)
            .finalize()
            .into_bytes()
            .to_vec(),
    }
}

/// Whether `tag` is the HMAC of `parts` under `key`, compared in constant time.
pub fn matches(algorithm: HmacAlgorithm, key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    match algorithm {
        HmacAlgorithm::Sha1 => compute::<Hmac<Sha1>>(key, parts).verify_slice(tag).is_ok(),
        HmacAlgorithm::Sha256 => compute::<Hmac<Sha256>>(key, parts)
            .verify_slice(tag)
            .is_ok(),
        HmacAlgorithm::Sha512 => compute::<Hmac<Sha512>>(key, parts)
            .verify_slice(tag)
            .is_ok(),
    }
}

/// Whether any of `keys` signed `parts` with `tag`.
pub fn any_matches(
    algorithm: HmacAlgorithm,
    keys: &[Vec<u8>],
    parts: &[&[u8]],
    tag: &[u8],
) -> bool {
    // Every key is tried, so timing does not reveal which one matched.
    keys.iter().fold(false, |found, key| {
        matches(algorithm, key, parts, tag) | found
    })
}

/// The tag of `parts` under each of `keys`: computed once per request, then compared with
/// every candidate signature the request offers.
pub fn tags(algorithm: HmacAlgorithm, keys: &[Vec<u8>], parts: &[&[u8]]) -> Vec<Vec<u8>> {
    keys.iter().map(|key| sign(algorithm, key, parts)).collect()
}

/// Whether `candidate` equals any of `tags`. Every tag is compared in constant time, so
/// timing reveals neither which key matched nor how much of a tag did.
pub fn is_any_of(tags: &[Vec<u8>], candidate: &[u8]) -> bool {
    tags.iter().fold(false, |found, tag| {
        bool::from(tag.as_slice().ct_eq(candidate)) | found
    })
}
