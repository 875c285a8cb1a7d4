//! Typed 64-bit ids: a node, an actor in dots, a cluster.
//!
//! All three are random 64-bit numbers, and a bare `u64` let one be passed
//! where another was meant without a word from the compiler (a node id
//! where an actor was expected reads fine and is silently wrong). Each gets
//! its own type; all print as 16 hex digits, the form operators see in
//! `quire status`, and encode as the plain number, so the wire and the disk
//! are unchanged.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Why text is not an id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an id: ids are 1 to 16 hex digits")]
pub struct IdParseError {
    /// The text given.
    pub text: String,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The number behind the id.
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:016x}", self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:016x})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(text: &str) -> Result<Self, IdParseError> {
                let t = text.trim();
                if t.is_empty() || t.len() > 16 {
                    return Err(IdParseError { text: text.into() });
                }
                u64::from_str_radix(t, 16)
                    .map($name)
                    .map_err(|_| IdParseError { text: text.into() })
            }
        }
    };
}

id_type!(
    /// A storage node's identity in the membership document: a random
    /// 64-bit number made on the node's first start, never reused.
    NodeId
);

id_type!(
    /// The id that appears in dots: an actor of a node, new at every start
    /// of the node (and for every stand-in epoch), so that no dot is ever
    /// issued twice.
    ActorId
);

id_type!(
    /// A cluster's identity: every membership document names it, and a node
    /// refuses requests and documents of another cluster.
    ClusterId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_as_sixteen_hex_digits_and_parse_back() {
        let id = NodeId(0xab);
        assert_eq!(id.to_string(), "00000000000000ab");
        assert_eq!("00000000000000ab".parse::<NodeId>(), Ok(id));
        assert_eq!("ab".parse::<NodeId>(), Ok(id));
        assert!("".parse::<NodeId>().is_err());
        assert!("xyz".parse::<ActorId>().is_err());
        assert!("11112222333344445".parse::<ClusterId>().is_err());
        assert_eq!(format!("{:?}", ActorId(1)), "ActorId(0000000000000001)");
    }

    #[test]
    fn ids_encode_as_the_plain_number() {
        let plain = postcard::to_allocvec(&7u64).unwrap();
        assert_eq!(postcard::to_allocvec(&NodeId(7)).unwrap(), plain);
        assert_eq!(postcard::to_allocvec(&ActorId(7)).unwrap(), plain);
        assert_eq!(postcard::to_allocvec(&ClusterId(7)).unwrap(), plain);
    }
}

/// Serde for an optional id written as 16 hex digits, as operators see ids
/// (config files): `#[serde(default, with = "quire_shared::ids::hex_option")]`.
pub mod hex_option {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::fmt::Display;
    use std::str::FromStr;

    /// Writes `Some(id)` as its hex text; `None` as nothing.
    pub fn serialize<T: Display, S: Serializer>(id: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match id {
            Some(id) => s.serialize_some(&id.to_string()),
            None => s.serialize_none(),
        }
    }

    /// Reads hex text into an id.
    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| t.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}
