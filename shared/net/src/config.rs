//! Loading a TOML config file, the same way for the client's config and the
//! node's.
//!
//! Each side keeps its own config type; what they share is how a file
//! becomes one and what a failure says. Relative paths in a config are
//! resolved against the file's own directory, not the working directory,
//! so a config and the certificates beside it can move together and a
//! service manager's choice of working directory does not matter.

use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Why a config could not be used. `kind` names the file in messages
/// ("client config", "config") so a person running both sides can tell
/// which one is meant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {kind} {path}: {source}")]
    Read {
        /// Which config.
        kind: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this kind of config.
    #[error("invalid {kind} {path}: {source}")]
    Parse {
        /// Which config.
        kind: &'static str,
        /// The file.
        path: PathBuf,
        /// What the parser said, with the offending line (boxed: it is
        /// large, and every `Ok` would pay for its size).
        source: Box<toml::de::Error>,
    },
    /// The file parsed but a value is unusable (out of range, missing).
    #[error("invalid {kind}: {message}")]
    Invalid {
        /// Which config.
        kind: &'static str,
        /// The offending setting and what it must be.
        message: String,
    },
}

/// Reads and parses a TOML config file; `kind` names it in errors. Paths in
/// it are left as written: see [`resolve_relative`].
pub fn load_toml<T: DeserializeOwned>(path: &Path, kind: &'static str) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        kind,
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        kind,
        path: path.to_owned(),
        source: Box::new(source),
    })
}

/// Makes each relative path in `paths` relative to the directory of
/// `config_file` instead of the working directory.
pub fn resolve_relative<'a>(config_file: &Path, paths: impl IntoIterator<Item = &'a mut PathBuf>) {
    let base = config_file.parent().unwrap_or(Path::new("."));
    for path in paths {
        if path.is_relative() {
            *path = base.join(&*path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        dir: PathBuf,
        other: PathBuf,
    }

    #[test]
    fn relative_paths_follow_the_file_and_absolute_ones_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("sample.toml");
        std::fs::write(&file, "dir = \"data\"\nother = \"/abs/path\"\n").unwrap();
        let mut sample: Sample = load_toml(&file, "sample config").unwrap();
        resolve_relative(&file, [&mut sample.dir, &mut sample.other]);
        assert_eq!(sample.dir, tmp.path().join("data"));
        assert_eq!(sample.other, PathBuf::from("/abs/path"));
    }

    #[test]
    fn a_bare_file_name_resolves_against_the_working_directory() {
        let mut path = PathBuf::from("ca.pem");
        resolve_relative(Path::new("client.toml"), [&mut path]);
        assert_eq!(path, PathBuf::from("ca.pem"));
    }

    #[test]
    fn errors_name_the_kind_and_keep_their_cause() {
        use std::error::Error as _;
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("missing.toml");
        let e = load_toml::<Sample>(&missing, "sample config").unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e:?}");
        assert!(
            e.to_string().starts_with("cannot read sample config "),
            "{e}"
        );
        assert!(e.source().is_some());

        let bad = tmp.path().join("bad.toml");
        std::fs::write(&bad, "dir = \"a\"\nunknown = 1\n").unwrap();
        let e = load_toml::<Sample>(&bad, "sample config").unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e:?}");
        assert!(e.to_string().starts_with("invalid sample config "), "{e}");
        assert!(e.source().is_some());
    }
}
