//! Framing: a 4-byte big-endian payload length and a postcard payload,
//! checked against the receiver's limit before anything is allocated.

use super::FRAME_HEADER_BYTES;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The announced length is over the limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Announced length.
        len: u64,
        /// Receiver's limit.
        max: u32,
    },
    /// The payload is not a valid message.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Encodes `msg` as a complete frame (length prefix and payload).
pub fn encode_frame<T: Serialize>(msg: &T) -> Vec<u8> {
    let payload = postcard::to_allocvec(msg).expect("wire messages always encode");
    let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame
}

/// The variant tag that starts every encoded `PutMembership` request
/// (postcard writes an enum's variant index first, as one byte below 128).
pub const PUT_MEMBERSHIP_TAG: u8 = 15;

/// Room for what wraps a membership document in its request: the tag and
/// the compare-and-set base.
const MEMBERSHIP_ENVELOPE_BYTES: u32 = 64;

/// The largest payload a request starting with byte `tag` can need, within
/// the receiver's `frame_max`: a membership document is capped at
/// [`crate::limits::MEMBERSHIP_BYTES_MAX`], so a `PutMembership` frame
/// announced past that is refused from its first byte, before the rest of
/// it is received (a hostile peer sending 16 MiB documents would otherwise
/// make the node take in every byte before refusing it).
pub fn request_payload_max(tag: u8, frame_max: u32) -> u32 {
    match tag {
        PUT_MEMBERSHIP_TAG => {
            frame_max.min(crate::limits::MEMBERSHIP_BYTES_MAX as u32 + MEMBERSHIP_ENVELOPE_BYTES)
        }
        _ => frame_max,
    }
}

/// Reads a frame header and checks the payload length against `max` before
/// the caller allocates anything.
pub fn payload_len(header: [u8; FRAME_HEADER_BYTES], max: u32) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header);
    if len > max {
        return Err(FrameError::TooLarge {
            len: len as u64,
            max,
        });
    }
    Ok(len as usize)
}

/// Decodes a payload; trailing bytes are an error so that a frame means
/// exactly one message.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    match postcard::take_from_bytes::<T>(payload) {
        Ok((msg, [])) => Ok(msg),
        Ok((_, rest)) => Err(FrameError::Malformed(format!(
            "{} trailing bytes after the message",
            rest.len()
        ))),
        Err(e) => Err(FrameError::Malformed(e.to_string())),
    }
}

/// Decodes a complete frame held in memory (tests, fuzzing).
pub fn decode_frame<T: DeserializeOwned>(frame: &[u8], max: u32) -> Result<T, FrameError> {
    let header: [u8; FRAME_HEADER_BYTES] = frame
        .get(..FRAME_HEADER_BYTES)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| FrameError::Malformed("frame shorter than its header".into()))?;
    let len = payload_len(header, max)?;
    let payload = &frame[FRAME_HEADER_BYTES..];
    if payload.len() != len {
        return Err(FrameError::Malformed(format!(
            "frame announces {len} bytes but holds {}",
            payload.len()
        )));
    }
    decode_payload(payload)
}
