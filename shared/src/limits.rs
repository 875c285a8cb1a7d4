//! Hard limits, checked before anything is allocated or stored.
//!
//! LMDB keys are at most 511 bytes and a data key is
//! `store length ‖ store ‖ partition ‖ key`, so user keys stop at 480 bytes
//! and store names at 24. Values have a configurable maximum below a hard
//! ceiling; frames must fit a value with a few siblings.

use crate::wire::ErrorCode;

/// Longest user key, in bytes.
pub const KEY_BYTES_MAX: usize = 480;
/// Longest store name, in bytes.
pub const STORE_NAME_BYTES_MAX: usize = 24;
/// Default largest value, in bytes (1 MiB).
pub const VALUE_BYTES_MAX_DEFAULT: usize = 1 << 20;
/// No configuration may raise the value limit above this (16 MiB).
pub const VALUE_BYTES_CEILING: usize = 16 << 20;
/// Default largest frame, in bytes: room for a maximum value with siblings.
pub const FRAME_BYTES_MAX_DEFAULT: u32 = 16 << 20;
/// No configuration may raise the frame limit above this (64 MiB).
pub const FRAME_BYTES_CEILING: u32 = 64 << 20;

/// Checks a user key: non-empty and at most [`KEY_BYTES_MAX`] bytes.
pub fn check_key(key: &[u8]) -> Result<(), (ErrorCode, String)> {
    if key.is_empty() {
        return Err((ErrorCode::EmptyKey, "key is empty".into()));
    }
    if key.len() > KEY_BYTES_MAX {
        return Err((
            ErrorCode::KeyTooLarge,
            format!("key is {} bytes; the limit is {KEY_BYTES_MAX}", key.len()),
        ));
    }
    Ok(())
}

/// Checks a value against the configured maximum.
pub fn check_value(len: usize, value_bytes_max: usize) -> Result<(), (ErrorCode, String)> {
    if len > value_bytes_max {
        return Err((
            ErrorCode::ValueTooLarge,
            format!("value is {len} bytes; the limit is {value_bytes_max}"),
        ));
    }
    Ok(())
}

/// True for a valid store name: 1 to 24 bytes of `a-z`, `0-9`, `_`, `-`.
pub fn valid_store_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= STORE_NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert_eq!(check_key(b"").unwrap_err().0, ErrorCode::EmptyKey);
        assert!(check_key(&[1; KEY_BYTES_MAX]).is_ok());
        assert_eq!(
            check_key(&[1; KEY_BYTES_MAX + 1]).unwrap_err().0,
            ErrorCode::KeyTooLarge
        );
    }

    #[test]
    fn store_names_are_checked() {
        assert!(valid_store_name("default"));
        assert!(valid_store_name("carts_v2-eu"));
        assert!(!valid_store_name(""));
        assert!(!valid_store_name("Carts"));
        assert!(!valid_store_name(&"a".repeat(STORE_NAME_BYTES_MAX + 1)));
    }
}
