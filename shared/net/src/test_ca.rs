//! A throw-away CA for the crate's tests: leaf certificates for TLS
//! tests, and identities (role and name) for seal tests.

use crate::tls::{TlsFiles, NODE_SERVER_NAME};
use quire_shared::access::{Principal, Role};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType};
use std::path::Path;

pub(crate) struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    pub(crate) fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    /// Writes the CA and a leaf certificate for `names` into `dir` under
    /// `prefix`, and returns them as TLS files.
    pub(crate) fn issue(
        &self,
        dir: &Path,
        prefix: &str,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> TlsFiles {
        let key = KeyPair::generate().unwrap();
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{prefix}.pem")),
            key: dir.join(format!("{prefix}-key.pem")),
            ca: dir.join(format!("{prefix}-ca.pem")),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        std::fs::write(&files.ca, self.cert.pem()).unwrap();
        files
    }

    pub(crate) fn node(&self, dir: &Path) -> TlsFiles {
        self.issue(
            dir,
            "node",
            &[NODE_SERVER_NAME],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    pub(crate) fn client(&self, dir: &Path) -> TlsFiles {
        self.issue(dir, "client", &[], ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// TLS files for `role` `name` in `dir` (the CA beside them).
    pub(crate) fn identity(&self, dir: &Path, role: Role, name: &str) -> TlsFiles {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let uri = Principal::new(role, name).unwrap().uri();
        params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
            ca: dir.join("ca.pem"),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        std::fs::write(&files.ca, self.cert.pem()).unwrap();
        files
    }
}
