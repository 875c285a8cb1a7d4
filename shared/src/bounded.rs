//! Sequences decoded with a cap on their length, for the wire types whose
//! counts have a natural maximum (members, stores, partitions, segments,
//! version-vector entries, delivered hints, an object's values).
//!
//! postcard writes a sequence's length before its elements, and serde's
//! own `Vec` decoding preallocates at most 1 MiB from it, so an announced
//! count alone costs little. What a count cap adds is the decoded size of
//! elements that *are* present: a member is 4 bytes on the wire at least
//! and 64 in memory, so a 16 MiB frame could decode into a quarter of a
//! gigabyte of members. With a cap, the length is refused before any
//! element is decoded, and the encoding is unchanged (the same bytes decode
//! as before when within the cap).
//!
//! Use it as `#[serde(deserialize_with = "crate::bounded::vec::<_, _, MAX>")]`.

use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// Elements preallocated at most, whatever length is announced: the rest
/// grows as elements actually arrive.
const PREALLOCATE_MAX: usize = 1024;

/// Decodes a `Vec<T>` of at most `MAX` elements; a longer one is refused
/// from its announced length, before any element is decoded.
pub fn vec<'de, D, T, const MAX: usize>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_seq(Capped::<T, MAX>(PhantomData))
}

/// An element that carries a count of its own (an entry's values), for a
/// cap on the sum over a sequence.
pub trait Weighed {
    /// The count this element adds to its sequence's total.
    fn weight(&self) -> usize;
}

/// Decodes a `Vec<T>` of at most `MAX` elements whose weights sum to at
/// most `WEIGHT_MAX`: checked as each element arrives, so what is held
/// when a sequence is refused is at most one element past the cap.
pub fn weighed_vec<'de, D, T, const MAX: usize, const WEIGHT_MAX: usize>(
    deserializer: D,
) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Weighed,
{
    deserializer.deserialize_seq(WeighedCapped::<T, MAX, WEIGHT_MAX>(PhantomData))
}

/// Visits a sequence, refusing more than `MAX` elements.
struct Capped<T, const MAX: usize>(PhantomData<T>);

impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for Capped<T, MAX> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a sequence of at most {MAX} elements")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = self.preallocate(seq.size_hint())?;
        while let Some(element) = seq.next_element()? {
            if out.len() == MAX {
                return Err(A::Error::invalid_length(MAX + 1, &self));
            }
            out.push(element);
        }
        Ok(out)
    }
}

/// Visits a sequence, refusing more than `MAX` elements or a total
/// weight over `WEIGHT_MAX`, as each element arrives.
struct WeighedCapped<T, const MAX: usize, const WEIGHT_MAX: usize>(PhantomData<T>);

impl<'de, T, const MAX: usize, const WEIGHT_MAX: usize> Visitor<'de>
    for WeighedCapped<T, MAX, WEIGHT_MAX>
where
    T: Deserialize<'de> + Weighed,
{
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a sequence of at most {MAX} elements holding at most {WEIGHT_MAX} in all"
        )
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out: Vec<T> = Capped::<T, MAX>(PhantomData).preallocate(seq.size_hint())?;
        let mut total = 0usize;
        while let Some(element) = seq.next_element::<T>()? {
            total = total.saturating_add(element.weight());
            if out.len() == MAX || total > WEIGHT_MAX {
                return Err(A::Error::invalid_length(out.len() + 1, &self));
            }
            out.push(element);
        }
        Ok(out)
    }
}

impl<T, const MAX: usize> Capped<T, MAX> {
    /// An empty vector for an announced length, refused over `MAX`.
    fn preallocate<E: Error>(&self, announced: Option<usize>) -> Result<Vec<T>, E> {
        if let Some(len) = announced.filter(|len| *len > MAX) {
            return Err(E::custom(format!(
                "a sequence of {len} elements; at most {MAX} are accepted"
            )));
        }
        Ok(Vec::with_capacity(
            announced.unwrap_or(0).min(PREALLOCATE_MAX),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Three {
        #[serde(deserialize_with = "vec::<_, _, 3>")]
        items: Vec<u32>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Inner(Vec<u8>);

    impl Weighed for Inner {
        fn weight(&self) -> usize {
            self.0.len()
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Weights(#[serde(deserialize_with = "weighed_vec::<_, _, 8, 4>")] Vec<Inner>);

    #[test]
    fn within_the_cap_decodes_as_before_and_over_it_is_refused_from_the_length() {
        let ok = Three {
            items: vec![1, 2, 3],
        };
        let bytes = postcard::to_allocvec(&ok).unwrap();
        assert_eq!(postcard::from_bytes::<Three>(&bytes).unwrap(), ok);
        let over = Three {
            items: vec![1, 2, 3, 4],
        };
        let bytes = postcard::to_allocvec(&over).unwrap();
        let e = postcard::from_bytes::<Three>(&bytes).unwrap_err();
        assert!(matches!(e, postcard::Error::SerdeDeCustom), "{e:?}");
        // Weights: two entries of two each pass a total cap of four, one
        // more is refused as it arrives.
        let two = Weights(vec![Inner(vec![1, 1]), Inner(vec![2, 2])]);
        let bytes = postcard::to_allocvec(&two).unwrap();
        assert_eq!(postcard::from_bytes::<Weights>(&bytes).unwrap(), two);
        let three = Weights(vec![Inner(vec![1, 1]), Inner(vec![2, 2]), Inner(vec![3])]);
        let bytes = postcard::to_allocvec(&three).unwrap();
        assert!(postcard::from_bytes::<Weights>(&bytes).is_err());
        // A length of four billion in five bytes, nothing after it: refused
        // from the length, nothing allocated for it.
        let announced = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(postcard::from_bytes::<Three>(&announced).is_err());
    }
}
