//! Grants (which client identity may read or write which store) and
//! revocations (which certificates the cluster refuses), changed like
//! every other part of the membership document (compare-and-set on the
//! newest document the members hold, signed by this admin).

use super::change::{change_membership, Step};
use super::AdminError;
use crate::client::Client;
use quire_shared::access::{access_of, set_grant, valid_principal_name, Access, Serial};
use quire_shared::limits::valid_store_name;
use quire_shared::Membership;

impl Client {
    /// Gives the client identity `name` `access` to `store` (replacing
    /// what it had), or takes its access away (`None`). Nodes apply the
    /// new grants at the next request the identity makes. A store that
    /// does not exist yet may be granted: the grant holds once it does.
    pub async fn set_grant(
        &self,
        name: &str,
        store: &str,
        access: Option<Access>,
    ) -> Result<(Membership, Vec<String>), AdminError> {
        if !valid_principal_name(name) || !valid_store_name(store) {
            return Err(AdminError::BadGrant(format!(
                "grant to {name:?} on store {store:?}: names are 1 to 64 bytes of letters, digits, '-', '_' or '.' (stores: 1 to 24 of a-z, 0-9, '_' or '-')"
            )));
        }
        let change = |newest: &Membership, _offered: bool| {
            if access_of(&newest.grants, name, store) == access {
                return Ok(Step::Done);
            }
            let mut doc = newest.clone();
            set_grant(&mut doc.grants, name, store, access);
            Ok(Step::Next(Box::new(doc)))
        };
        let result =
            change_membership(self.transport(), &self.sealer(), &self.membership(), change).await?;
        self.refresh_membership().await;
        Ok(result)
    }

    /// Revokes the certificate with serial `serial`: every node refuses
    /// it from its next request on, whatever identity it names. An admin
    /// cannot revoke the certificate it signs with (the document would
    /// not verify); another admin does.
    pub async fn revoke_certificate(
        &self,
        serial: Serial,
    ) -> Result<(Membership, Vec<String>), AdminError> {
        let change =
            |newest: &Membership, _offered: bool| match newest.revoked.binary_search(&serial) {
                Ok(_) => Ok(Step::Done),
                Err(at) => {
                    let mut doc = newest.clone();
                    doc.revoked.insert(at, serial.clone());
                    Ok(Step::Next(Box::new(doc)))
                }
            };
        let result =
            change_membership(self.transport(), &self.sealer(), &self.membership(), change).await?;
        self.refresh_membership().await;
        Ok(result)
    }

    /// Signs the newest membership document again with this admin's
    /// certificate, at the next epoch and otherwise unchanged. After the
    /// cluster CA rotated (`quire cert rotate-ca switch`), the document
    /// must be signed under the new CA before the old one stops being
    /// trusted, or clients trusting only the new CA would refuse it.
    pub async fn reseal_membership(&self) -> Result<(Membership, Vec<String>), AdminError> {
        let sealer = self.sealer();
        let change = |newest: &Membership, _offered: bool| {
            if sealer.signed_this(newest) {
                return Ok(Step::Done);
            }
            Ok(Step::Next(Box::new(newest.clone())))
        };
        let result =
            change_membership(self.transport(), &sealer, &self.membership(), change).await?;
        self.refresh_membership().await;
        Ok(result)
    }
}
