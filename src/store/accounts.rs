//! People who sign in to the web inbox, and their sessions, as the store keeps them: each value
//! valid by construction, each stored state with one text form, rows read once for both backends.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::rows::Cells;
use super::StoreError;
use crate::domain::{CommissionerId, VcsId};

/// An email address as accounts are keyed by it: trimmed, lower case, one `@` with text on
/// either side, no spaces, at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Email {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let email = raw.trim().to_lowercase();
        let well_formed = email.len() <= 254
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && matches!(email.split_once('@'), Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
        if well_formed {
            Ok(Email(email))
        } else {
            Err(format!("{raw:?} is not an email address"))
        }
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a member of an organisation may do there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgRole {
    Staff,
    Manager,
}

/// Whom an account acts for: one organisation, the gateway's operator (no organisation), or a
/// commissioner (`[[commissioners]]`), who reads the reports page and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    Member { vcs: VcsId, role: OrgRole },
    Operator,
    Commissioner(CommissionerId),
}

impl Membership {
    /// The role's one text form (`staff`, `manager`, `operator`).
    pub fn role(&self) -> &'static str {
        match self {
            Membership::Member {
                role: OrgRole::Staff,
                ..
            } => "staff",
            Membership::Member {
                role: OrgRole::Manager,
                ..
            } => "manager",
            Membership::Operator => "operator",
            Membership::Commissioner(_) => "commissioner",
        }
    }

    /// The organisation, for a member.
    pub fn vcs(&self) -> Option<&VcsId> {
        match self {
            Membership::Member { vcs, .. } => Some(vcs),
            Membership::Operator | Membership::Commissioner(_) => None,
        }
    }

    /// The commissioner, for a commissioner's account.
    pub fn commissioner(&self) -> Option<&CommissionerId> {
        match self {
            Membership::Commissioner(id) => Some(id),
            Membership::Member { .. } | Membership::Operator => None,
        }
    }

    /// From a role's text form, an organisation and a commissioner: members need an
    /// organisation, commissioners a commissioner, the operator neither.
    pub fn from_parts(
        role: &str,
        vcs: Option<VcsId>,
        commissioner: Option<CommissionerId>,
    ) -> Result<Membership, String> {
        let role = match (role, commissioner) {
            ("commissioner", Some(id)) if vcs.is_none() => return Ok(Membership::Commissioner(id)),
            ("commissioner", Some(_)) => {
                return Err("a commissioner belongs to no organisation".into())
            }
            ("commissioner", None) => {
                return Err("a commissioner needs a [[commissioners]] id".into())
            }
            (_, Some(_)) => return Err(format!("a {role} is not a commissioner")),
            ("staff", None) => OrgRole::Staff,
            ("manager", None) => OrgRole::Manager,
            ("operator", None) => {
                return match vcs {
                    None => Ok(Membership::Operator),
                    Some(_) => Err("an operator belongs to no organisation".into()),
                }
            }
            (other, None) => {
                return Err(format!(
                    "unknown role {other:?} (staff, manager, operator, commissioner)"
                ))
            }
        };
        match vcs {
            Some(vcs) => Ok(Membership::Member { vcs, role }),
            None => Err(format!("a {} needs an organisation", role_text(role))),
        }
    }
}

fn role_text(role: OrgRole) -> &'static str {
    match role {
        OrgRole::Staff => "staff member",
        OrgRole::Manager => "manager",
    }
}

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub email: Email,
    pub membership: Membership,
    /// Argon2id, in the PHC string format.
    pub password_hash: String,
    /// Base32 TOTP secret, when sign-in asks for a code.
    pub totp_secret: Option<String>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

/// A session as created at sign-in.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// SHA-256 (hex) of the cookie's token: the token itself is never stored.
    pub digest: String,
    pub account_id: String,
    pub csrf_token: String,
    pub at: DateTime<Utc>,
}

/// A live session with its account.
#[derive(Debug, Clone)]
pub struct Session {
    pub digest: String,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub account: Account,
}

/// Account columns in the order [`account`] reads them (`disabled` as 0 or 1 on both backends).
pub(crate) const ACCOUNT_COLUMNS: &str = "a.id, a.email, a.role, a.vcs_id, a.password_hash, \
     a.totp_secret, CASE WHEN a.disabled THEN 1 ELSE 0 END, a.created_at, a.commissioner_id";

/// An account row (read with [`ACCOUNT_COLUMNS`], from `accounts a`).
pub(crate) fn account<R: Cells + ?Sized>(row: &R) -> Result<Account, StoreError> {
    let id = row.text(0)?;
    let bad = |reason: String| StoreError::unreadable("account", id.clone(), reason);
    let email = row.text(1)?.parse().map_err(bad)?;
    let vcs = row
        .opt_text(3)?
        .map(|v| v.parse::<VcsId>())
        .transpose()
        .map_err(|e| bad(e.to_string()))?;
    let commissioner = row
        .opt_text(8)?
        .map(|c| c.parse::<CommissionerId>())
        .transpose()
        .map_err(|e| bad(e.to_string()))?;
    let membership = Membership::from_parts(&row.text(2)?, vcs, commissioner).map_err(bad)?;
    let disabled = match row.int(6)? {
        0 => false,
        1 => true,
        other => return Err(bad(format!("disabled is {other}"))),
    };
    Ok(Account {
        email,
        membership,
        password_hash: row.text(4)?,
        totp_secret: row.opt_text(5)?,
        disabled,
        created_at: row.time(7)?,
        id,
    })
}

/// A session row: [`ACCOUNT_COLUMNS`], then `s.digest, s.csrf_token, s.created_at`.
pub(crate) fn session<R: Cells + ?Sized>(row: &R) -> Result<Session, StoreError> {
    Ok(Session {
        account: account(row)?,
        digest: row.text(9)?,
        csrf_token: row.text(10)?,
        created_at: row.time(11)?,
    })
}

pub(crate) const SESSION_COLUMNS: &str = "s.digest, s.csrf_token, s.created_at";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_keyed_in_lower_case() {
        let email: Email = "  Ann.Other@Example.ORG ".parse().unwrap();
        assert_eq!(email.as_str(), "ann.other@example.org");
        for bad in [
            "",
            "ann",
            "@example.org",
            "ann@",
            "a b@example.org",
            "a@b@c",
        ] {
            assert!(bad.parse::<Email>().is_err(), "{bad}");
        }
    }

    #[test]
    fn members_have_an_organisation_and_the_operator_none() {
        let vcs: VcsId = "carers-count".parse().unwrap();
        let icb: CommissionerId = "valley-icb".parse().unwrap();
        assert!(Membership::from_parts("staff", Some(vcs.clone()), None).is_ok());
        assert!(Membership::from_parts("staff", None, None).is_err());
        assert!(Membership::from_parts("staff", Some(vcs.clone()), Some(icb.clone())).is_err());
        assert!(Membership::from_parts("operator", Some(vcs.clone()), None).is_err());
        assert!(Membership::from_parts("operator", None, Some(icb.clone())).is_err());
        assert_eq!(
            Membership::from_parts("operator", None, None)
                .unwrap()
                .role(),
            "operator"
        );
        assert_eq!(
            Membership::from_parts("commissioner", None, Some(icb.clone())),
            Ok(Membership::Commissioner(icb.clone()))
        );
        assert!(Membership::from_parts("commissioner", None, None).is_err());
        assert!(Membership::from_parts("commissioner", Some(vcs), Some(icb)).is_err());
        assert!(Membership::from_parts("admin", None, None).is_err());
    }
}
