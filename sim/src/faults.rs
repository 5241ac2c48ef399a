//! Injected faults: a queue of rules; the first rule that matches an API call applies.

use serde::{Deserialize, Serialize};

use crate::api::Route;

pub const DEFAULT_MS: u64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Delay,
    Status500,
    Garbage,
    Empty,
    Ratelimit,
    Status503,
    Status429,
    Reset,
    Hang,
    StallBody,
    Huge,
    Unauthorized,
    Error200,
    Redirect,
    WrongTypes,
    Http10,
    ChunkedGarbage,
}

impl FaultKind {
    pub const ALL: [FaultKind; 17] = [
        FaultKind::Delay,
        FaultKind::Status500,
        FaultKind::Garbage,
        FaultKind::Empty,
        FaultKind::Ratelimit,
        FaultKind::Status503,
        FaultKind::Status429,
        FaultKind::Reset,
        FaultKind::Hang,
        FaultKind::StallBody,
        FaultKind::Huge,
        FaultKind::Unauthorized,
        FaultKind::Error200,
        FaultKind::Redirect,
        FaultKind::WrongTypes,
        FaultKind::Http10,
        FaultKind::ChunkedGarbage,
    ];

    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// Body of `POST /faults`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    pub fault: FaultKind,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub times: Option<u64>,
    #[serde(default)]
    pub ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    pub fault: FaultKind,
    pub method: Option<String>,
    pub service: Option<String>,
    /// Calls left; `None` = until cleared.
    pub remaining: Option<u64>,
    pub ms: u64,
}

impl Fault {
    pub fn from_request(r: FaultRequest) -> Result<Fault, String> {
        if r.times == Some(0) {
            return Err("\"times\" must be at least 1 (omit it for \"until cleared\")".into());
        }
        Ok(Fault {
            fault: r.fault,
            method: r.method,
            service: r.service,
            remaining: r.times,
            ms: r.ms.unwrap_or(DEFAULT_MS),
        })
    }

    fn matches(&self, route: Option<&Route>) -> bool {
        let m_ok = self
            .method
            .as_ref()
            .is_none_or(|m| route.is_some_and(|r| &r.method == m));
        let s_ok = self
            .service
            .as_ref()
            .is_none_or(|s| route.is_some_and(|r| &r.service == s));
        m_ok && s_ok
    }
}

#[derive(Debug, Default)]
pub struct Faults {
    pub queue: Vec<Fault>,
}

impl Faults {
    pub fn add(&mut self, f: Fault) {
        self.queue.push(f);
    }

    pub fn clear(&mut self) {
        self.queue.clear();
    }

    /// The fault for this call, if any (consumes one use of it).
    pub fn take(&mut self, route: Option<&Route>) -> Option<(FaultKind, u64)> {
        let i = self.queue.iter().position(|f| f.matches(route))?;
        let f = &mut self.queue[i];
        let out = (f.fault, f.ms);
        if let Some(n) = f.remaining.as_mut() {
            *n -= 1;
            if *n == 0 {
                self.queue.remove(i);
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::parse_route;

    fn req(j: &str) -> Fault {
        Fault::from_request(serde_json::from_str(j).unwrap()).unwrap()
    }

    #[test]
    fn names_round_trip() {
        for k in FaultKind::ALL {
            let n = k.name();
            let back: FaultKind = serde_json::from_value(serde_json::json!(n)).unwrap();
            assert_eq!(back, k);
        }
        assert_eq!(FaultKind::StallBody.name(), "stall_body");
        assert_eq!(FaultKind::Status500.name(), "status500");
        assert_eq!(FaultKind::Http10.name(), "http10");
        assert!(serde_json::from_str::<FaultRequest>(r#"{"fault":"nope"}"#).is_err());
        assert!(serde_json::from_str::<FaultRequest>(r#"{"fault":"hang","x":1}"#).is_err());
        assert!(Fault::from_request(
            serde_json::from_str(r#"{"fault":"hang","times":0}"#).unwrap()
        )
        .is_err());
    }

    #[test]
    fn matching_and_times() {
        let users = parse_route("/rest/v3.1/SoftLayer_Account/getUsers.json");
        let login = parse_route("/rest/v3.1/SoftLayer_User_Customer/getPortalLoginToken");
        let mut f = Faults::default();
        f.add(req(
            r#"{"fault":"delay","method":"getUsers","times":2,"ms":5}"#,
        ));
        f.add(req(r#"{"fault":"status500"}"#));
        assert_eq!(
            f.take(login.as_ref()),
            Some((FaultKind::Status500, DEFAULT_MS))
        );
        assert_eq!(f.take(users.as_ref()), Some((FaultKind::Delay, 5)));
        assert_eq!(f.take(users.as_ref()), Some((FaultKind::Delay, 5)));
        assert_eq!(
            f.take(users.as_ref()),
            Some((FaultKind::Status500, DEFAULT_MS))
        );
        assert_eq!(f.take(None), Some((FaultKind::Status500, DEFAULT_MS)));
        f.clear();
        assert_eq!(f.take(users.as_ref()), None);
        f.add(req(r#"{"fault":"reset","method":"getUsers"}"#));
        assert_eq!(f.take(None), None);
    }
}
