//! SPEC §6, `pam_sm_acct_mgmt`: the portal account, its state for this service, the VPN flag,
//! the IP policy and the locks. Reuses the look-up `authenticate` made in the same transaction;
//! works on its own too (SSH public-key logins).

use crate::access;
use crate::config::Settings;
use crate::decision::{Code, Decision, Reason};
use crate::lockout::Store;
use crate::login::{api_username, first_lock, state_admitted, Keys};
use crate::pam::RawUser;
use crate::portal::{PortalApi, PortalUser, Unavailable};

pub fn account<A: PortalApi>(
    user: &RawUser,
    rhost: Option<&str>,
    s: &Settings,
    known: Option<PortalUser>,
    portal: &mut A,
    store: &dyn Store,
    now: u64,
) -> Decision {
    let addr = access::parse_rhost(rhost);
    if !access::global_allows(&s.access, addr) {
        return Decision::account(Code::PAM_PERM_DENIED, Reason::IpDenied);
    }
    let l = &s.lockout;
    let keys = Keys::new(user, addr, l);
    if let Err(d) = first_lock(
        store,
        now,
        [
            (Some(&keys.user), &l.user, Reason::UserLocked),
            (keys.ip.as_ref(), &l.ip, Reason::IpLocked),
            (Some(&keys.phone), &l.phone, Reason::PhoneLocked),
        ],
    ) {
        return d;
    }
    let Some(name) = api_username(user) else {
        return Decision::account(Code::PAM_USER_UNKNOWN, Reason::UserUnknown);
    };
    let found = match known.filter(|u| u.username == name) {
        Some(u) => u,
        None => match portal.find_user(&name) {
            Ok(Some(u)) => u,
            Ok(None) => return Decision::account(Code::PAM_USER_UNKNOWN, Reason::UserUnknown),
            Err(Unavailable(why)) => return Decision::unavailable(s.portal.on_unavailable, why),
        },
    };
    let refuse = |code, reason, detail: String| Decision::account(code, reason).detail(detail);
    if !state_admitted(&found.status, s.auth.is_vpn) {
        let code = if found.status == "VPN_ONLY" {
            Code::PAM_PERM_DENIED
        } else {
            Code::PAM_ACCT_EXPIRED
        };
        return refuse(
            code,
            Reason::AccountState,
            format!("state {}", found.status),
        );
    }
    if s.auth.is_vpn && !found.ssl_vpn_allowed {
        return refuse(
            Code::PAM_PERM_DENIED,
            Reason::VpnNotAllowed,
            "the user's sslVpnAllowedFlag is off".into(),
        );
    }
    let portal_policy = if s.portal.honor_ip_restriction {
        found.ip_restriction.as_deref()
    } else {
        None
    };
    if access::user_allows(s.access.users.get(&name), portal_policy, addr).is_err() {
        return refuse(
            Code::PAM_PERM_DENIED,
            Reason::IpNotAllowed,
            "the address is outside the user's IP policy".into(),
        );
    }
    Decision::account(Code::PAM_SUCCESS, Reason::Ok)
}
