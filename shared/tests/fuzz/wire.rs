//! Targets for what crosses the wire: request frames (what a node
//! decodes), response frames (what a client decodes) and the context token
//! (what an application hands back).
//!
//! Properties, for every input:
//! - decoding never panics, and fails only with a typed error;
//! - a decoded value re-encodes to bytes that decode to the same value,
//!   never longer than the input (the encoding is canonical and minimal);
//! - a well-formed message sent unmutated decodes to itself;
//! - decoding allocates at most a bounded multiple of the input's bytes;
//! - a frame decodes exactly when its header is within the limit, matches
//!   the payload, and the payload decodes;
//! - what a node then checks before touching storage (keys, contexts,
//!   objects, membership) never panics, and what passes keeps the DVVSet
//!   invariants through the replica rules;
//! - a response validates exactly when every object it carries does.

use crate::gen;
use crate::rng::{mutate, Rng};
use crate::{allocated_by, assert_alloc_bounded};
use quire_shared::limits::{check_key, VERSION_VECTOR_ENTRIES_MAX};
use quire_shared::wire::{
    decode_frame, decode_payload, encode_frame, FrameError, Reply, Request, Response,
    FRAME_HEADER_BYTES,
};
use quire_shared::{merkle, replica, ActorId, ConflictPolicy, Context, Object, VersionVector};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

/// The bytes a case decodes: a well-formed encoding (and whether it was
/// left intact), a mutated one, or random bytes.
fn input<T: Serialize>(rng: &mut Rng, make: fn(&mut Rng) -> T) -> (Vec<u8>, Option<T>) {
    match rng.below(8) {
        0 => {
            let len = rng.len(0, 64);
            (rng.bytes(len), None)
        }
        1 | 2 => {
            let msg = make(rng);
            (postcard::to_allocvec(&msg).expect("encodes"), Some(msg))
        }
        _ => {
            let mut bytes = postcard::to_allocvec(&make(rng)).expect("encodes");
            let donor = postcard::to_allocvec(&make(rng)).expect("encodes");
            mutate(rng, &mut bytes, &donor);
            (bytes, None)
        }
    }
}

/// Decodes `bytes` as a `T` and checks the decoding properties; the value,
/// if the bytes were one.
fn decode_checked<T>(what: &str, bytes: &[u8]) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let (decoded, allocated) = allocated_by(|| decode_payload::<T>(bytes));
    assert_alloc_bounded(what, bytes.len(), allocated);
    match decoded {
        Ok(msg) => {
            let again = postcard::to_allocvec(&msg).expect("a decoded message encodes");
            assert!(
                again.len() <= bytes.len(),
                "{what}: {} bytes decoded to a message whose encoding is {} bytes",
                bytes.len(),
                again.len()
            );
            let back: T = decode_payload(&again).expect("a re-encoded message decodes");
            assert_eq!(back, msg, "{what}: re-encoding changed the message");
            Some(msg)
        }
        Err(FrameError::Malformed(_)) => None,
        Err(other) => panic!("{what}: a payload decode failed with {other:?}"),
    }
}

/// Frames `payload` with a header that is sometimes wrong and a limit that
/// is sometimes too small, and checks that exactly the right frames pass.
fn check_framing<T>(rng: &mut Rng, payload: &[u8], payload_ok: bool)
where
    T: DeserializeOwned + Debug,
{
    let len = payload.len() as u32;
    let announced = match rng.below(4) {
        0 => len.wrapping_add(rng.len(1, 3) as u32),
        1 => len.wrapping_sub(rng.len(1, 3) as u32),
        2 => *rng.pick(&[0, u32::MAX, 1 << 24]),
        _ => len,
    };
    let max = *rng.pick(&[len, len.saturating_sub(1), 16 << 20, u32::MAX]);
    let mut frame = announced.to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    let cut = if rng.one_in(8) {
        rng.index(FRAME_HEADER_BYTES)
    } else {
        frame.len()
    };
    let decoded = decode_frame::<T>(&frame[..cut], max);
    let expect_ok = cut == frame.len() && announced == len && announced <= max && payload_ok;
    assert_eq!(
        decoded.is_ok(),
        expect_ok,
        "frame announcing {announced} bytes of {len}, cut at {cut}, limit {max}: {decoded:?}"
    );
    if announced > max && cut == frame.len() {
        assert!(matches!(decoded, Err(FrameError::TooLarge { .. })));
    }
}

/// The request target.
pub fn request_case(rng: &mut Rng) {
    let (bytes, sent) = input(rng, gen::request);
    let decoded = decode_checked::<Request>("request", &bytes);
    if let Some(sent) = sent {
        assert_eq!(
            decoded.as_ref(),
            Some(&sent),
            "a request did not round-trip"
        );
        let frame = encode_frame(&sent);
        assert_eq!(decode_frame::<Request>(&frame, u32::MAX).ok(), Some(sent));
    }
    check_framing::<Request>(rng, &bytes, decoded.is_some());
    if let Some(request) = decoded {
        node_checks(rng, &request);
    }
}

