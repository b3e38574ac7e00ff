//! Stable, dependency-free hashing for ids and sharding.
//!
//! Ids must be the same on every machine, every run and every shard, so they
//! cannot use `std`'s randomly seeded hasher. FNV-1a over 128 bits is enough
//! to make collisions between candidates of one repository negligible.

const FNV128_OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
const FNV128_PRIME: u128 = 0x0000000001000000000000000000013B;

/// A stable 128-bit FNV-1a hash of several byte strings. Each part is
/// length-prefixed so that `("ab","c")` and `("a","bc")` differ.
pub fn stable_hash(parts: &[&[u8]]) -> u128 {
    let mut h = FNV128_OFFSET;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u128::from(*b);
            h = h.wrapping_mul(FNV128_PRIME);
        }
    };
    for part in parts {
        feed(&(part.len() as u64).to_le_bytes());
        feed(part);
    }
    h
}

/// The hex form of [`stable_hash`], 32 lowercase hex digits.
pub fn stable_hex(parts: &[&[u8]]) -> String {
    format!("{:032x}", stable_hash(parts))
}

/// A shard of a stage: `index` of `count`, 0-based (`--shard 0/4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// Which shard, `0..count`.
    pub index: u32,
    /// How many shards in all.
    pub count: u32,
}

impl Shard {
    /// The whole run as one shard.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether the record with this id belongs to this shard.
    pub fn contains(&self, id: &str) -> bool {
        self.count <= 1
            || (stable_hash(&[id.as_bytes()]) % u128::from(self.count)) as u32 == self.index
    }
}

impl std::str::FromStr for Shard {
    type Err = crate::Error;

    /// Parses `K/N` with `0 <= K < N`.
    fn from_str(s: &str) -> crate::Result<Self> {
        let bad = || crate::Error::invalid("shard", format!("`{s}` is not K/N with 0 <= K < N"));
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = k.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_length_prefixed() {
        assert_ne!(stable_hash(&[b"ab", b"c"]), stable_hash(&[b"a", b"bc"]));
        assert_eq!(stable_hex(&[b"x"]), stable_hex(&[b"x"]));
        assert_eq!(stable_hex(&[b"x"]).len(), 32);
    }

    #[test]
    fn shards_partition_ids() {
        let shards: Vec<Shard> = (0..4).map(|i| format!("{i}/4").parse().unwrap()).collect();
        for n in 0..500 {
            let id = format!("cand-{n}");
            assert_eq!(shards.iter().filter(|s| s.contains(&id)).count(), 1, "{id}");
        }
        assert!("4/4".parse::<Shard>().is_err());
        assert!("1/0".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }
}
