//! Block digests as values: how `vol hash` digests a block
//! ([`HashAlgorithm`]) and one volume's fingerprint over its blocks'
//! digests ([`BlockDigest`]): the evidence verification, the destroy check
//! and a kept source's fingerprint rest on. Parsed once where it enters
//! (a helper's report, a stored row), displayed once
//! (`blocks-<algorithm>:<block size>:<hex>`, the helper's log form).

use serde::{Deserialize, Serialize};

/// How `vol hash` digests a block: BLAKE3 (the default; what verification
/// uses) or XXH3-128 (dialect 3; several times cheaper, to find equal blocks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HashAlgorithm {
    #[default]
    Blake3,
    Xxh3,
}

crate::wire_enum!(HashAlgorithm, "block hash algorithm", [
    Blake3 => "blake3",
    Xxh3 => "xxh3",
]);

/// One digest of a volume: BLAKE3 over the digests of its blocks of
/// `block_size` bytes (each made with `algorithm`; a zero block counts as
/// `zero`), as `vol hash` gave them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockDigest {
    pub algorithm: HashAlgorithm,
    pub block_size: u64,
    pub hash: [u8; 32],
}

/// Why a text is no [`BlockDigest`], in words that name the part.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is no block digest ({why}); one looks like blocks-blake3:4194304:<64 hex digits>"
)]
pub struct BadDigest {
    text: String,
    why: String,
}

impl BlockDigest {
    /// The 64 hex digits of [`Self::hash`].
    pub fn hex(&self) -> String {
        hex::encode(self.hash)
    }

    /// From its stored parts (a row's columns).
    pub fn from_parts(
        algorithm: &str,
        block_size: i64,
        hex: &str,
    ) -> Result<BlockDigest, BadDigest> {
        let bad = |why: String| BadDigest {
            text: format!("blocks-{algorithm}:{block_size}:{hex}"),
            why,
        };
        let algorithm = algorithm
            .parse::<HashAlgorithm>()
            .map_err(|e| bad(e.to_string()))?;
        let block_size = u64::try_from(block_size)
            .ok()
            .filter(|b| *b > 0)
            .ok_or_else(|| bad("the block size is not a positive number".into()))?;
        let mut hash = [0u8; 32];
        hex::decode_to_slice(hex, &mut hash)
            .map_err(|e| bad(format!("the digest is not 64 hex digits: {e}")))?;
        Ok(BlockDigest {
            algorithm,
            block_size,
            hash,
        })
    }
}

impl std::fmt::Display for BlockDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "blocks-{}:{}:{}",
            self.algorithm,
            self.block_size,
            self.hex()
        )
    }
}

impl std::str::FromStr for BlockDigest {
    type Err = BadDigest;
    fn from_str(s: &str) -> Result<BlockDigest, BadDigest> {
        let bad = |why: &str| BadDigest {
            text: s.chars().take(120).collect(),
            why: why.to_owned(),
        };
        let rest = s
            .strip_prefix("blocks-")
            .ok_or_else(|| bad("it does not begin with blocks-"))?;
        let mut parts = rest.split(':');
        let (Some(algorithm), Some(block_size), Some(hex), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("it is not three parts separated by colons"));
        };
        let block_size: i64 = block_size
            .parse()
            .map_err(|_| bad("the block size is not a number"))?;
        BlockDigest::from_parts(algorithm, block_size, hex).map_err(|e| BadDigest {
            text: s.chars().take(120).collect(),
            why: e.why,
        })
    }
}

impl Serialize for BlockDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BlockDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<BlockDigest, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_reads_back_what_it_displays_and_bad_ones_say_which_part() {
        let d = BlockDigest {
            algorithm: HashAlgorithm::Xxh3,
            block_size: 4 << 20,
            hash: [0xab; 32],
        };
        let text = d.to_string();
        assert_eq!(text, format!("blocks-xxh3:4194304:{}", "ab".repeat(32)));
        assert_eq!(text.parse::<BlockDigest>().unwrap(), d);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<BlockDigest>(&json).unwrap(), d);
        for (bad, says) in [
            ("xxh3:4194304:ab", "does not begin with blocks-"),
            ("blocks-md5:4194304:ab", "md5"),
            ("blocks-xxh3:four:ab", "block size is not a number"),
            ("blocks-xxh3:0:ab", "not a positive number"),
            ("blocks-xxh3:4194304:ab12", "64 hex digits"),
            ("blocks-xxh3:4194304:ab:cd", "three parts"),
        ] {
            let e = bad.parse::<BlockDigest>().unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