/// What a node checks of a decoded request before its storage sees it,
/// and the replica rules on what passes.
fn node_checks(rng: &mut Rng, request: &Request) {
    let _ = request.kind();
    match request {
        Request::Put {
            key,
            value,
            context,
            ..
        } => {
            let _ = check_key(key);
            if context.validate().is_ok() {
                let stored = gen::object(rng);
                let policy = *rng.pick(&[ConflictPolicy::Siblings, ConflictPolicy::Lww]);
                let next =
                    replica::coordinate_put(&stored, context, ActorId(9), value.clone(), policy);
                assert_eq!(next.validate(), Ok(()), "a put broke the invariants");
            }
        }
        Request::Replicate { key, object, .. } | Request::DeleteIfEqual { key, object, .. } => {
            let _ = check_key(key);
            if object.validate().is_ok() {
                let stored = gen::object(rng);
                let policy = ConflictPolicy::Siblings;
                let next = replica::replicate(&stored, object, policy).unwrap_or(stored);
                assert_eq!(
                    next.validate(),
                    Ok(()),
                    "a replication broke the invariants"
                );
                assert!(postcard::to_allocvec(object).unwrap().len() <= object.size_bytes());
                let _ = merkle::entry_hash(key, object);
            }
        }
        Request::DropHints { hints, .. } => {
            for h in hints {
                if h.clock.validate().is_ok() {
                    let _ = replica::hint_delivered(&gen::object(rng), &h.clock);
                }
            }
        }
        Request::PutMembership { membership, .. } => {
            let _ = membership.validate();
        }
        _ => {}
    }
}

/// The objects a reply carries.
fn objects(reply: &Reply) -> Vec<&Object> {
    match reply {
        Reply::Object(Some(o)) | Reply::Stored(o) => vec![o],
        Reply::Hints { hints, .. } => hints.iter().map(|h| &h.object).collect(),
        Reply::Segment { entries, .. } => entries.iter().map(|e| &e.object).collect(),
        _ => Vec::new(),
    }
}

/// The response target.
pub fn response_case(rng: &mut Rng) {
    let (bytes, sent) = input(rng, gen::response);
    let decoded = decode_checked::<Response>("response", &bytes);
    if let Some(sent) = sent {
        assert_eq!(
            decoded.as_ref(),
            Some(&sent),
            "a response did not round-trip"
        );
    }
    check_framing::<Response>(rng, &bytes, decoded.is_some());
    let Some(Response {
        result: Ok(reply), ..
    }) = decoded
    else {
        return;
    };
    let all_valid = objects(&reply).iter().all(|o| o.validate().is_ok());
    let validated = reply.clone().validated();
    assert_eq!(
        validated.is_ok(),
        all_valid,
        "validation disagrees with the objects' own: {reply:?}"
    );
    if let Ok(Reply::Membership(Some(doc))) = validated {
        let _ = doc.validate();
    }
}

/// A context token: a real one, one mangled as bytes or as text, or junk.
fn token(rng: &mut Rng) -> (String, Option<Context>) {
    let real = if rng.one_in(500) {
        // A clock longer than any node accepts, as a hand-made token.
        let len = VERSION_VECTOR_ENTRIES_MAX + rng.len(1, 8);
        Context::unbound(VersionVector::from_pairs(
            (0..len as u64).map(|a| (ActorId(a), 1)),
        ))
    } else if rng.bool() {
        let key = gen::key(rng);
        Context::for_key("default", &key, gen::clock(rng))
    } else {
        Context::unbound(gen::clock(rng))
    };
    let text = real.to_token();
    match rng.below(6) {
        0 => {
            let len = rng.len(0, 40);
            let alphabet = b"0123456789abcdefABCDEF g\n";
            let junk = (0..len).map(|_| *rng.pick(alphabet) as char).collect();
            (junk, None)
        }
        1 | 2 => (text, Some(real)),
        3 => {
            let mut chars: Vec<char> = text.chars().collect();
            let at = rng.index(chars.len() + 1);
            match rng.below(3) {
                0 => chars.truncate(at),
                1 => chars.insert(at, *rng.pick(&[' ', 'x', '0', 'F', '\u{e9}'])),
                _ => chars.iter_mut().for_each(|c| *c = c.to_ascii_uppercase()),
            }
            (chars.into_iter().collect(), None)
        }
        _ => {
            let mut bytes = hex::decode(&text).expect("a token is hex");
            let donor = hex::decode(Context::unbound(gen::clock(rng)).to_token()).unwrap();
            mutate(rng, &mut bytes, &donor);
            (hex::encode(bytes), None)
        }
    }
}

/// The context token target: parsing never panics, a parsed context is
/// canonical and within what nodes accept, and its token parses back to it.
pub fn context_case(rng: &mut Rng) {
    let (text, real) = token(rng);
    let (parsed, allocated) = allocated_by(|| Context::from_token(&text));
    assert_alloc_bounded("context token", text.len(), allocated);
    if let Some(real) = &real {
        if real.clock().validate().is_ok() {
            assert_eq!(parsed.as_ref(), Ok(real), "a token did not round-trip");
        }
    }
    let Ok(context) = parsed else {
        return;
    };
    let clock = context.clock();
    assert_eq!(
        clock.validate(),
        Ok(()),
        "a parsed context is one a node would refuse"
    );
    assert_eq!(
        &VersionVector::from_pairs(clock.pairs().iter().copied()),
        clock,
        "a parsed context is not canonical"
    );
    assert_eq!(
        Context::from_token(&context.to_token()),
        Ok(context.clone())
    );
    let _ = context.check_key("default", &gen::key(rng));
}
