//! [`Fingerprint`]: a stable content hash for keys of on-disk caches.

use std::fmt;

/// A streaming 64-bit FNV-1a hash.
///
/// The same bytes give the same value on every platform and in every version of haad (unlike
/// `std`'s hashers), which is what a cache written to disk needs: a [`crate::VariantPool`]
/// lives under the fingerprint of its generator, seed and clips. Feeding bytes in several
/// pieces gives the hash of their concatenation. Not for security.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(u64);

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0100_0000_01b3;

impl Fingerprint {
    /// The hash of no bytes.
    pub const fn new() -> Self {
        Self(OFFSET)
    }

    /// The hash of `bytes` alone.
    pub fn of(bytes: &[u8]) -> Self {
        let mut f = Self::new();
        f.update(bytes);
        f
    }

    /// Appends `bytes` to what was hashed so far.
    pub fn update(&mut self, bytes: &[u8]) -> &mut Self {
        self.0 = bytes
            .iter()
            .fold(self.0, |h, &b| (h ^ b as u64).wrapping_mul(PRIME));
        self
    }

    /// The hash as a number.
    pub fn value(&self) -> u64 {
        self.0
    }
}

impl Default for Fingerprint {
    fn default() -> Self {
        Self::new()
    }
}

/// Sixteen lower-case hex digits: the form used in folder names and keys.
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_fnv1a_test_vectors() {
        // Published FNV-1a 64-bit values.
        assert_eq!(Fingerprint::new().value(), 0xcbf2_9ce4_8422_2325);
        assert_eq!(Fingerprint::of(b"a").value(), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(Fingerprint::of(b"foobar").value(), 0x8594_4171_f739_67e8);
        assert_eq!(Fingerprint::of(b"a").to_string(), "af63dc4c8601ec8c");
    }

    #[test]
    fn pieces_hash_as_their_concatenation() {
        let whole = Fingerprint::of(b"haad pools");
        let mut parts = Fingerprint::new();
        parts.update(b"haad").update(b"").update(b" pools");
        assert_eq!(parts, whole);
        assert_ne!(Fingerprint::of(b"haad poolz"), whole);
    }
}
